#include "server/service/call_interceptor.h"

#include <chrono>
#include <string>
#include <string_view>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace compute::service {
namespace {

using grpc::experimental::InterceptionHookPoints;

// Started when the call's metadata arrives, handled when its status is sent
// (or, if it never is, when the call is torn down: as cancelled). Timed on
// the monotonic clock, as ComputeService times Run: a step of the wall
// clock (NTP) would make a duration negative or hours long.
//
// gRPC 1.51 makes interceptors for a registered method's request when it
// completes, whether a call arrived or not: at a drain every health request
// waiting on a queue fails, and each made one. So a call counts from its
// first interception (POST_RECV_INITIAL_METADATA, run only for a call that
// arrived), not from the constructor: before, every drain counted 2 health
// calls per I/O thread started and CANCELLED that never existed.
class CallInterceptor final : public grpc::experimental::Interceptor {
 public:
  CallInterceptor(CallObserver* observer, std::string_view full_method)
      : observer_(observer), start_(std::chrono::steady_clock::now()) {
    // "/package.Service/Method"
    std::string_view name = full_method.substr(full_method.empty() ? 0 : 1);
    size_t slash = name.rfind('/');
    service_ = name.substr(0, slash == std::string_view::npos ? 0 : slash);
    method_ = name.substr(slash == std::string_view::npos ? 0 : slash + 1);
  }
  ~CallInterceptor() override {
    if (started_ && !handled_) Handled(grpc::StatusCode::CANCELLED);
  }

  void Intercept(
      grpc::experimental::InterceptorBatchMethods* methods) override {
    if (!started_) {
      started_ = true;
      observer_->OnOtherCallStarted(service_, method_);
    }
    if (methods->QueryInterceptionHookPoint(
            InterceptionHookPoints::PRE_SEND_STATUS) &&
        !handled_) {
      Handled(methods->GetSendStatus().error_code());
    }
    methods->Proceed();
  }

 private:
  void Handled(grpc::StatusCode code) {
    handled_ = true;
    observer_->OnOtherCallHandled(
        service_, method_, code,
        absl::FromChrono(std::chrono::steady_clock::now() - start_));
  }

  CallObserver* const observer_;
  const std::chrono::steady_clock::time_point start_;
  std::string service_;
  std::string method_;
  bool started_ = false;
  bool handled_ = false;
};

}  // namespace

CallInterceptorFactory::CallInterceptorFactory(CallObserver* observer,
                                               std::string own_service)
    : observer_(observer), own_prefix_(absl::StrCat("/", own_service, "/")) {}

grpc::experimental::Interceptor*
CallInterceptorFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  const char* method = info->method();
  if (method == nullptr || absl::StartsWith(method, own_prefix_)) {
    return nullptr;
  }
  return new CallInterceptor(observer_, method);
}

}  // namespace compute::service
