#include "server/metrics/pool_collector.h"

#include <utility>

#include "server/metrics/families.h"

namespace compute::metrics {
namespace {

prometheus::MetricFamily Gauge(std::string name, std::string help,
                               double value) {
  auto family = MakeFamily(std::move(name), std::move(help),
                           prometheus::MetricType::Gauge);
  AddValue(family, {}, value);
  return family;
}

}  // namespace

void PoolCollector::Attach(StatsFn stats) {
  MutexLock lock(&mu_);
  stats_ = std::move(stats);
}

std::vector<prometheus::MetricFamily> PoolCollector::Collect() const {
  PoolStats s;
  {
    MutexLock lock(&mu_);
    if (!stats_) return {};
    s = stats_();
  }
  std::vector<prometheus::MetricFamily> families;
  families.push_back(Gauge("compute_pool_queue_depth",
                           "Tasks waiting in the worker pool's queue for a "
                           "free worker.",
                           static_cast<double>(s.queue_depth)));
  families.push_back(Gauge(
      "compute_pool_queue_capacity",
      "Tasks the queue holds while every worker is busy; beyond it calls are "
      "refused with RESOURCE_EXHAUSTED.",
      static_cast<double>(s.queue_capacity)));
  families.push_back(Gauge("compute_pool_workers",
                           "Worker threads alive (busy or idle).",
                           static_cast<double>(s.workers)));
  families.push_back(Gauge("compute_pool_workers_busy",
                           "Worker threads running a task.",
                           static_cast<double>(s.busy)));
  families.push_back(Gauge("compute_pool_min_workers",
                           "Workers the pool always keeps.",
                           static_cast<double>(s.min_workers)));
  families.push_back(Gauge("compute_pool_max_workers",
                           "Workers the pool grows to under load.",
                           static_cast<double>(s.max_workers)));
  return families;
}

}  // namespace compute::metrics
