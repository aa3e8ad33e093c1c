// grpc.health.v1.Health as probes and balancers use it: Check for each
// service, Watch streams that follow the drain, and no call object left.
#include <memory>
#include <string>
#include <thread>

#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/integration/test_server.h"
#include "tests/wait_until.h"

namespace compute::testing {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class HealthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = StartServer(LocalConfig(1, 4));
    ASSERT_NE(server_, nullptr);
    stub_ = Health::NewStub(Connect(server_->port()));
  }
  // Each queue keeps one Check and one Watch waiting for a call.
  int Waiting() const { return 2 * server_->queues().io_threads(); }

  grpc::Status Check(const std::string& service, HealthCheckResponse* out) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    HealthCheckRequest request;
    request.set_service(service);
    return stub_->Check(&context, request, out);
  }

  // Opens a Watch of `service` and reads its first status into *first.
  // The stream ends by kWait at the latest: a server that never answers
  // fails the test, not hangs it.
  std::unique_ptr<grpc::ClientReader<HealthCheckResponse>> Watch(
      grpc::ClientContext* context, const std::string& service,
      HealthCheckResponse* first) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    HealthCheckRequest request;
    request.set_service(service);
    auto watch = stub_->Watch(context, request);
    EXPECT_TRUE(watch->Read(first)) << "no first status for " << service;
    return watch;
  }

  std::unique_ptr<service::ComputeServer> server_;
  std::unique_ptr<Health::Stub> stub_;
};

TEST_F(HealthTest, CheckAnswersEachServiceAndNotFoundForOthers) {
  HealthCheckResponse response;
  ASSERT_TRUE(Check("", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  ASSERT_TRUE(Check("compute.v1.Compute", &response).ok());
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);
  grpc::Status unknown = Check("no.such.Service", &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(unknown.error_message(), "unknown service: \"no.such.Service\"");
}

// The name is the client's: quoted up to 128 bytes, cut at a character's
// start. The whole of it went back in grpc-message: one of 100 KB passed
// the client's metadata limit (RESOURCE_EXHAUSTED, not NOT_FOUND).
TEST_F(HealthTest, AnUnknownServicesLongNameIsQuotedInPart) {
  HealthCheckResponse response;
  const std::string long_name = std::string(100 << 10, 'x');
  grpc::Status unknown = Check(long_name, &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(
      unknown.error_message(),
      "unknown service: \"" + std::string(128, 'x') + "...\" (102400 bytes)");
  // 127 ASCII bytes, then a 2-byte character across the cut: left out whole.
  const std::string accented = std::string(127, 'a') + "\xc3\xa9" + "tail";
  unknown = Check(accented, &response);
  EXPECT_EQ(unknown.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(
      unknown.error_message(),
      "unknown service: \"" + std::string(127, 'a') + "...\" (133 bytes)");
}

// A balancer watching the server sees SERVING, then NOT_SERVING when the
// drain begins, and its stream is ended by the server (not cut by gRPC's
// shutdown grace, which would end it CANCELLED).
TEST_F(HealthTest, WatchFollowsTheDrainAndIsEndedByIt) {
  grpc::ClientContext context;
  HealthCheckResponse response;
  auto watch = Watch(&context, "compute.v1.Compute", &response);
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVING);

  // Joined on every way out (an assertion that fails returns early).
  std::jthread drain([&] { server_->Drain(absl::Seconds(5)); });
  ASSERT_TRUE(watch->Read(&response));
  EXPECT_EQ(response.status(), HealthCheckResponse::NOT_SERVING);
  EXPECT_FALSE(watch->Read(&response));
  grpc::Status end = watch->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(end.error_message(), "the server is shutting down");
  drain.join();
  EXPECT_EQ(server_->health().live_calls(), 0);
}

// The drain ends a Watch of an unknown service without calling it
// NOT_SERVING: a name the server never served stays unknown to the end, as
// a Check of it stays NOT_FOUND.
TEST_F(HealthTest, DrainEndsAWatchOfAnUnknownServiceWithoutAStatus) {
  grpc::ClientContext context;
  HealthCheckResponse response;
  auto watch = Watch(&context, "no.such.Service", &response);
  EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);

  std::jthread drain([&] { server_->Drain(absl::Seconds(5)); });
  EXPECT_FALSE(watch->Read(&response))
      << "after SERVICE_UNKNOWN, got " << response.status();
  grpc::Status end = watch->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(end.error_message(), "the server is shutting down");
  drain.join();
  EXPECT_EQ(server_->health().live_calls(), 0);
}

// A Watch keeps its service name for as long as its stream is open, and no
// budget counts it: a name over 1 KiB is refused at once, its call freed.
// Before, each Watch of a 16 MiB name held it until its client left (12
// took a server from 21 to 244 MB). Up to the limit, a name is watched.
TEST_F(HealthTest, AWatchOfANameOverOneKibIsRefused) {
  ASSERT_TRUE(
      WaitUntil([&] { return server_->health().live_calls() == Waiting(); }));
  {
    grpc::ClientContext context;
    HealthCheckResponse response;
    auto watch = Watch(&context, std::string(1024, 'x'), &response);
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
    context.TryCancel();
    EXPECT_FALSE(watch->Read(&response));
    watch->Finish();
  }
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  HealthCheckRequest request;
  request.set_service(std::string(1 << 20, 'x'));
  auto watch = stub_->Watch(&context, request);
  HealthCheckResponse response;
  EXPECT_FALSE(watch->Read(&response))
      << "a status for a 1 MiB name: " << response.status();
  grpc::Status end = watch->Finish();
  EXPECT_EQ(end.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(end.error_message(),
            "service: a name of 1048576 bytes, over the limit of 1024 for a "
            "Watch");
  EXPECT_TRUE(WaitUntil([&] {
    return server_->health().live_calls() == Waiting();
  })) << server_->health().live_calls();
}

// An unknown service is reported as such (it may be registered later);
// a Watch the client cancels is answered and its call object freed.
TEST_F(HealthTest, WatchOfAnUnknownServiceAndACancelledWatchIsFreed) {
  ASSERT_TRUE(
      WaitUntil([&] { return server_->health().live_calls() == Waiting(); }));
  {
    grpc::ClientContext context;
    HealthCheckResponse response;
    auto watch = Watch(&context, "no.such.Service", &response);
    EXPECT_EQ(response.status(), HealthCheckResponse::SERVICE_UNKNOWN);
    EXPECT_GT(server_->health().live_calls(), Waiting());
    context.TryCancel();
    EXPECT_FALSE(watch->Read(&response));
    EXPECT_EQ(watch->Finish().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(WaitUntil([&] {
    return server_->health().live_calls() == Waiting();
  })) << server_->health().live_calls()
      << " alive, want " << Waiting();
}

}  // namespace
}  // namespace compute::testing
