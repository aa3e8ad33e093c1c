#include "server/metrics/pool_collector.h"

#include <limits>
#include <string>
#include <utility>

#include "server/metrics/families.h"
#include "server/tasks/registry.h"

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

void PoolCollector::Attach(StatsFn stats, CostsFn costs) {
  MutexLock lock(&mu_);
  stats_ = std::move(stats);
  costs_ = stats_ ? std::move(costs) : nullptr;
}

std::vector<prometheus::MetricFamily> PoolCollector::Collect() const {
  PoolStats s;
  std::vector<KindCost> costs;
  {
    MutexLock lock(&mu_);
    if (!stats_) return {};
    s = stats_();
    if (costs_) costs = costs_();
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
                           "Workers' places taken by running tasks (on a "
                           "worker, or a cheap one inline on a gRPC thread); "
                           "at most compute_pool_workers.",
                           static_cast<double>(s.busy)));
  families.push_back(Gauge("compute_pool_min_workers",
                           "Workers the pool always keeps.",
                           static_cast<double>(s.min_workers)));
  families.push_back(Gauge("compute_pool_max_workers",
                           "Workers the pool grows to under load.",
                           static_cast<double>(s.max_workers)));
  families.push_back(
      Gauge("compute_pool_queued_cost_seconds",
            "Estimated run time of the queued tasks (the work waiting).",
            absl::ToDoubleSeconds(s.queued_cost)));
  families.push_back(Gauge("compute_pool_running_cost_seconds",
                           "Estimated run time the running tasks have left.",
                           absl::ToDoubleSeconds(s.running_cost)));
  families.push_back(
      Gauge("compute_pool_expected_wait_seconds",
            "Expected queue wait of a task submitted now: the queued cost "
            "spread over the workers that free up first (each running task "
            "counting at least a fifth of its cost), 0 while a worker is "
            "free.",
            absl::ToDoubleSeconds(s.expected_wait)));
  families.push_back(
      Gauge("compute_pool_target_queue_wait_seconds",
            "The queue wait a standing queue is held to (--target_queue_wait; "
            "+Inf: no overload control).",
            s.target_queue_wait == absl::InfiniteDuration()
                ? std::numeric_limits<double>::infinity()
                : absl::ToDoubleSeconds(s.target_queue_wait)));
  families.push_back(Gauge(
      "compute_pool_overloaded",
      "1 while the queue is standing (every task waited over the target for "
      "an interval) and admission holds the wait to the target.",
      s.overloaded ? 1 : 0));
  families.push_back(
      Gauge("compute_pool_inflight_bytes",
            "Bytes held by the requests and responses of queued and running "
            "tasks, and by answers sent but not yet taken by their clients.",
            static_cast<double>(s.inflight_bytes)));
  families.push_back(
      Gauge("compute_pool_inflight_bytes_limit",
            "The memory budget of queued and running tasks and unread answers "
            "(1/4 of --max_inflight_bytes; 0: no limit).",
            static_cast<double>(s.max_inflight_bytes)));
  {
    auto family = MakeFamily(
        "compute_pool_worker_start_failures_total",
        "Times the pool could not start a worker thread as it grew (the "
        "system refused it: pids.max, RLIMIT_NPROC; tried again at most "
        "once a second); the tasks wait for the live workers instead.",
        prometheus::MetricType::Counter);
    AddValue(family, {}, static_cast<double>(s.worker_start_failures));
    families.push_back(std::move(family));
  }
  if (!costs.empty()) {
    auto family = MakeFamily(
        "compute_task_cost_seconds_per_unit",
        "What the scheduler has learned one cost unit of each task kind "
        "takes to run (spin: a second of spinning; fib: phi^n; primes: "
        "n ln n; sha256: a byte or a round; blur: a pixel).",
        prometheus::MetricType::Gauge);
    auto kinds = tasks::AllTaskKinds();
    for (size_t i = 0; i < costs.size() && i < kinds.size(); ++i) {
      AddValue(family, {{"task", std::string(kinds[i].name)}},
               costs[i].seconds_per_unit);
    }
    families.push_back(std::move(family));
    auto probes = MakeFamily(
        "compute_task_probes_total",
        "Calls admitted as probes although their estimate was longer than "
        "their deadline, to test a rate that may have risen past the truth "
        "(about one at a time per kind, due 10 ms after one in time, up to "
        "1 s after late ones); outcome: in_time, late (ran past the "
        "deadline, or was cancelled within 5 ms of it), other (ended "
        "without a sample: refused, displaced, expired in the queue, "
        "cancelled, failed, shut down).",
        prometheus::MetricType::Counter);
    for (size_t i = 0; i < costs.size() && i < kinds.size(); ++i) {
      const std::string task(kinds[i].name);
      AddValue(probes, {{"task", task}, {"outcome", "in_time"}},
               static_cast<double>(costs[i].probes_in_time));
      AddValue(probes, {{"task", task}, {"outcome", "late"}},
               static_cast<double>(costs[i].probes_late));
      AddValue(probes, {{"task", task}, {"outcome", "other"}},
               static_cast<double>(costs[i].probes_other));
    }
    families.push_back(std::move(probes));
  }
  return families;
}

}  // namespace compute::metrics
