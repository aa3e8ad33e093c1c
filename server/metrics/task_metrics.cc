#include "server/metrics/task_metrics.h"

#include <string>

#include "server/metrics/families.h"
#include "server/tasks/registry.h"

namespace compute::metrics {

using prometheus::MetricType;

TaskMetrics::TaskMetrics()
    : histogram_(DurationHistogram::Latency()),
      queue_wait_base_(tasks::kNumTaskKinds * kNumTaskOutcomes),
      run_base_(queue_wait_base_ + histogram_.slots()),
      priority_base_(run_base_ + tasks::kNumTaskKinds * histogram_.slots()),
      counters_(priority_base_ + kNumPriorities * kNumTaskOutcomes) {}

void TaskMetrics::OnTaskFinished(const TaskResult& result) {
  if (result.tag >= static_cast<uint32_t>(tasks::kNumTaskKinds)) return;
  const size_t kind = result.tag;
  ShardedCounters::Stripe& stripe = counters_.Local();
  stripe.Add(TotalIndex(kind, result.outcome));
  stripe.Add(PriorityIndex(result.priority, result.outcome));
  histogram_.Observe(stripe, queue_wait_base_, result.queue_wait);
  if (result.worker >= 0) {
    histogram_.Observe(stripe, RunBase(kind), result.run_time);
  }
}

std::vector<prometheus::MetricFamily> TaskMetrics::Collect() const {
  const std::vector<uint64_t> snapshot = counters_.Snapshot();
  auto kinds = tasks::AllTaskKinds();

  auto total = MakeFamily(
      "compute_tasks_total",
      "Tasks the worker pool completed, by task kind and outcome (ok, "
      "cancelled, deadline_exceeded, failed, shut_down, preempted).",
      MetricType::Counter);
  for (const tasks::TaskKind& kind : kinds) {
    for (int o = 0; o < kNumTaskOutcomes; ++o) {
      auto outcome = static_cast<TaskOutcome>(o);
      AddValue(
          total,
          {{"outcome", std::string(TaskOutcomeName(outcome))},
           {"task", std::string(kind.name)}},
          static_cast<double>(
              snapshot[TotalIndex(static_cast<size_t>(kind.index), outcome)]));
    }
  }

  auto queue_wait = MakeFamily(
      "compute_task_queue_wait_seconds",
      "Time tasks waited in the pool's queue: from submission to start, or "
      "to leaving the queue for tasks that never ran.",
      MetricType::Histogram);
  AddHistogram(queue_wait, {},
               histogram_.ToHistogram(snapshot, queue_wait_base_));

  auto run = MakeFamily("compute_task_run_seconds",
                        "Time tasks ran on a worker, by task kind.",
                        MetricType::Histogram);
  for (const tasks::TaskKind& kind : kinds) {
    AddHistogram(run, {{"task", std::string(kind.name)}},
                 histogram_.ToHistogram(
                     snapshot, RunBase(static_cast<size_t>(kind.index))));
  }

  auto by_priority = MakeFamily(
      "compute_priority_tasks_total",
      "Tasks the worker pool completed, by priority class (critical, "
      "default, sheddable) and outcome.",
      MetricType::Counter);
  for (int p = 0; p < kNumPriorities; ++p) {
    auto priority = static_cast<Priority>(p);
    for (int o = 0; o < kNumTaskOutcomes; ++o) {
      auto outcome = static_cast<TaskOutcome>(o);
      AddValue(by_priority,
               {{"outcome", std::string(TaskOutcomeName(outcome))},
                {"priority", std::string(PriorityName(priority))}},
               static_cast<double>(snapshot[PriorityIndex(priority, outcome)]));
    }
  }

  std::vector<prometheus::MetricFamily> families;
  families.push_back(std::move(total));
  families.push_back(std::move(by_priority));
  families.push_back(std::move(queue_wait));
  families.push_back(std::move(run));
  return families;
}

}  // namespace compute::metrics
