// CallInterceptor: the server's calls to services other than
// compute.v1.Compute (grpc.health.v1.Health, server reflection), reported
// to the CallObserver, so that metrics count every service as
// go-grpc-prometheus does. ComputeService reports its own calls (it knows
// when a call was refused and why); this sees the rest, which gRPC serves
// itself.
//
// Thread-safety: the factory is immutable and used from gRPC's threads; an
// interceptor belongs to one call.
#ifndef COMPUTE_SERVER_SERVICE_CALL_INTERCEPTOR_H_
#define COMPUTE_SERVER_SERVICE_CALL_INTERCEPTOR_H_

#include <string>

#include "grpcpp/support/server_interceptor.h"
#include "server/service/call_observer.h"

namespace compute::service {

class CallInterceptorFactory final
    : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  // Reports every call except those of `own_service`; `observer` must
  // outlive the server.
  CallInterceptorFactory(CallObserver* observer, std::string own_service);

  // nullptr (no interceptor) for own_service's calls.
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  CallObserver* const observer_;
  const std::string own_prefix_;  // "/compute.v1.Compute/"
};

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_CALL_INTERCEPTOR_H_
