// Metrics on a real server: the pool gauges, counters and gRPC series that a
// scrape of the live /metrics endpoint shows while calls run, queue, are
// refused and are cancelled. Every check parses the exposition format.
#include "server/metrics/metrics.h"

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/e2e/raw_http2.h"
#include "tests/integration/test_server.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::testing {
namespace {

using metrics::testing::Exposition;
using metrics::testing::Labels;

Labels Code(const std::string& code) {
  return {{"grpc_service", "compute.v1.Compute"},
          {"grpc_method", "Run"},
          {"grpc_type", "unary"},
          {"grpc_code", code}};
}

class MetricsTest : public ::testing::Test {
 protected:
  void Start(int workers, size_t capacity) {
    service::ServerConfig config = LocalConfig(workers, capacity);
    config.pool.observer = metrics_.pool_observer();
    config.observer = metrics_.call_observer();
    server_ = StartServer(config);
    ASSERT_NE(server_, nullptr);
    metrics_.AttachPool(&server_->pool());
    ASSERT_TRUE(metrics_.Serve("127.0.0.1", 0).ok());
    stub_ = compute::v1::Compute::NewStub(Connect(server_->port()));
  }
  void TearDown() override {
    metrics_.AttachPool(nullptr);
    server_.reset();
  }

  // A scrape over HTTP, parsed; fails the test (and returns an empty one)
  // when it cannot be had.
  Exposition Scrape() {
    auto e = metrics::testing::Scrape(metrics_.port());
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *e : Exposition();
  }
  double Value(const Exposition& e, const std::string& name,
               const Labels& labels = {}) {
    std::optional<double> v = e.Value(name, labels);
    EXPECT_TRUE(v.has_value()) << name;
    return v.value_or(-1);
  }
  // Scrapes until `pred` holds for a scrape, within kWait.
  template <typename Pred>
  bool ScrapeUntil(Pred pred) {
    return WaitUntil([&] { return pred(Scrape()); }, kWaitLimit, kIoPoll);
  }

