// GrpcMetrics: the service's CallObserver, exporting the series of
// go-grpc-prometheus under its names, labels and code spellings, so that
// existing gRPC dashboards and alerts work unchanged:
//   grpc_server_started_total{grpc_service,grpc_method,grpc_type}
//   grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}
//   grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}
// plus, for the calls refused before the pool's queue,
//   compute_tasks_rejected_total{reason}   queue_full | memory | overload |
//                                          deadline | draining | tenant_share
//                                          | shed | preempted |
//                                          expired_on_arrival | invalid
//   compute_priority_rejected_total{priority,reason}  the same by priority
//   compute_refusal_seconds   histogram: from a refused call's arrival at
//                             the service to its answer (refused on
//                             arrival, never queued: RESOURCE_EXHAUSTED or
//                             UNAVAILABLE), since grpc_server_handling_seconds
//                             has no code label to tell refusals apart
//   compute_answers_undelivered_total  Run calls counted handled OK whose
//                             answer was not out when the call ended
//
// As go-grpc-prometheus's InitializeMetrics does, every method x code series
// exists from the start at 0. Methods are the service's unary methods
// (reported by the service itself) and the other services' (health,
// reflection: reported by service::CallInterceptor), given at construction;
// a call to another method is not counted.
//
// The observer calls run on gRPC and worker threads, once or twice per call:
// each is a few adds to the calling thread's own stripe of ShardedCounters
// (after a linear lookup of the method among a handful): no lock, no locked
// instruction. Collect merges the stripes.
//
// Thread-safety: all methods may be called concurrently.
#ifndef COMPUTE_SERVER_METRICS_GRPC_METRICS_H_
#define COMPUTE_SERVER_METRICS_GRPC_METRICS_H_

#include <string>
#include <string_view>
#include <vector>

#include "grpcpp/support/status.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/base/status_codes.h"
#include "server/metrics/duration_histogram.h"
#include "server/metrics/sharded_counters.h"
#include "server/service/call_observer.h"

namespace compute::metrics {

// The number of gRPC status codes (OK = 0 .. UNAUTHENTICATED = 16).
inline constexpr int kNumGrpcCodes = kNumStatusCodes;

// As Go's codes.Code.String() spells it: "OK", "Canceled", "Unknown",
// "InvalidArgument", ..., "Unauthenticated"; "Unknown" for a value out of
// range.
std::string_view GrpcCodeName(grpc::StatusCode code);

// A method another service serves (health, reflection), with
// go-grpc-prometheus's grpc_type: unary, client_stream, server_stream or
// bidi_stream.
struct GrpcMethod {
  std::string service;
  std::string method;
  std::string type;
};

// The methods compute-server serves beside compute.v1.Compute:
// grpc.health.v1.Health/Check and /Watch, and server reflection's
// ServerReflectionInfo.
std::vector<GrpcMethod> StandardServiceMethods();

class GrpcMetrics final : public service::CallObserver,
                          public prometheus::Collectable {
 public:
  // `service`: the full service name ("compute.v1.Compute"); `methods`: its
  // unary methods ("Run"), which OnCallStarted and OnCallHandled name;
  // `others`: other services' methods, which the OnOtherCall* name.
  GrpcMetrics(std::string service, std::vector<std::string> methods,
              std::vector<GrpcMethod> others = {});

  void OnCallStarted(std::string_view method) override;
  void OnCallHandled(std::string_view method, grpc::StatusCode code,
                     absl::Duration elapsed) override;
  void OnRejected(service::RejectReason reason, Priority priority) override;
  void OnRefusalAnswered(absl::Duration elapsed) override;
  void OnAnswerUndelivered() override;
  void OnOtherCallStarted(std::string_view service,
                          std::string_view method) override;
  void OnOtherCallHandled(std::string_view service, std::string_view method,
                          grpc::StatusCode code,
                          absl::Duration elapsed) override;

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // Per method: started, one per code, then the handling histogram.
  size_t MethodBase(size_t method) const { return method * per_method_; }
  // Index of service/method, or methods_.size().
  size_t Find(std::string_view service, std::string_view method) const;
  void Started(size_t m);
  void Handled(size_t m, grpc::StatusCode code, absl::Duration elapsed);
  size_t PriorityRejectedIndex(Priority priority,
                               service::RejectReason reason) const {
    return priority_rejected_base_ +
           static_cast<size_t>(priority) * service::kNumRejectReasons +
           static_cast<size_t>(reason);
  }

  const std::string service_;
  const std::vector<GrpcMethod> methods_;  // service_'s first
  const DurationHistogram& histogram_;
  const size_t per_method_;
  const size_t rejected_base_;
  const size_t priority_rejected_base_;
  const size_t refusal_base_;  // the refusal histogram
  const size_t undelivered_;   // compute_answers_undelivered_total
  ShardedCounters counters_;
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_GRPC_METRICS_H_
