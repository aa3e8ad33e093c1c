// Metrics: every series compute-server exports, and the HTTP endpoint that
// serves them (prometheus-cpp's Exposer, GET /metrics).
//
// Each part reads its state at scrape time or records it without a lock:
//   - PoolCollector: pool gauges from PoolStats (a snapshot the pool takes
//     under its lock, once per scrape);
//   - TaskMetrics: the pool's observer (per-task counters and histograms,
//     striped per thread; see sharded_counters.h);
//   - GrpcMetrics: the service's call observer (go-grpc-prometheus series
//     and rejections, striped the same way);
//   - ProcessCollector: process_* from /proc;
//   - TenantMetrics (only with max_tenant_series): the service's tenant
//     observer, per-tenant series capped to the top tenants plus "other";
//   - a prometheus::Registry for the rest (compute_build_info,
//     compute_memory_returns_total, compute_transport_quota_bytes,
//     compute_log_lines_dropped_total), where
//     series that are set rarely belong.
//
// Wiring (main.cc): make Metrics first and keep it until the server is gone;
// set pool_observer() in PoolOptions::observer and call_observer() in
// ServerConfig::observer; Serve(); start the server; AttachPool(&pool);
// after the drain, AttachPool(nullptr) before the pool goes.
//
// Thread-safety: Collect, Text and the observers may be called concurrently
// from any thread; Serve and AttachPool may be called from any thread.
// The destructor stops the endpoint first (waiting for a scrape in
// progress).
#ifndef COMPUTE_SERVER_METRICS_METRICS_H_
#define COMPUTE_SERVER_METRICS_METRICS_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "server/metrics/grpc_metrics.h"
#include "server/metrics/pool_collector.h"
#include "server/metrics/process_collector.h"
#include "server/metrics/task_metrics.h"
#include "server/metrics/tenant_metrics.h"
#include "server/pool/cost_model.h"
#include "server/pool/sync.h"
#include "server/pool/worker_pool.h"
#include "server/service/call_observer.h"

namespace prometheus {
class Counter;
class Exposer;
}  // namespace prometheus

namespace compute::metrics {

struct MetricsOptions {
  // The gRPC service and its unary methods, for the grpc_server_* labels.
  std::string grpc_service = "compute.v1.Compute";
  std::vector<std::string> grpc_methods = {"Run"};
  // The other services' methods (health, reflection), counted too.
  std::vector<GrpcMethod> other_grpc_methods = StandardServiceMethods();
  ProcessCollector::Source process;
  // Per-tenant series for at most this many tenants, plus "other"
  // (tenant_metrics.h); 0: none.
  size_t max_tenant_series = 0;
  // gRPC's resource quota (the transport's share of --max_inflight_bytes),
  // exported as compute_transport_quota_bytes; 0: none.
  int64_t transport_quota_bytes = 0;
  // Log lines dropped so far because the log's reader fell behind
  // (server/log_sink.h), read at each scrape for
  // compute_log_lines_dropped_total; empty: always 0.
  std::function<uint64_t()> log_lines_dropped;
};

class Metrics {
 public:
  explicit Metrics(MetricsOptions options = {});
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  PoolObserver* pool_observer() { return tasks_.get(); }
  service::CallObserver* call_observer() { return grpc_.get(); }
  // nullptr unless MetricsOptions::max_tenant_series > 0.
  service::TenantObserver* tenant_observer() { return tenants_.get(); }
  prometheus::Registry& registry() { return *registry_; }

  // Pool gauges come from `pool` (nullptr: none) from now on, and the
  // learned cost per unit of each task kind from `costs` (optional). Both
  // must stay alive until detached (or Metrics is destroyed).
  void AttachPool(const WorkerPool* pool, const CostModel* costs = nullptr);

  // The server gave the allocator's freed pages back to the system
  // (server/memory_returner.h), by the rule that fired:
  // compute_memory_returns_total{rule="cap"|"idle"}. Thread-safe.
  enum class MemoryReturnRule { kCap, kIdle };
  void CountMemoryReturn(MemoryReturnRule rule);

  // Every family, as a scrape sees them (without the endpoint's own
  // exposer_* series).
  std::vector<prometheus::MetricFamily> Collect() const;
  // Collect() in the text exposition format.
  std::string Text() const;

  // Serves GET /metrics on address:port (port 0: the kernel picks). At most
  // once. AlreadyExistsError "--metrics_port: port N is in use" (naming
  // `port_name`) when another socket listens there; UnavailableError when
  // the port cannot be bound; an address that is not this host's is an
  // error naming `address_name`. The names are the flags, or the variables
  // the values came from.
  [[nodiscard]] absl::Status Serve(
      const std::string& address, int port,
      const std::string& address_name = "--metrics_address",
      const std::string& port_name = "--metrics_port");
  // The bound port once Serve has succeeded, else 0.
  int port() const;
  // Stops the endpoint (a scrape in progress finishes) and returns once
  // its threads are gone; a no-op when not serving. The destructor does the
  // same. See StopExposer in metrics.cc for why this takes milliseconds,
  // not civetweb's usual 0-2 s.
  void StopServing();

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<PoolCollector> pool_;
  std::shared_ptr<TaskMetrics> tasks_;
  std::shared_ptr<GrpcMetrics> grpc_;
  std::shared_ptr<ProcessCollector> process_;
  std::shared_ptr<TenantMetrics> tenants_;              // optional
  std::shared_ptr<prometheus::Collectable> log_;        // dropped log lines
  prometheus::Counter* memory_returns_cap_ = nullptr;   // in registry_
  prometheus::Counter* memory_returns_idle_ = nullptr;  // in registry_

  mutable Mutex mu_;
  std::unique_ptr<prometheus::Exposer> exposer_ ABSL_GUARDED_BY(mu_);
  std::string address_ ABSL_GUARDED_BY(mu_);
  int port_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_METRICS_H_