  metrics::Metrics metrics_;  // outlives the server, which calls it
  std::unique_ptr<service::ComputeServer> server_;
  std::unique_ptr<compute::v1::Compute::Stub> stub_;
};

TEST_F(MetricsTest, ScrapeShowsBusyQueuedRejectedAndTheOutcomes) {
  constexpr int kWorkers = 2;
  constexpr size_t kQueued = 3;
  Start(kWorkers, kQueued);

  Exposition before = Scrape();
  EXPECT_EQ(Value(before, "compute_pool_workers"), kWorkers);
  EXPECT_EQ(Value(before, "compute_pool_queue_capacity"), kQueued);
  EXPECT_EQ(Value(before, "compute_pool_workers_busy"), 0);
  EXPECT_EQ(Value(before, "compute_pool_queue_depth"), 0);

  std::vector<std::unique_ptr<AsyncCall>> calls;
  for (size_t i = 0; i < kWorkers + kQueued; ++i) {
    calls.push_back(
        std::make_unique<AsyncCall>(*stub_, Sleep(absl::Seconds(30))));
  }
  ASSERT_TRUE(ScrapeUntil([&](const Exposition& e) {
    return e.Value("compute_pool_workers_busy") == kWorkers &&
           e.Value("compute_pool_queue_depth") == kQueued;
  })) << "busy = W and depth = C";

  Exposition full = Scrape();
  EXPECT_EQ(Value(full, "grpc_server_started_total",
                  {{"grpc_service", "compute.v1.Compute"},
                   {"grpc_method", "Run"},
                   {"grpc_type", "unary"}}),
            kWorkers + kQueued);
  const double rejected_before =
      Value(full, "compute_tasks_rejected_total", {{"reason", "queue_full"}});
  const double exhausted_before =
      Value(full, "grpc_server_handled_total", Code("ResourceExhausted"));
  const double refusals_before = Value(full, "compute_refusal_seconds_count");

  {
    grpc::ClientContext context;
    compute::v1::RunResponse r;
    grpc::Status s = stub_->Run(&context, Spin(absl::Seconds(1)), &r);
    ASSERT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  Exposition refused = Scrape();
  EXPECT_EQ(Value(refused, "compute_tasks_rejected_total",
                  {{"reason", "queue_full"}}),
            rejected_before + 1);
  EXPECT_EQ(
      Value(refused, "grpc_server_handled_total", Code("ResourceExhausted")),
      exhausted_before + 1);
  EXPECT_EQ(
      Value(refused, "compute_tasks_rejected_total", {{"reason", "deadline"}}),
      0);
  EXPECT_EQ(Value(refused, "compute_pool_queue_depth"), kQueued)
      << "the refused call never queued";
  // The refusal's own latency, apart from the calls that ran or queued.
  EXPECT_EQ(Value(refused, "compute_refusal_seconds_count"),
            refusals_before + 1);
  EXPECT_EQ(Value(refused, "compute_refusal_seconds_bucket", {{"le", "+Inf"}}),
            refusals_before + 1);

  for (auto& c : calls) c->Cancel();
  for (auto& c : calls) {
    EXPECT_EQ(c->Wait().error_code(), grpc::StatusCode::CANCELLED);
  }
  // A client's cancel ends its call at once on its side; the server counts
  // the call handled when its own side of it ends, a moment later (CI saw
  // one of the five still open at the first scrape). So: until all are.
  constexpr double kAccepted = kWorkers + kQueued;
  ASSERT_TRUE(ScrapeUntil([&](const Exposition& e) {
    return e.Value("compute_pool_workers_busy") == 0 &&
           e.Value("compute_pool_queue_depth") == 0 &&
           e.Sum("grpc_server_handled_total") >= kAccepted + 1;
  }));

  // Every call is in the counters, once.
  Exposition after = Scrape();
  EXPECT_EQ(after.Sum("compute_tasks_total"), kAccepted);
  EXPECT_EQ(Value(after, "compute_tasks_total",
                  {{"task", "sleep"}, {"outcome", "cancelled"}}),
            kAccepted);
  EXPECT_EQ(after.Sum("grpc_server_started_total"), kAccepted + 1);
  EXPECT_EQ(after.Sum("grpc_server_handled_total"), kAccepted + 1);
  EXPECT_EQ(Value(after, "grpc_server_handled_total", Code("Canceled")),
            kAccepted);
  EXPECT_EQ(after.Sum("grpc_server_handling_seconds_count"), kAccepted + 1);
  EXPECT_EQ(Value(after, "compute_task_queue_wait_seconds_count"), kAccepted);
  // The running ones ran; a queued one may have started as a worker freed
  // before its own cancel arrived.
  const double ran =
      Value(after, "compute_task_run_seconds_count", {{"task", "sleep"}});
  EXPECT_GE(ran, kWorkers);
  EXPECT_LE(ran, kAccepted);
}

TEST_F(MetricsTest, OutcomesAndCodesAddUpToTheCallsMade) {
  Start(2, 16);
  constexpr int kOk = 6;
  for (int i = 0; i < kOk; ++i) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    compute::v1::RunResponse r;
    ASSERT_TRUE(stub_->Run(&context, Fib(10 + i), &r).ok());
  }
  {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    compute::v1::RunResponse r;
    EXPECT_EQ(stub_->Run(&context, Fib(51), &r).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
  }
  {
    // Cannot finish in time (a 5 s spin, 1 s left): refused at once, by
    // admission (reason "deadline"). A whole second, so that a stalled
    // machine still delivers the call before its deadline passes
    // (which would make it DEADLINE_EXCEEDED, reason expired_on_arrival);
    // the spin alone costs 5 s, so it cannot fit in 1 s either.
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(1)));
    compute::v1::RunResponse r;
    EXPECT_EQ(stub_->Run(&context, Spin(absl::Seconds(5)), &r).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  ASSERT_TRUE(ScrapeUntil([&](const Exposition& e) {
    return e.Sum("compute_tasks_total") == kOk &&
           e.Sum("grpc_server_handled_total") == kOk + 2;
  }));
  Exposition e = Scrape();
  EXPECT_EQ(
      Value(e, "compute_tasks_total", {{"task", "fib"}, {"outcome", "ok"}}),
      kOk);
  EXPECT_EQ(e.Sum("compute_tasks_total", {{"task", "spin"}}), 0);
  EXPECT_EQ(Value(e, "grpc_server_handled_total", Code("OK")), kOk);
  EXPECT_EQ(Value(e, "grpc_server_handled_total", Code("InvalidArgument")), 1);
  EXPECT_EQ(Value(e, "grpc_server_handled_total", Code("ResourceExhausted")),
            1);
  EXPECT_EQ(e.Sum("grpc_server_started_total"), kOk + 2);
  EXPECT_EQ(Value(e, "compute_task_run_seconds_count", {{"task", "fib"}}), kOk);
  // Every handled call in exactly one of the two counters.
  EXPECT_EQ(e.Sum("compute_tasks_rejected_total"), 2);
  EXPECT_EQ(Value(e, "compute_tasks_rejected_total", {{"reason", "deadline"}}),
            1);
  EXPECT_EQ(Value(e, "compute_tasks_rejected_total", {{"reason", "invalid"}}),
            1);
}

// Health (and reflection) calls are counted as go-grpc-prometheus counts
// every service: by service, method and code, with Run's series unchanged.
TEST_F(MetricsTest, HealthCallsAreCountedByServiceAndMethod) {
  Start(1, 4);
  auto health = grpc::health::v1::Health::NewStub(Connect(server_->port()));
  for (const char* service : {"", "compute.v1.Compute", "no.such.Service"}) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    health->Check(&context, request, &response);
  }
  Labels check = {{"grpc_service", "grpc.health.v1.Health"},
                  {"grpc_method", "Check"},
                  {"grpc_type", "unary"}};
  auto with_code = [&](const std::string& code) {
    Labels l = check;
    l["grpc_code"] = code;
    return l;
  };
  ASSERT_TRUE(ScrapeUntil([&](const Exposition& e) {
    return e.Value("grpc_server_handled_total", with_code("NotFound")) == 1.0;
  }));
  Exposition e = Scrape();
  EXPECT_EQ(Value(e, "grpc_server_started_total", check), 3);
  EXPECT_EQ(Value(e, "grpc_server_handled_total", with_code("OK")), 2);
  EXPECT_EQ(Value(e, "grpc_server_handling_seconds_count", check), 3);
  Labels watch = {{"grpc_service", "grpc.health.v1.Health"},
                  {"grpc_method", "Watch"},
                  {"grpc_type", "server_stream"},
                  {"grpc_code", "OK"}};
  EXPECT_EQ(Value(e, "grpc_server_handled_total", watch), 0);
  // Run's own series saw none of it.
  EXPECT_EQ(Value(e, "grpc_server_started_total",
                  {{"grpc_service", "compute.v1.Compute"},
                   {"grpc_method", "Run"},
                   {"grpc_type", "unary"}}),
            0);
  // A drain fails the health requests waiting on each queue: no call came,
  // none is counted (before, 2 per I/O thread, started and CANCELLED).
  server_->Drain(absl::ZeroDuration());
  e = Scrape();
  EXPECT_EQ(Value(e, "grpc_server_started_total", check), 3);
  EXPECT_EQ(e.Sum("grpc_server_started_total"), 3);
  EXPECT_EQ(e.Sum("grpc_server_handled_total"), 3);
}

// A queued call displaced by a more critical one is refused
// (RESOURCE_EXHAUSTED) and counted as its tenant's refusal, as it is in
// compute_tasks_rejected_total, besides its task's outcome "preempted".
// Until 2026-12-05 only the outcome counted it: the dashboard's refusals
// by tenant missed the greedy tenant's displaced calls.
TEST(TenantSeriesTest, ADisplacedCallIsItsTenantsRefusal) {
  metrics::MetricsOptions options;
  options.max_tenant_series = 4;
  metrics::Metrics metrics(std::move(options));
  service::ServerConfig config = LocalConfig(/*workers=*/1, /*capacity=*/1);
  config.trust_tenant_header = true;
  config.pool.observer = metrics.pool_observer();
  config.observer = metrics.call_observer();
  config.tenant_observer = metrics.tenant_observer();
  std::unique_ptr<service::ComputeServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  metrics.AttachPool(&server->pool());
  ASSERT_TRUE(metrics.Serve("127.0.0.1", 0).ok());
  auto stub = compute::v1::Compute::NewStub(Connect(server->port()));
  auto scrape = [&] {
    auto e = metrics::testing::Scrape(metrics.port());
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *e : Exposition();
  };
  using Metadata = std::vector<std::pair<std::string, std::string>>;
  {
    AsyncCall running(*stub, Sleep(absl::Seconds(30)), absl::InfiniteDuration(),
                      Metadata{{"compute-tenant", "a"}});
    ASSERT_TRUE(WaitUntil(
        [&] { return scrape().Value("compute_pool_workers_busy") == 1.0; },
        kWaitLimit, kIoPoll));
    AsyncCall displaced(
        *stub, Sleep(absl::Seconds(30)), absl::InfiniteDuration(),
        Metadata{{"compute-tenant", "hog"}, {"compute-priority", "sheddable"}});
    ASSERT_TRUE(WaitUntil(
        [&] { return scrape().Value("compute_pool_queue_depth") == 1.0; },
        kWaitLimit, kIoPoll));
    AsyncCall critical(
        *stub, Sleep(absl::Seconds(30)), absl::InfiniteDuration(),
        Metadata{{"compute-tenant", "b"}, {"compute-priority", "critical"}});
    EXPECT_EQ(displaced.Wait().error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }  // cancels the running and the critical call
  ASSERT_TRUE(WaitUntil(
      [&] {
        return scrape().Sum("compute_tenant_tasks_total",
                            {{"outcome", "cancelled"}}) == 2.0;
      },
      kWaitLimit, kIoPoll));
  Exposition e = scrape();
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "hog"}, {"outcome", "preempted"}}),
            1);
  EXPECT_EQ(e.Value("compute_tenant_rejected_total", {{"tenant", "hog"}}), 1);
  EXPECT_EQ(e.Sum("compute_tenant_rejected_total"), 1);
  EXPECT_EQ(e.Sum("compute_tasks_rejected_total"), 1);
  metrics.AttachPool(nullptr);
  server.reset();
}

