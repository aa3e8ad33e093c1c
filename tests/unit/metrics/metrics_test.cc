#include "server/metrics/metrics.h"

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "prometheus/check_names.h"
#include "server/metrics/build_info.h"
#include "server/tasks/registry.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(MetricsTest, EveryFamilyOnceWithHelpAndAValidName) {
  Metrics metrics;
  PoolOptions options;
  auto pool = WorkerPool::Create(options);
  ASSERT_TRUE(pool.ok());
  CostModel costs(std::vector<double>(tasks::kNumTaskKinds, 1e-9));
  metrics.AttachPool(pool->get(), &costs);

  std::map<std::string, prometheus::MetricType> types;
  for (const prometheus::MetricFamily& f : metrics.Collect()) {
    EXPECT_TRUE(types.emplace(f.name, f.type).second) << "twice: " << f.name;
    EXPECT_FALSE(f.help.empty()) << f.name;
    EXPECT_TRUE(prometheus::CheckMetricName(f.name)) << f.name;
    EXPECT_FALSE(f.metric.empty()) << f.name;
    for (const auto& m : f.metric) {
      for (const auto& l : m.label) {
        EXPECT_TRUE(prometheus::CheckLabelName(l.name)) << l.name;
      }
    }
    if (f.type == prometheus::MetricType::Counter) {
      EXPECT_THAT(f.name, ::testing::EndsWith("_total"));
    }
  }
  using T = prometheus::MetricType;
  const std::map<std::string, T> want = {
      {"compute_pool_queue_depth", T::Gauge},
      {"compute_pool_queue_capacity", T::Gauge},
      {"compute_pool_workers", T::Gauge},
      {"compute_pool_workers_busy", T::Gauge},
      {"compute_pool_min_workers", T::Gauge},
      {"compute_pool_max_workers", T::Gauge},
      {"compute_pool_queued_cost_seconds", T::Gauge},
      {"compute_pool_running_cost_seconds", T::Gauge},
      {"compute_pool_expected_wait_seconds", T::Gauge},
      {"compute_pool_target_queue_wait_seconds", T::Gauge},
      {"compute_pool_overloaded", T::Gauge},
      {"compute_pool_inflight_bytes", T::Gauge},
      {"compute_pool_inflight_bytes_limit", T::Gauge},
      {"compute_pool_worker_start_failures_total", T::Counter},
      {"compute_task_cost_seconds_per_unit", T::Gauge},
      {"compute_task_probes_total", T::Counter},
      {"compute_tasks_total", T::Counter},
      {"compute_tasks_rejected_total", T::Counter},
      {"compute_priority_tasks_total", T::Counter},
      {"compute_refusal_seconds", T::Histogram},
      {"compute_answers_undelivered_total", T::Counter},
      {"compute_priority_rejected_total", T::Counter},
      {"compute_task_queue_wait_seconds", T::Histogram},
      {"compute_task_run_seconds", T::Histogram},
      {"grpc_server_started_total", T::Counter},
      {"grpc_server_handled_total", T::Counter},
      {"grpc_server_handling_seconds", T::Histogram},
      {"process_cpu_seconds_total", T::Counter},
      {"process_resident_memory_bytes", T::Gauge},
      {"process_virtual_memory_bytes", T::Gauge},
      {"process_open_fds", T::Gauge},
      {"process_max_fds", T::Gauge},
      {"process_start_time_seconds", T::Gauge},
      {"process_threads", T::Gauge},
      {"compute_build_info", T::Gauge},
      {"compute_memory_returns_total", T::Counter},
      {"compute_transport_quota_bytes", T::Gauge},
      {"compute_log_lines_dropped_total", T::Counter},
  };
  EXPECT_EQ(types, want);
  metrics.AttachPool(nullptr);
}

TEST(MetricsTest, BuildInfo) {
  Metrics metrics;
  auto e = testing::ParseExposition(metrics.Text());
  ASSERT_TRUE(e.ok()) << e.status();
  std::vector<testing::Sample> info = e->All("compute_build_info");
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0].value, 1);
  EXPECT_EQ(info[0].labels,
            (testing::Labels{{"version", std::string(BuildVersion())},
                             {"revision", std::string(BuildRevision())}}));
  EXPECT_THAT(std::string(BuildVersion()),
              ::testing::MatchesRegex("[0-9]+\\.[0-9]+\\.[0-9]+"));
  EXPECT_FALSE(BuildRevision().empty());
}

TEST(MetricsTest, TransportQuotaIsExportedAsGiven) {
  MetricsOptions options;
  options.transport_quota_bytes = int64_t{384} << 20;
  Metrics metrics(std::move(options));
  auto e = testing::ParseExposition(metrics.Text());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->Value("compute_transport_quota_bytes", {}),
            static_cast<double>(int64_t{384} << 20));
  // No quota: 0, as compute_pool_inflight_bytes_limit says "no limit".
  Metrics unlimited;
  auto u = testing::ParseExposition(unlimited.Text());
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->Value("compute_transport_quota_bytes", {}), 0);
}

