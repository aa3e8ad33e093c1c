// The load generator (LoadGenerator and `compute-client bench`) against
// in-process servers: every call is accounted for, the open loop keeps its
// rate, and an overloaded server's refusals show as RESOURCE_EXHAUSTED.
#include <memory>
#include <thread>

#include "client/channel.h"
#include "client/load.h"
#include "client/summary.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "tests/client/client_test_util.h"
#include "tests/integration/test_server.h"

namespace compute::testing {
namespace {

using ::testing::HasSubstr;

std::vector<std::shared_ptr<grpc::Channel>> Channels(
    const service::ComputeServer& server, int count = 1) {
  client::ChannelOptions options;
  options.target = Target(server);
  auto channels = client::CreateChannels(options, count);
  EXPECT_TRUE(channels.ok()) << channels.status();
  return *channels;
}

uint64_t Refused(service::ComputeServer& server) {
  return server.service().rejected(service::RejectReason::kQueueFull) +
         server.service().rejected(service::RejectReason::kDeadline);
}

TEST(BenchTest, ClosedLoopAccountsForEveryCall) {
  auto server = StartServer(LocalConfig(2, 64));
  ASSERT_NE(server, nullptr);
  CommandResult r =
      RunClient({"bench", "--target", Target(*server), "--task", "fib", "--n",
                 "5", "--concurrency", "8", "--requests", "300",
                 "--connections", "2", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  google::protobuf::Struct json = ParseJson(r.out);
  EXPECT_EQ(Number(json, "sent"), 300);
  EXPECT_EQ(Number(json, "completed"), 300);
  double by_code = 0;
  for (const auto& [code, count] : Object(json, "status").fields()) {
    by_code += count.number_value();
  }
  EXPECT_EQ(by_code, 300) << r.out;
  EXPECT_EQ(Object(json, "status").fields().at("OK").number_value() +
                static_cast<double>(Refused(*server)),
            300);
  EXPECT_EQ(Number(Object(json, "latency_ms"), "count"),
            Object(json, "status").fields().at("OK").number_value());
  EXPECT_EQ(json.fields().at("mode").string_value(), "closed");
  EXPECT_EQ(server->pool().Stats().accepted + Refused(*server), 300u);
}

TEST(BenchTest, TextSummaryAndHistogram) {
  auto server = StartServer(LocalConfig(2, 64));
  ASSERT_NE(server, nullptr);
  CommandResult r =
      RunClient({"bench", "--target", Target(*server), "--task", "fib", "--n",
                 "5", "--concurrency", "4", "--requests", "100", "--hist"});
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const char* part :
       {"Summary\n", "closed loop, 4 calls in flight", "100 sent",
        "100 completed", " p50 ", " p90 ", " p99 ", " p99.9 ", " max ",
        "Status codes\n", "  OK ", "Refused (RESOURCE_EXHAUSTED): ",
        "Latency histogram of OK calls\n", "|#"}) {
    EXPECT_THAT(r.out, HasSubstr(part));
  }
}

TEST(BenchTest, OpenLoopKeepsTheAskedRate) {
  auto server = StartServer(LocalConfig(2, 256));
  ASSERT_NE(server, nullptr);
  client::LoadOptions options;
  options.request = Fib(1);
  options.rate = 200;
  options.duration = absl::Seconds(3);
  options.deadline = absl::Seconds(10);
  client::LoadGenerator generator(Channels(*server), options);
  absl::StatusOr<client::LoadResult> r = generator.Run();
  ASSERT_TRUE(r.ok()) << r.status();
  // 600 calls on a 5 ms schedule; a late pacer catches up, so the count is
  // exact unless the whole run stalls, and the rate over the send window
  // (first to last start) is within 5% of 200/s.
  EXPECT_NEAR(static_cast<double>(r->sent), 600, 30);
  EXPECT_NEAR(r->offered_rate(), 200, 10);
  EXPECT_EQ(r->completed(), r->sent);
  EXPECT_EQ(server->pool().Stats().accepted + Refused(*server), r->sent);
}

TEST(BenchTest, OverloadShowsRefusalsAsResourceExhausted) {
  // One worker and one queue slot; 100 calls/s of 20 ms spins is twice what
  // the worker can run, so the queue overflows.
  auto server = StartServer(LocalConfig(1, 1));
  ASSERT_NE(server, nullptr);
  CommandResult r = RunClient({"bench", "--target", Target(*server), "--task",
                               "spin", "--duration", "20ms", "--rate", "100",
                               "--time", "2s", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  google::protobuf::Struct json = ParseJson(r.out);
  const auto& status = Object(json, "status").fields();
  ASSERT_TRUE(status.contains("RESOURCE_EXHAUSTED")) << r.out;
  double refused = status.at("RESOURCE_EXHAUSTED").number_value();
  EXPECT_GT(refused, 0);
  EXPECT_GT(status.at("OK").number_value(), 0);
  EXPECT_EQ(refused, static_cast<double>(Refused(*server)));
  EXPECT_EQ(Number(json, "refused"), refused);
  EXPECT_NEAR(Number(json, "refused_share"), refused / Number(json, "sent"),
              1e-9);
  EXPECT_EQ(status.at("OK").number_value() + refused, Number(json, "sent"));
}

TEST(BenchTest, ProgressIsReportedWhileRunning) {
  auto server = StartServer(LocalConfig(2, 64));
  ASSERT_NE(server, nullptr);
  client::LoadOptions options;
  options.request = Fib(1);
  options.rate = 100;
  options.duration = absl::Milliseconds(1000);
  options.progress_interval = absl::Milliseconds(100);
  Mutex mu;
  std::vector<client::LoadProgress> seen;
  options.on_progress = [&](const client::LoadProgress& p) {
    MutexLock lock(&mu);
    seen.push_back(p);
  };
  client::LoadGenerator generator(Channels(*server), options);
  ASSERT_TRUE(generator.Run().ok());
  MutexLock lock(&mu);
  ASSERT_FALSE(seen.empty());
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GE(seen[i].sent, seen[i - 1].sent);
    EXPECT_GE(seen[i].sent, seen[i].completed);
  }
  EXPECT_THAT(client::ProgressLine(seen.back()), HasSubstr(" ok "));
}

TEST(BenchTest, StopEndsTheRunAndEveryCallIsAccountedFor) {
  auto server = StartServer(LocalConfig(2, 64));
  ASSERT_NE(server, nullptr);
  client::LoadOptions options;
  options.request = Fib(1);
  options.concurrency = 4;
  options.requests = 1000000000;
  client::LoadGenerator generator(Channels(*server, 2), options);
  std::thread stopper([&] {
    EXPECT_TRUE(
        WaitUntil([&] { return server->pool().Stats().accepted > 50; }));
    generator.Stop();
  });
  absl::StatusOr<client::LoadResult> r = generator.Run();
  stopper.join();
  ASSERT_TRUE(r.ok());
  EXPECT_GT(r->sent, 50u);
  EXPECT_EQ(r->completed(), r->sent);
  EXPECT_EQ(r->ok(), server->pool().Stats().accepted);
}

TEST(BenchTest, BadOptionsSendNothing) {
  auto server = StartServer(LocalConfig(1, 1));
  ASSERT_NE(server, nullptr);
  client::LoadOptions options;
  options.request = Fib(1);  // neither requests nor a finite duration
  client::LoadGenerator generator(Channels(*server), options);
  EXPECT_EQ(generator.Run().status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(server->pool().Stats().accepted, 0u);
}

}  // namespace
}  // namespace compute::testing