// --tenant_metrics on a real server: tenants from the compute-tenant header,
// the first two counted get their own series, the third counts as "other"; the
// refusal and the completions are also counted by priority.
TEST(TenantSeriesTest, NamedTenantsOtherAndPriorities) {
  metrics::MetricsOptions options;
  options.max_tenant_series = 2;
  metrics::Metrics metrics(std::move(options));
  service::ServerConfig config = LocalConfig(/*workers=*/1, /*capacity=*/1);
  config.trust_tenant_header = true;
  config.pool.observer = metrics.pool_observer();
  config.observer = metrics.call_observer();
  config.tenant_observer = metrics.tenant_observer();
  std::unique_ptr<service::ComputeServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  metrics.AttachPool(&server->pool());
  ASSERT_TRUE(metrics.Serve("127.0.0.1", 0).ok());
  auto stub = compute::v1::Compute::NewStub(Connect(server->port()));
  auto scrape = [&] {
    auto e = metrics::testing::Scrape(metrics.port());
    EXPECT_TRUE(e.ok()) << e.status();
    return e.ok() ? *e : Exposition();
  };
  using Metadata = std::vector<std::pair<std::string, std::string>>;

  for (int i = 0; i < 2; ++i) {
    AsyncCall a(
        *stub, Fib(1), kWait,
        Metadata{{"compute-tenant", "a"}, {"compute-priority", "critical"}});
    EXPECT_TRUE(a.Wait().ok());
  }
  {
    // b runs, c waits in the queue (capacity 1), c's next call is refused.
    AsyncCall b(*stub, Sleep(absl::Seconds(30)), absl::InfiniteDuration(),
                Metadata{{"compute-tenant", "b"}});
    ASSERT_TRUE(WaitUntil(
        [&] { return scrape().Value("compute_pool_workers_busy") == 1.0; },
        kWaitLimit, kIoPoll));
    AsyncCall c(*stub, Sleep(absl::Seconds(30)), absl::InfiniteDuration(),
                Metadata{{"compute-tenant", "c"}});
    ASSERT_TRUE(WaitUntil(
        [&] { return scrape().Value("compute_pool_queue_depth") == 1.0; },
        kWaitLimit, kIoPoll));
    AsyncCall refused(
        *stub, Fib(1), kWait,
        Metadata{{"compute-tenant", "c"}, {"compute-priority", "sheddable"}});
    EXPECT_EQ(refused.Wait().error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }  // cancels b and c
  ASSERT_TRUE(WaitUntil(
      [&] {
        return scrape().Sum("compute_tenant_tasks_total",
                            {{"outcome", "cancelled"}}) == 2.0;
      },
      kWaitLimit, kIoPoll));

  // A tenant is counted when its call ends: a (two calls), then c (its
  // refusal) took the two places; b, whose call ended last, is "other".
  Exposition e = scrape();
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "a"}, {"outcome", "ok"}}),
            2);
  EXPECT_EQ(e.Value("compute_tenant_rejected_total", {{"tenant", "c"}}), 1);
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "c"}, {"outcome", "cancelled"}}),
            1);
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "other"}, {"outcome", "cancelled"}}),
            1);
  EXPECT_GT(*e.Value("compute_tenant_run_seconds_total", {{"tenant", "other"}}),
            0);
  EXPECT_TRUE(e.All("compute_tenant_tasks_total", {{"tenant", "b"}}).empty());
  EXPECT_EQ(e.Sum("compute_tenant_rejected_total"), 1);
  EXPECT_EQ(e.Value("compute_priority_tasks_total",
                    {{"priority", "critical"}, {"outcome", "ok"}}),
            2);
  EXPECT_EQ(
      e.Sum("compute_priority_rejected_total", {{"priority", "sheddable"}}), 1);
  EXPECT_EQ(e.Sum("compute_priority_rejected_total"), 1);
  metrics.AttachPool(nullptr);
  server.reset();
}