TEST(MetricsTest, LogLinesDroppedIsReadAtEachScrape) {
  std::atomic<uint64_t> dropped{0};
  MetricsOptions options;
  options.log_lines_dropped = [&dropped] { return dropped.load(); };
  Metrics metrics(std::move(options));
  auto before = testing::ParseExposition(metrics.Text());
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->Value("compute_log_lines_dropped_total", {}), 0);
  dropped = 37;
  auto after = testing::ParseExposition(metrics.Text());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->Value("compute_log_lines_dropped_total", {}), 37);
  // Without a source: 0, from the first scrape.
  Metrics none;
  auto n = testing::ParseExposition(none.Text());
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(n->Value("compute_log_lines_dropped_total", {}), 0);
}

TEST(MetricsTest, MemoryReturnsByRuleFromZero) {
  Metrics metrics;
  auto before = testing::ParseExposition(metrics.Text());
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->Value("compute_memory_returns_total", {{"rule", "cap"}}),
            0);
  EXPECT_EQ(before->Value("compute_memory_returns_total", {{"rule", "idle"}}),
            0);
  metrics.CountMemoryReturn(Metrics::MemoryReturnRule::kCap);
  metrics.CountMemoryReturn(Metrics::MemoryReturnRule::kIdle);
  metrics.CountMemoryReturn(Metrics::MemoryReturnRule::kIdle);
  auto after = testing::ParseExposition(metrics.Text());
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->Value("compute_memory_returns_total", {{"rule", "cap"}}), 1);
  EXPECT_EQ(after->Value("compute_memory_returns_total", {{"rule", "idle"}}),
            2);
}

TEST(MetricsTest, ObserversFeedTheOutput) {
  Metrics metrics;
  metrics.call_observer()->OnCallStarted("Run");
  metrics.call_observer()->OnRejected(service::RejectReason::kDeadline,
                                      Priority::kDefault);
  metrics.call_observer()->OnCallHandled(
      "Run", grpc::StatusCode::RESOURCE_EXHAUSTED, absl::Milliseconds(1));
  TaskResult r;
  r.tag = 0;
  r.worker = 0;
  metrics.pool_observer()->OnTaskFinished(r);
  auto e = testing::ParseExposition(metrics.Text());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->Sum("grpc_server_started_total"), 1);
  EXPECT_EQ(
      e->Sum("grpc_server_handled_total", {{"grpc_code", "ResourceExhausted"}}),
      1);
  EXPECT_EQ(e->Value("compute_tasks_rejected_total", {{"reason", "deadline"}}),
            1);
  EXPECT_EQ(e->Sum("compute_tasks_total", {{"outcome", "ok"}}), 1);
  EXPECT_TRUE(e->All("compute_pool_queue_depth").empty()) << "no pool attached";
}

TEST(MetricsTest, ServesOverHttp) {
  Metrics metrics;
  EXPECT_EQ(metrics.port(), 0);
  ASSERT_TRUE(metrics.Serve("127.0.0.1", 0).ok());
  ASSERT_GT(metrics.port(), 0);
  auto r = testing::HttpGet("127.0.0.1", metrics.port(), "/metrics");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_THAT(r->content_type, StartsWith("text/plain"));
  auto e = testing::ParseExposition(r->body);
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->All("compute_build_info").size(), 1u);
  // 17 codes for each of Run, Health's Check and Watch, and reflection.
  EXPECT_EQ(e->All("grpc_server_handled_total").size(), 4 * 17u);

  EXPECT_EQ(metrics.Serve("127.0.0.1", 0).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(MetricsTest, APortInUseIsAnErrorNotAnException) {
  Metrics first;
  ASSERT_TRUE(first.Serve("127.0.0.1", 0).ok());
  Metrics second;
  absl::Status s = second.Serve("127.0.0.1", first.port());
  EXPECT_EQ(s.code(), absl::StatusCode::kAlreadyExists) << s;
  EXPECT_EQ(s.message(),
            absl::StrCat("--metrics_port: port ", first.port(), " is in use"));
  EXPECT_EQ(second.port(), 0);
}

TEST(MetricsTest, AnAddressNotOfThisHostIsAnErrorNotAnException) {
  Metrics metrics;
  // TEST-NET-1 (RFC 5737): never an address of this host.
  absl::Status s = metrics.Serve("192.0.2.1", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_EQ(s.message(),
            "--metrics_address: '192.0.2.1' is not an address of this host");
  EXPECT_EQ(metrics.port(), 0);
  // civetweb as Debian builds it has no IPv6: said up front, not as "cannot
  // listen (in use, or not an address of this host)".
  s = metrics.Serve("::1", 0);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr("'::1' is IPv6"));
  EXPECT_EQ(metrics.port(), 0);
}

}  // namespace
}  // namespace compute::metrics
