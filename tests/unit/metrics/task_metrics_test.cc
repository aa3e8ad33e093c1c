#include "server/metrics/task_metrics.h"

#include <algorithm>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "gtest/gtest.h"
#include "server/metrics/duration_histogram.h"
#include "server/tasks/registry.h"
#include "server/tasks/sleep.h"
#include "server/tasks/spin.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::metrics {
namespace {

// The longest spin or sleep the API takes runs a little past its duration
// (a 2 s sleep ran 2001 ms): it lands in a bucket, not in +Inf only, so
// quantiles of such tasks are not all reported as the top bound.
TEST(DurationHistogramTest, TheLongestTaskLandsInABucket) {
  const DurationHistogram& h = DurationHistogram::Latency();
  for (absl::Duration longest :
       {tasks::kMaxSpinDuration, tasks::kMaxSleepDuration}) {
    const size_t bucket = h.BucketOf(longest + absl::Milliseconds(50));
    ASSERT_LT(bucket, h.bounds().size()) << longest;
    EXPECT_LE(h.bounds()[bucket], absl::ToDoubleSeconds(longest) * 2);
  }
}

// Under overload the queue waits of accepted calls sit just above the
// default --target_queue_wait (100 ms): the bucket they land in ends within
// 1.5x of it, so histogram_quantile reads the overload rule's target
// closely (with 0.25 next, a p50 of 105 ms read as 140-160).
TEST(DurationHistogramTest, WaitsJustAboveTheDefaultTargetAreReadClosely) {
  const DurationHistogram& h = DurationHistogram::Latency();
  const absl::Duration target = absl::Milliseconds(100);
  const size_t bucket = h.BucketOf(target + absl::Milliseconds(5));
  ASSERT_LT(bucket, h.bounds().size());
  EXPECT_LE(h.bounds()[bucket], absl::ToDoubleSeconds(target) * 1.5);
}

using testing::Exposition;
using testing::Labels;

uint32_t KindIndex(std::string_view name) {
  for (const tasks::TaskKind& kind : tasks::AllTaskKinds()) {
    if (kind.name == name) return static_cast<uint32_t>(kind.index);
  }
  ADD_FAILURE() << "no task kind " << name;
  return 0;
}

TaskResult Result(std::string_view task, TaskOutcome outcome,
                  absl::Duration queue_wait, absl::Duration run_time,
                  int worker = 0) {
  TaskResult r;
  r.outcome = outcome;
  r.queue_wait = queue_wait;
  r.run_time = run_time;
  r.worker = worker;
  r.tag = KindIndex(task);
  return r;
}

Exposition Parse(const TaskMetrics& metrics) {
  auto e = testing::SerializeAndParse(metrics.Collect());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : Exposition();
}

TEST(TaskMetricsTest, EveryTaskAndOutcomeStartsAtZero) {
  TaskMetrics metrics;
  Exposition e = Parse(metrics);
  EXPECT_EQ(e.types["compute_tasks_total"], "counter");
  EXPECT_EQ(e.types["compute_task_queue_wait_seconds"], "histogram");
  EXPECT_EQ(e.types["compute_task_run_seconds"], "histogram");

  std::set<Labels> seen;
  for (const testing::Sample& s : e.All("compute_tasks_total")) {
    EXPECT_EQ(s.value, 0) << s.labels.at("task");
    seen.insert(s.labels);
  }
  std::set<Labels> want;
  for (const tasks::TaskKind& kind : tasks::AllTaskKinds()) {
    for (std::string outcome : {"ok", "cancelled", "deadline_exceeded",
                                "failed", "shut_down", "preempted"}) {
      want.insert({{"task", std::string(kind.name)}, {"outcome", outcome}});
    }
    EXPECT_EQ(e.Value("compute_task_run_seconds_count",
                      {{"task", std::string(kind.name)}}),
              0);
  }
  EXPECT_EQ(seen, want);
  EXPECT_EQ(e.All("compute_tasks_total").size(), want.size());
  EXPECT_EQ(e.Value("compute_task_queue_wait_seconds_count"), 0);
  EXPECT_EQ(e.Value("compute_task_queue_wait_seconds_sum"), 0);
}

TEST(TaskMetricsTest, CountsByTaskAndOutcomeAndRecordsDurations) {
  TaskMetrics metrics;
  metrics.OnTaskFinished(Result("fib", TaskOutcome::kOk, absl::Microseconds(50),
                                absl::Milliseconds(3)));
  metrics.OnTaskFinished(Result("spin", TaskOutcome::kOk,
                                absl::Microseconds(300), absl::Seconds(1)));
  // Cancelled while queued: waited, never ran.
  metrics.OnTaskFinished(Result("spin", TaskOutcome::kCancelled,
                                absl::Seconds(2), absl::ZeroDuration(), -1));
  // A tag that names no kind is not counted.
  TaskResult stray;
  stray.tag = tasks::kNumTaskKinds;
  metrics.OnTaskFinished(stray);

  Exposition e = Parse(metrics);
  EXPECT_EQ(
      e.Value("compute_tasks_total", {{"task", "fib"}, {"outcome", "ok"}}), 1);
  EXPECT_EQ(
      e.Value("compute_tasks_total", {{"task", "spin"}, {"outcome", "ok"}}), 1);
  EXPECT_EQ(e.Value("compute_tasks_total",
                    {{"task", "spin"}, {"outcome", "cancelled"}}),
            1);
  EXPECT_EQ(e.Sum("compute_tasks_total"), 3);

  // Queue wait: every task (50 us, 300 us, 2 s); `le` is inclusive.
  auto wait_le = [&](const std::string& le) {
    return e.Value("compute_task_queue_wait_seconds_bucket", {{"le", le}});
  };
  EXPECT_EQ(wait_le("2.5e-05"), 0);
  EXPECT_EQ(wait_le("5e-05"), 1);
  EXPECT_EQ(wait_le("0.0001"), 1);
  EXPECT_EQ(wait_le("0.00025"), 1);
  EXPECT_EQ(wait_le("0.0005"), 2);
  EXPECT_EQ(wait_le("1"), 2);
  EXPECT_EQ(wait_le("2.5"), 3);
  EXPECT_EQ(wait_le("60"), 3);
  EXPECT_EQ(wait_le("+Inf"), 3);
  EXPECT_EQ(e.Value("compute_task_queue_wait_seconds_count"), 3);
  EXPECT_DOUBLE_EQ(*e.Value("compute_task_queue_wait_seconds_sum"), 2.00035);

  // Run time: only tasks that ran, by kind.
  auto run_le = [&](const std::string& task, const std::string& le) {
    return e.Value("compute_task_run_seconds_bucket",
                   {{"task", task}, {"le", le}});
  };
  EXPECT_EQ(run_le("fib", "0.0025"), 0);
  EXPECT_EQ(run_le("fib", "0.005"), 1);
  EXPECT_EQ(run_le("spin", "0.5"), 0);
  EXPECT_EQ(run_le("spin", "1"), 1) << "a bound is inclusive";
  EXPECT_EQ(e.Value("compute_task_run_seconds_count", {{"task", "spin"}}), 1);
  EXPECT_DOUBLE_EQ(*e.Value("compute_task_run_seconds_sum", {{"task", "fib"}}),
                   0.003);
  EXPECT_EQ(e.Value("compute_task_run_seconds_count", {{"task", "sha256"}}), 0);
}

TEST(TaskMetricsTest, CountsByPriorityAndOutcome) {
  TaskMetrics metrics;
  TaskResult critical = Result("fib", TaskOutcome::kOk, absl::Microseconds(5),
                               absl::Microseconds(7));
  critical.priority = Priority::kCritical;
  metrics.OnTaskFinished(critical);
  TaskResult displaced =
      Result("spin", TaskOutcome::kPreempted, absl::Milliseconds(3),
             absl::ZeroDuration(), -1);
  displaced.priority = Priority::kSheddable;
  metrics.OnTaskFinished(displaced);
  metrics.OnTaskFinished(Result("spin", TaskOutcome::kOk, absl::Microseconds(3),
                                absl::Milliseconds(1)));

  Exposition e = Parse(metrics);
  EXPECT_EQ(e.All("compute_priority_tasks_total").size(),
            size_t{kNumPriorities} * kNumTaskOutcomes);
  EXPECT_EQ(e.Value("compute_priority_tasks_total",
                    {{"priority", "critical"}, {"outcome", "ok"}}),
            1);
  EXPECT_EQ(e.Value("compute_priority_tasks_total",
                    {{"priority", "sheddable"}, {"outcome", "preempted"}}),
            1);
  EXPECT_EQ(e.Value("compute_priority_tasks_total",
                    {{"priority", "default"}, {"outcome", "ok"}}),
            1);
  EXPECT_EQ(e.Sum("compute_priority_tasks_total"), 3);
}

// From 10 us: a refusal or a trivial call takes the server tens of
// microseconds, which a first bucket of 100 us could not tell apart.
TEST(TaskMetricsTest, BucketsAreCumulativeAndResolve10usTo120s) {
  TaskMetrics metrics;
  Exposition e = Parse(metrics);
  std::vector<testing::Sample> buckets =
      e.All("compute_task_queue_wait_seconds_bucket");
  ASSERT_FALSE(buckets.empty());
  std::vector<double> bounds;
  for (const auto& b : buckets) {
    double le = 0;
    ASSERT_TRUE(b.labels.at("le") == "+Inf" ||
                absl::SimpleAtod(b.labels.at("le"), &le));
    if (b.labels.at("le") != "+Inf") bounds.push_back(le);
  }
  EXPECT_DOUBLE_EQ(bounds.front(), 0.00001);
  EXPECT_DOUBLE_EQ(bounds.back(), 120);
  EXPECT_TRUE(std::is_sorted(bounds.begin(), bounds.end()));
  // No gap wider than 4x between neighbouring bounds.
  for (size_t i = 1; i < bounds.size(); ++i) {
    EXPECT_LE(bounds[i] / bounds[i - 1], 4.0) << bounds[i];
  }
}

TEST(TaskMetricsTest, ConcurrentObserversLoseNothing) {
  TaskMetrics metrics;
  constexpr int kThreads = 8;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics] {
      for (int i = 0; i < kPerThread; ++i) {
        metrics.OnTaskFinished(Result("primes", TaskOutcome::kOk,
                                      absl::Microseconds(1),
                                      absl::Microseconds(2)));
      }
    });
  }
  // Scrapes while the workers record: values only grow.
  double last = 0;
  for (int i = 0; i < 20; ++i) {
    Exposition e = Parse(metrics);
    double now = e.Sum("compute_tasks_total");
    EXPECT_GE(now, last);
    last = now;
  }
  for (auto& t : threads) t.join();
  Exposition e = Parse(metrics);
  constexpr double kTotal = kThreads * kPerThread;
  EXPECT_EQ(
      e.Value("compute_tasks_total", {{"task", "primes"}, {"outcome", "ok"}}),
      kTotal);
  EXPECT_EQ(e.Value("compute_task_queue_wait_seconds_count"), kTotal);
  EXPECT_EQ(e.Value("compute_task_run_seconds_count", {{"task", "primes"}}),
            kTotal);
  EXPECT_NEAR(*e.Value("compute_task_run_seconds_sum", {{"task", "primes"}}),
              kTotal * 2e-6, 1e-9);
}

}  // namespace
}  // namespace compute::metrics
