// PoolCollector: the worker pool's gauges, read from PoolStats (the pool's
// lock-free atomics) at scrape time, so the pool does nothing for them:
//   compute_pool_queue_depth, compute_pool_queue_capacity,
//   compute_pool_workers, compute_pool_workers_busy,
//   compute_pool_min_workers, compute_pool_max_workers.
//
// The stats source is attached after the pool exists (the pool's observer
// must be set before it does) and detached before it goes; while none is
// attached the collector exports nothing.
//
// Thread-safety: all methods may be called concurrently. Attach waits for a
// Collect in progress, so once Attach returns the old source is not called.
#ifndef COMPUTE_SERVER_METRICS_POOL_COLLECTOR_H_
#define COMPUTE_SERVER_METRICS_POOL_COLLECTOR_H_

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

  // An empty function detaches.
  void Attach(StatsFn stats);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable Mutex mu_;
  StatsFn stats_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_POOL_COLLECTOR_H_
