// CallInterceptor times the calls of the server's other services on the
// monotonic clock: a step of the wall clock during a call (NTP) must not
// reach grpc_server_handling_seconds as a negative or hours-long duration.
//
// The wall clock is stepped back for this process alone
// (tests/realtime_step.h).
#include "server/service/call_interceptor.h"

#include <time.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/service/call_observer.h"
#include "tests/realtime_step.h"
#include "tests/wait_until.h"

namespace compute::service {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class RecordingObserver final : public CallObserver {
 public:
  void OnCallStarted(std::string_view) override {}
  void OnCallHandled(std::string_view, grpc::StatusCode,
                     absl::Duration) override {}
  void OnRejected(RejectReason, Priority) override {}
  void OnOtherCallHandled(std::string_view service, std::string_view method,
                          grpc::StatusCode code,
                          absl::Duration elapsed) override {
    absl::MutexLock lock(&mu_);
    handled_.push_back(
        {std::string(service), std::string(method), code, elapsed});
  }

  struct Handled {
    std::string service;
    std::string method;
    grpc::StatusCode code;
    absl::Duration elapsed;
  };
  std::vector<Handled> handled() const {
    absl::MutexLock lock(&mu_);
    return handled_;
  }

 private:
  mutable absl::Mutex mu_;
  std::vector<Handled> handled_ ABSL_GUARDED_BY(mu_);
};

// A Check that steps the wall clock back an hour while it runs, and answers
// once absl::Now() shows it (absl reads the kernel's clock every second or
// two, and extrapolates in between).
class SteppingHealth final : public Health::Service {
 public:
  grpc::Status Check(grpc::ServerContext*, const HealthCheckRequest*,
                     HealthCheckResponse* response) override {
    const absl::Time before = absl::Now();
    g_realtime_step_ns.store(-absl::ToInt64Nanoseconds(absl::Hours(1)));
    if (!testing::WaitUntil(
            [&] { return absl::Now() < before - absl::Minutes(30); })) {
      return grpc::Status(grpc::StatusCode::INTERNAL, "no step seen");
    }
    response->set_status(HealthCheckResponse::SERVING);
    return grpc::Status::OK;
  }
};

TEST(CallInterceptorTest, AWallClockStepDoesNotReachTheDuration) {
  RecordingObserver observer;
  SteppingHealth health;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&health);
  std::vector<
      std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>>
      interceptors;
  interceptors.push_back(std::make_unique<CallInterceptorFactory>(
      &observer, "compute.v1.Compute"));
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  auto stub = Health::NewStub(grpc::CreateChannel(
      "127.0.0.1:" + std::to_string(port), grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  HealthCheckResponse response;
  grpc::Status status = stub->Check(&context, {}, &response);
  g_realtime_step_ns.store(0);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // Reported when the status is sent, before the client has the answer.
  std::vector<RecordingObserver::Handled> handled = observer.handled();
  ASSERT_EQ(handled.size(), 1u);
  EXPECT_EQ(handled[0].service, "grpc.health.v1.Health");
  EXPECT_EQ(handled[0].method, "Check");
  EXPECT_EQ(handled[0].code, grpc::StatusCode::OK);
  EXPECT_GE(handled[0].elapsed, absl::ZeroDuration());
  // The wait for absl to see the step, at most kWaitLimit.
  EXPECT_LT(handled[0].elapsed, testing::kWaitLimit + absl::Seconds(5));
  server->Shutdown();
}

}  // namespace
}  // namespace compute::service
