// Load reports: what LoadReporter computes, and that every Run answer
// carries it in its trailers.
#include "server/service/load_report.h"

#include <map>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "tests/e2e/raw_http2.h"
#include "tests/integration/test_server.h"
#include "tests/wait_until.h"
#include "xds/data/orca/v3/orca_load_report.pb.h"

namespace compute::testing {
namespace {

using service::LoadReporter;

// "a=1,b=2" -> {a: 1, b: 2}.
std::map<std::string, double> ParseLoad(const std::string& text) {
  std::map<std::string, double> values;
  for (absl::string_view pair : absl::StrSplit(text, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(pair, '=');
    double v = -1;
    EXPECT_TRUE(absl::SimpleAtod(kv.second, &v)) << text;
    values[kv.first] = v;
  }
  return values;
}

TEST(LoadReportTest, MakeComputesUtilizationRatesAndNamedMetrics) {
  PoolStats before;
  before.completed[static_cast<int>(TaskOutcome::kOk)] = 100;
  PoolStats now = before;
  now.workers = 3;  // of 4: utilization is of the most it can run
  now.max_workers = 4;
  now.busy = 3;
  now.queue_depth = 7;
  now.expected_wait = absl::Milliseconds(50);
  now.completed[static_cast<int>(TaskOutcome::kOk)] = 300;
  now.completed[static_cast<int>(TaskOutcome::kCancelled)] = 10;  // not errors
  now.completed[static_cast<int>(TaskOutcome::kFailed)] = 4;
  now.rejected_by[0] = 6;
  LoadReporter::Report r =
      LoadReporter::Make(now, before, absl::Seconds(2), /*cpu_seconds=*/3,
                         /*cpus=*/2, absl::Milliseconds(100));
  xds::data::orca::v3::OrcaLoadReport orca;
  ASSERT_TRUE(orca.ParseFromString(r.orca));
  EXPECT_DOUBLE_EQ(orca.application_utilization(), 0.75 + 0.5);
  EXPECT_DOUBLE_EQ(orca.cpu_utilization(), 0.75);  // 3 s / (2 s x 2 CPUs)
  // Tasks completed; the 6 refusals are errors only (so that a replica
  // refusing more than it completes weighs little in weighted round robin).
  EXPECT_DOUBLE_EQ(orca.rps_fractional(), (200 + 10 + 4) / 2.0);
  EXPECT_DOUBLE_EQ(orca.eps(), (4 + 6) / 2.0);
  EXPECT_EQ(orca.named_metrics().at("queue_depth"), 7);
  EXPECT_EQ(orca.named_metrics().at("expected_wait_ms"), 50);
  EXPECT_EQ(orca.named_metrics().at("workers"), 4);
  std::map<std::string, double> text = ParseLoad(r.text);
  EXPECT_EQ(text["application_utilization"], 1.25);
  EXPECT_EQ(text["cpu_utilization"], 0.75);
  EXPECT_EQ(text["rps_fractional"], 107);
  EXPECT_EQ(text["eps"], 5);
  EXPECT_EQ(text["queue_depth"], 7);
  EXPECT_EQ(text["expected_wait_ms"], 50);
  EXPECT_EQ(text["workers"], 4);
  EXPECT_EQ(text.size(), 7u);
}

// Under a fractional CPU quota (1.5 CPUs), a process using all of it is at
// 1, not at 0.75 of the 2 CPUs the quota rounds up to.
TEST(LoadReportTest, CpuUtilizationIsAgainstAFractionalQuota) {
  PoolStats s;
  s.workers = 2;
  LoadReporter::Report r =
      LoadReporter::Make(s, s, absl::Seconds(2), /*cpu_seconds=*/3,
                         /*cpus=*/1.5, absl::Milliseconds(100));
  xds::data::orca::v3::OrcaLoadReport orca;
  ASSERT_TRUE(orca.ParseFromString(r.orca));
  EXPECT_DOUBLE_EQ(orca.cpu_utilization(), 1.0);
}

TEST(LoadReportTest, WithoutATargetTheQueueIsMeasuredAgainst100ms) {
  PoolStats s;
  s.workers = 2;
  s.expected_wait = absl::Milliseconds(200);
  LoadReporter::Report r = LoadReporter::Make(s, s, absl::ZeroDuration(), 0, 2,
                                              absl::InfiniteDuration());
  xds::data::orca::v3::OrcaLoadReport orca;
  ASSERT_TRUE(orca.ParseFromString(r.orca));
  EXPECT_DOUBLE_EQ(orca.application_utilization(), 2.0);
  EXPECT_EQ(orca.rps_fractional(), 0) << "no interval yet";
}

// The rates are over the last second or two, not over the time since the
// last report: a report 20 ms after the last, with no call in those 20 ms,
// still says what the server has been doing. Before 2026-12-05 it said 0
// calls/s (a reviewer read 35.6-99.8 at a steady 54 calls/s), and a
// weighted balancer keeps only the latest report.
TEST(LoadReportTest, RatesAreOverTheLastSecondOrTwo) {
  SimulatedClock clock;
  PoolOptions options;
  options.clock = &clock;
  absl::StatusOr<std::unique_ptr<WorkerPool>> pool =
      WorkerPool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  LoadReporter reporter(**pool, 1, absl::ZeroDuration(),
                        absl::Milliseconds(10));
  auto rps = [&] {
    xds::data::orca::v3::OrcaLoadReport orca;
    EXPECT_TRUE(orca.ParseFromString(reporter.Current()->orca));
    return orca.rps_fractional();
  };
  EXPECT_EQ(rps(), 0) << "no interval yet";
  for (int i = 0; i < 10; ++i) {
    absl::Notification done;
    ASSERT_TRUE(
        (*pool)
            ->Submit([](const CancelToken&) { return absl::OkStatus(); },
                     [&](const TaskResult&) { done.Notify(); })
            .ok());
    ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  }
  ASSERT_TRUE(
      WaitUntil([&] { return (*pool)->Stats().completed_total() == 10; }));
  clock.Advance(absl::Milliseconds(500));
  EXPECT_DOUBLE_EQ(rps(), 20) << "10 calls in 500 ms";
  clock.Advance(absl::Milliseconds(20));
  EXPECT_NEAR(rps(), 10 / 0.52, 1e-9) << "the same 10, over 520 ms";
  // Once the window has moved past them, they are forgotten.
  clock.Advance(absl::Seconds(1));
  rps();
  clock.Advance(absl::Seconds(1));
  rps();
  clock.Advance(absl::Milliseconds(20));
  EXPECT_EQ(rps(), 0);
}

// After a quiet spell the window does not span it: 10 calls, 12 s without
// a report, 10 calls, then 10 more 100 ms later read about 10/s over the
// last 1.1 s, not 30 over 12.7 s (2.4/s). Until 2026-12-05 a reviewer read
// 2.6-4.2 for a second at a steady 32 calls/s after 12 s idle.
TEST(LoadReportTest, AQuietSpellDoesNotDiluteTheNextRates) {
  SimulatedClock clock;
  PoolOptions options;
  options.clock = &clock;
  absl::StatusOr<std::unique_ptr<WorkerPool>> pool =
      WorkerPool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  LoadReporter reporter(**pool, 1, absl::ZeroDuration(),
                        absl::Milliseconds(10));
  auto rps = [&] {
    xds::data::orca::v3::OrcaLoadReport orca;
    EXPECT_TRUE(orca.ParseFromString(reporter.Current()->orca));
    return orca.rps_fractional();
  };
  auto run = [&](int n) {
    for (int i = 0; i < n; ++i) {
      absl::Notification done;
      ASSERT_TRUE(
          (*pool)
              ->Submit([](const CancelToken&) { return absl::OkStatus(); },
                       [&](const TaskResult&) { done.Notify(); })
              .ok());
      ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
    }
  };
  EXPECT_EQ(rps(), 0);
  run(10);
  ASSERT_TRUE(
      WaitUntil([&] { return (*pool)->Stats().completed_total() == 10; }));
  clock.Advance(absl::Milliseconds(500));
  EXPECT_DOUBLE_EQ(rps(), 20) << "10 calls in 500 ms";
  clock.Advance(absl::Seconds(12));
  run(10);
  ASSERT_TRUE(
      WaitUntil([&] { return (*pool)->Stats().completed_total() == 20; }));
  clock.Advance(absl::Milliseconds(100));
  // The 10 since the last report, spread over the 12.1 s since it: 10 /
  // 12.1 of them in the last second.
  EXPECT_NEAR(rps(), 10 / 12.1, 1e-9);
  run(10);
  ASSERT_TRUE(
      WaitUntil([&] { return (*pool)->Stats().completed_total() == 30; }));
  clock.Advance(absl::Milliseconds(100));
  EXPECT_NEAR(rps(), (10 / 12.1 + 10) / 1.1, 1e-9)
      << "the window is the last 1.1 s, not 12.6";
}

// With an interval of 0 every answer carries the load, OK or not; a busy
// server reports more.
TEST(LoadReportTest, EveryRunAnswerCarriesTheLoadInItsTrailers) {
  service::ServerConfig config = LocalConfig(1, 4);
  config.load_report_interval = absl::ZeroDuration();
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  auto stub = compute::v1::Compute::NewStub(Connect(server->port()));
  auto load_of = [&](const compute::v1::RunRequest& request,
                     grpc::StatusCode want) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    compute::v1::RunResponse response;
    EXPECT_EQ(stub->Run(&context, request, &response).error_code(), want);
    const auto& trailers = context.GetServerTrailingMetadata();
    auto it = trailers.find(service::kLoadTrailer);
    if (it == trailers.end()) {
      ADD_FAILURE() << "no " << service::kLoadTrailer << " trailer";
      return std::map<std::string, double>();
    }
    return ParseLoad(std::string(it->second.data(), it->second.size()));
  };
  std::map<std::string, double> idle = load_of(Fib(1), grpc::StatusCode::OK);
  EXPECT_EQ(idle["queue_depth"], 0);
  EXPECT_LT(idle["application_utilization"], 1.0);
  EXPECT_EQ(load_of(Fib(99), grpc::StatusCode::INVALID_ARGUMENT).size(), 7u);

  AsyncCall running(*stub, Sleep(absl::Seconds(30)));
  ASSERT_TRUE(WaitUntil([&] { return server->pool().Stats().busy == 1; }));
  AsyncCall queued(*stub, Sleep(absl::Seconds(30)));
  ASSERT_TRUE(
      WaitUntil([&] { return server->pool().Stats().queue_depth == 1; }));
  // The report is at most 10 ms old: poll until it shows the queue. (The
  // call itself is refused: 30 s of queue ahead of its 30 s deadline; a
  // refusal carries the load too.)
  std::map<std::string, double> busy;
  ASSERT_TRUE(WaitUntil([&] {
    busy = load_of(Fib(1), grpc::StatusCode::RESOURCE_EXHAUSTED);
    return busy["queue_depth"] == 1;
  }));
  EXPECT_GE(busy["application_utilization"], 1.0) << "its worker is busy";
  EXPECT_GT(busy["expected_wait_ms"], 0);
}

// The ORCA trailer that Envoy and gRPC's weighted round robin read reaches
// the wire, and says what compute-load says (both are made from one
// report; compute-load rounds). gRPC 1.51 keeps endpoint-load-metrics-bin
// out of a C++ client's trailers, so a raw HTTP/2 client reads it: before,
// no test would have seen it go.
TEST(LoadReportTest, TheOrcaTrailerOnTheWireSaysWhatComputeLoadSays) {
  service::ServerConfig config = LocalConfig(1, 4);
  config.load_report_interval = absl::ZeroDuration();
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  RawHttp2Connection connection;
  ASSERT_TRUE(connection.Connect(server->port(), std::nullopt,
                                 /*true_binary=*/true));
  ASSERT_TRUE(connection.Send(
      Http2Frame(http2::kHeaders, http2::kEndHeaders, 1, RunCallHeaders())));
  ASSERT_TRUE(
      connection.SendData(1, GrpcMessage(Fib(10).SerializeAsString()), kWait));
  const StreamEnd end = connection.ReadUntilEnd(1, kWait);
  ASSERT_EQ(end.kind, StreamEnd::Kind::kTrailers) << end.error;
  EXPECT_EQ(end.grpc_status(), 0);
  ASSERT_TRUE(end.fields.contains(service::kOrcaTrailer));
  ASSERT_TRUE(end.fields.contains(service::kLoadTrailer));
  // Asked for as true binary: a 0 byte, then the report's bytes.
  const std::string& value = end.fields.at(service::kOrcaTrailer);
  ASSERT_TRUE(!value.empty() && value[0] == '\0') << value;
  xds::data::orca::v3::OrcaLoadReport orca;
  ASSERT_TRUE(orca.ParseFromString(value.substr(1)));
  std::map<std::string, double> text =
      ParseLoad(end.fields.at(service::kLoadTrailer));
  EXPECT_NEAR(orca.application_utilization(), text["application_utilization"],
              0.0006);
  EXPECT_NEAR(orca.cpu_utilization(), text["cpu_utilization"], 0.0006);
  EXPECT_NEAR(orca.rps_fractional(), text["rps_fractional"], 0.051);
  EXPECT_NEAR(orca.eps(), text["eps"], 0.051);
  EXPECT_EQ(orca.named_metrics().at("queue_depth"), text["queue_depth"]);
  EXPECT_NEAR(orca.named_metrics().at("expected_wait_ms"),
              text["expected_wait_ms"], 0.051);
  EXPECT_EQ(orca.named_metrics().at("workers"), 1);
  EXPECT_EQ(text["workers"], 1);
}

// With an interval, answers in between carry no report, but a refusal
// always does (a balancer must hear why).
TEST(LoadReportTest, BetweenIntervalsOnlyRefusalsCarryTheLoad) {
  service::ServerConfig config = LocalConfig(1, 1);
  config.io_threads = 1;
  config.load_report_interval = absl::Hours(1);
  auto server = StartServer(config);
  ASSERT_NE(server, nullptr);
  auto stub = compute::v1::Compute::NewStub(Connect(server->port()));
  auto has_load = [&](const compute::v1::RunRequest& request,
                      grpc::StatusCode want) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    compute::v1::RunResponse response;
    EXPECT_EQ(stub->Run(&context, request, &response).error_code(), want);
    return context.GetServerTrailingMetadata().count(service::kLoadTrailer) ==
           1;
  };
  EXPECT_TRUE(has_load(Fib(1), grpc::StatusCode::OK)) << "the first answer";
  EXPECT_FALSE(has_load(Fib(1), grpc::StatusCode::OK));
  AsyncCall running(*stub, Sleep(absl::Seconds(30)), absl::InfiniteDuration());
  AsyncCall queued(*stub, Sleep(absl::Seconds(30)), absl::InfiniteDuration());
  ASSERT_TRUE(WaitUntil([&] {  // both in the pool, not the first queued
    const auto s = server->pool().Stats();
    return s.busy == 1 && s.queue_depth == 1;
  }));
  EXPECT_TRUE(has_load(Fib(1), grpc::StatusCode::RESOURCE_EXHAUSTED));
}

}  // namespace
}  // namespace compute::testing
