// TaskMetrics: the pool's observer. Counts every finished task by kind and
// outcome and records its queue wait and run time, for
//   compute_tasks_total{task,outcome}           counter
//   compute_task_queue_wait_seconds             histogram
//   compute_task_run_seconds{task}              histogram
//   compute_priority_tasks_total{priority,outcome} counter
//
// OnTaskFinished runs on the worker (or timer, or cancelling) thread that
// completed the task, once per task: it makes five adds to that thread's own
// stripe of ShardedCounters (no lock, no locked instruction), so workers
// never wait for one another or for a scrape. Collect merges the stripes.
//
// The same completions by priority class (critical, default, sheddable)
// show whether the classes get what they were promised under overload.
//
// Every task x outcome series and every task's run histogram exists from
// the start, at 0, so rates and alerts have series before the first task.
// A task's kind is TaskResult::tag (the service puts the kind's index
// there); a tag that names no kind is counted nowhere.
//
// Queue wait covers every accepted task: submit -> start, or submit ->
// leaving the queue for a task that never ran (cancelled or expired while
// queued), since that wait is what its caller saw. Run time covers the tasks
// that ran (TaskResult::worker >= 0).
//
// Thread-safety: all methods may be called concurrently.
#ifndef COMPUTE_SERVER_METRICS_TASK_METRICS_H_
#define COMPUTE_SERVER_METRICS_TASK_METRICS_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/metrics/duration_histogram.h"
#include "server/metrics/sharded_counters.h"
#include "server/pool/worker_pool.h"

namespace compute::metrics {

class TaskMetrics final : public PoolObserver, public prometheus::Collectable {
 public:
  TaskMetrics();

  void OnTaskFinished(const TaskResult& result) override;
  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  static size_t TotalIndex(size_t kind, TaskOutcome outcome) {
    return kind * kNumTaskOutcomes + static_cast<size_t>(outcome);
  }
  size_t RunBase(size_t kind) const {
    return run_base_ + kind * histogram_.slots();
  }
  size_t PriorityIndex(Priority priority, TaskOutcome outcome) const {
    return priority_base_ + static_cast<size_t>(priority) * kNumTaskOutcomes +
           static_cast<size_t>(outcome);
  }

  const DurationHistogram& histogram_;
  const size_t queue_wait_base_;
  const size_t run_base_;
  const size_t priority_base_;
  ShardedCounters counters_;
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_TASK_METRICS_H_