// A trusted `compute-tenant` that is not printable ASCII is refused
// INVALID_ARGUMENT, once, and never queued. gRPC 1.51's server takes any
// byte in a metadata value (its clients refuse to send one: a raw HTTP/2
// client does); before, such a tenant got its own series, and its label
// value, not UTF-8, made Prometheus refuse every scrape of the server.
TEST(TenantSeriesTest, ATenantHeaderNotPrintableAsciiIsRefusedNotASeries) {
  metrics::MetricsOptions options;
  options.max_tenant_series = 4;
  metrics::Metrics metrics(std::move(options));
  service::ServerConfig config = LocalConfig(/*workers=*/1, /*capacity=*/4);
  config.trust_tenant_header = true;
  // No load reports: gRPC Huffman-codes their trailers, which the raw
  // client's HPACK decoder does not read (raw_http2.h).
  config.load_report_interval = absl::InfiniteDuration();
  config.pool.observer = metrics.pool_observer();
  config.observer = metrics.call_observer();
  config.tenant_observer = metrics.tenant_observer();
  std::unique_ptr<service::ComputeServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  metrics.AttachPool(&server->pool());
  ASSERT_TRUE(metrics.Serve("127.0.0.1", 0).ok());

  for (const std::string& tenant :
       {std::string("bad\xff\xfe"), std::string("caf\xc3\xa9"),
        std::string("tab\there")}) {
    SCOPED_TRACE(absl::CHexEscape(tenant));
    RawHttp2Connection conn;
    ASSERT_TRUE(conn.Connect(server->port()));
    ASSERT_TRUE(
        conn.Send(Http2Frame(http2::kHeaders, http2::kEndHeaders, 1,
                             RunCallHeaders("application/grpc",
                                            {{"compute-tenant", tenant}})) +
                  Http2Frame(http2::kData, http2::kEndStream, 1,
                             GrpcMessage(Fib(10).SerializeAsString()))));
    StreamEnd end = conn.ReadUntilEnd(1, kWait);
    ASSERT_EQ(end.kind, StreamEnd::Kind::kTrailers) << end.error;
    EXPECT_EQ(end.grpc_status(),
              static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
    EXPECT_THAT(end.fields["grpc-message"],
                ::testing::HasSubstr("compute-tenant must be at most 128 "
                                     "bytes of printable ASCII (space to ~)"));
  }
  EXPECT_EQ(server->pool().Stats().accepted, 0u);

  // The scrape parses (the parser, as Prometheus, refuses a label value
  // that is not UTF-8): the three were counted invalid, under no tenant.
  auto e = metrics::testing::Scrape(metrics.port());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->Sum("compute_tasks_rejected_total", {{"reason", "invalid"}}), 3);
  EXPECT_EQ(e->Sum("compute_tenant_tasks_total"), 0);
  EXPECT_EQ(e->Sum("compute_tenant_rejected_total"), 0);
  EXPECT_EQ(e->All("compute_tenant_rejected_total").size(), 1u)
      << "only tenant=\"other\"";
  metrics.AttachPool(nullptr);
  server.reset();
}

}  // namespace
}  // namespace compute::testing
