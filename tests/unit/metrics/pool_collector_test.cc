#include "server/metrics/pool_collector.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::metrics {
namespace {

using testing::Exposition;

Exposition Parse(const PoolCollector& collector) {
  auto e = testing::SerializeAndParse(collector.Collect());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : Exposition();
}

TEST(PoolCollectorTest, NothingUntilAttached) {
  PoolCollector collector;
  EXPECT_TRUE(collector.Collect().empty());
  collector.Attach([] { return PoolStats(); });
  EXPECT_FALSE(collector.Collect().empty());
  collector.Attach(nullptr);
  EXPECT_TRUE(collector.Collect().empty());
}

TEST(PoolCollectorTest, GaugesAreTheStatsAtScrapeTime) {
  PoolStats stats;
  stats.queue_depth = 7;
  stats.queue_capacity = 64;
  stats.workers = 3;
  stats.busy = 2;
  stats.min_workers = 1;
  stats.max_workers = 4;
  stats.queued_cost = absl::Milliseconds(350);
  stats.running_cost = absl::Milliseconds(50);
  stats.expected_wait = absl::Milliseconds(200);
  stats.target_queue_wait = absl::Milliseconds(100);
  stats.overloaded = true;
  stats.inflight_bytes = 1 << 20;
  stats.max_inflight_bytes = 512 << 20;
  stats.worker_start_failures = 2;
  PoolCollector collector;
  collector.Attach([&stats] { return stats; });

  Exposition e = Parse(collector);
  const std::vector<std::pair<std::string, double>> want = {
      {"compute_pool_queue_depth", 7},
      {"compute_pool_queue_capacity", 64},
      {"compute_pool_workers", 3},
      {"compute_pool_workers_busy", 2},
      {"compute_pool_min_workers", 1},
      {"compute_pool_max_workers", 4},
      {"compute_pool_queued_cost_seconds", 0.35},
      {"compute_pool_running_cost_seconds", 0.05},
      {"compute_pool_expected_wait_seconds", 0.2},
      {"compute_pool_target_queue_wait_seconds", 0.1},
      {"compute_pool_overloaded", 1},
      {"compute_pool_inflight_bytes", 1 << 20},
      {"compute_pool_inflight_bytes_limit", 512 << 20}};
  for (const auto& [name, value] : want) {
    EXPECT_EQ(e.types[name], "gauge") << name;
    EXPECT_EQ(e.Value(name), value) << name;
  }
  EXPECT_EQ(e.types["compute_pool_worker_start_failures_total"], "counter");
  EXPECT_EQ(e.Value("compute_pool_worker_start_failures_total"), 2);
  EXPECT_EQ(e.samples.size(), want.size() + 1) << "one unlabelled sample each";

  stats.queue_depth = 0;
  stats.busy = 0;
  e = Parse(collector);
  EXPECT_EQ(e.Value("compute_pool_queue_depth"), 0);
  EXPECT_EQ(e.Value("compute_pool_workers_busy"), 0);
}

TEST(PoolCollectorTest, CostPerUnitIsLabelledByTaskKind) {
  PoolCollector collector;
  PoolStats stats;
  stats.target_queue_wait = absl::InfiniteDuration();
  collector.Attach([stats] { return stats; },
                   [] {
                     return std::vector<PoolCollector::KindCost>{
                         {.seconds_per_unit = 4.7e-10},
                         {.seconds_per_unit = 1.0,
                          .probes_in_time = 3,
                          .probes_late = 2,
                          .probes_other = 1}};
                   });
  Exposition e = Parse(collector);
  EXPECT_EQ(e.types["compute_task_cost_seconds_per_unit"], "gauge");
  EXPECT_EQ(e.Value("compute_task_cost_seconds_per_unit", {{"task", "fib"}}),
            4.7e-10);
  EXPECT_EQ(e.Value("compute_task_cost_seconds_per_unit", {{"task", "spin"}}),
            1.0);
  // Probes, by kind and how they ended; every series there from the start.
  EXPECT_EQ(e.types["compute_task_probes_total"], "counter");
  EXPECT_EQ(e.Value("compute_task_probes_total",
                    {{"task", "spin"}, {"outcome", "in_time"}}),
            3);
  EXPECT_EQ(e.Value("compute_task_probes_total",
                    {{"task", "spin"}, {"outcome", "late"}}),
            2);
  EXPECT_EQ(e.Value("compute_task_probes_total",
                    {{"task", "spin"}, {"outcome", "other"}}),
            1);
  for (const char* outcome : {"in_time", "late", "other"}) {
    EXPECT_EQ(e.Value("compute_task_probes_total",
                      {{"task", "fib"}, {"outcome", outcome}}),
              0)
        << outcome;
  }
  // No overload control: the target is +Inf, as Prometheus writes it.
  EXPECT_TRUE(std::isinf(
      e.Value("compute_pool_target_queue_wait_seconds").value_or(0)));
}

// The real pool: W tasks held running and C queued.
TEST(PoolCollectorTest, ReadsALivePool) {
  constexpr int kWorkers = 2;
  constexpr int kQueued = 3;
  Notification release;  // outlives the pool, whose tasks wait on it
  PoolOptions options;
  options.min_workers = options.max_workers = kWorkers;
  options.queue_capacity = 8;
  auto pool = WorkerPool::Create(options);
  ASSERT_TRUE(pool.ok()) << pool.status();
  PoolCollector collector;
  const WorkerPool* p = pool->get();
  collector.Attach([p] { return p->Stats(); });

  for (int i = 0; i < kWorkers + kQueued; ++i) {
    auto handle = (*pool)->Submit(
        [&release](const CancelToken&) {
          release.WaitForNotification();
          return absl::OkStatus();
        },
        [](const TaskResult&) {});
    ASSERT_TRUE(handle.ok());
  }
  auto wait_for = [&](double busy, double depth) {
    absl::Time end = absl::Now() + absl::Seconds(30);
    for (;;) {
      Exposition e = Parse(collector);
      if (e.Value("compute_pool_workers_busy") == busy &&
          e.Value("compute_pool_queue_depth") == depth) {
        return true;
      }
      if (absl::Now() > end) return false;
      absl::SleepFor(absl::Milliseconds(1));
    }
  };
  EXPECT_TRUE(wait_for(kWorkers, kQueued));
  Exposition e = Parse(collector);
  EXPECT_EQ(e.Value("compute_pool_workers"), kWorkers);
  EXPECT_EQ(e.Value("compute_pool_queue_capacity"), 8);
  release.Notify();
  EXPECT_TRUE(wait_for(0, 0));
  collector.Attach(nullptr);
}

}  // namespace
}  // namespace compute::metrics
