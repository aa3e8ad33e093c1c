// PoolCollector: the worker pool's gauges, read from PoolStats (a snapshot
// the pool takes under its lock) at scrape time, so the pool does nothing
// for them:
//   compute_pool_queue_depth, compute_pool_queue_capacity,
//   compute_pool_workers, compute_pool_workers_busy,
//   compute_pool_min_workers, compute_pool_max_workers,
//   compute_pool_queued_cost_seconds, compute_pool_running_cost_seconds,
//   compute_pool_expected_wait_seconds, compute_pool_target_queue_wait_seconds,
//   compute_pool_overloaded, compute_pool_inflight_bytes,
//   compute_pool_inflight_bytes_limit,
//   compute_pool_worker_start_failures_total,
// and, from the service's cost model, compute_task_cost_seconds_per_unit
// {task} (what the scheduler has learned a unit of each kind costs) and
// compute_task_probes_total{task,outcome} (calls run although their
// estimate was longer than their deadline, to test a raised rate).
//
// The sources are attached after the pool exists (the pool's observer
// must be set before it does) and detached before it goes; while none is
// attached the collector exports nothing.
//
// Thread-safety: all methods may be called concurrently. Attach waits for a
// Collect in progress, so once Attach returns the old source is not called.
#ifndef COMPUTE_SERVER_METRICS_POOL_COLLECTOR_H_
#define COMPUTE_SERVER_METRICS_POOL_COLLECTOR_H_

#include <cstdint>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/pool/sync.h"
#include "server/pool/worker_pool.h"

namespace compute::metrics {

class PoolCollector final : public prometheus::Collectable {
 public:
  using StatsFn = std::function<PoolStats()>;
  // What the cost model knows of one task kind.
  struct KindCost {
    double seconds_per_unit = 0;
    // Probes that ended in time, late, or otherwise (refused, cancelled,
    // failed): CostModel::ProbeEnd.
    uint64_t probes_in_time = 0;
    uint64_t probes_late = 0;
    uint64_t probes_other = 0;
  };
  // Each task kind's, by kind index.
  using CostsFn = std::function<std::vector<KindCost>()>;

  // An empty `stats` detaches both.
  void Attach(StatsFn stats, CostsFn costs = nullptr);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable Mutex mu_;
  StatsFn stats_ ABSL_GUARDED_BY(mu_);
  CostsFn costs_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_POOL_COLLECTOR_H_
