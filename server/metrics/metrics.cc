#include "server/metrics/metrics.h"

#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "prometheus/counter.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/text_serializer.h"
#include "server/base/net.h"
#include "server/metrics/build_info.h"
#include "server/metrics/families.h"

namespace compute::metrics {
namespace {

// civetweb (prometheus-cpp's HTTP server) gives each connection one thread
// from the moment it is accepted until it closes, and a connection that
// sends its request slowly keeps its thread for civetweb's whole request
// timeout (default 30 s). prometheus-cpp's default of 2 threads let two
// slowloris connections, trickling a header byte at a time, time out every
// scrape for as long as they trickled (measured: 0 of 200 parallel
// scrapes answered within 3 s while 4 such connections were open). So: 16
// threads, idle ones cost a stack each, and 5 s for a request to arrive,
// which a scrape on a LAN needs a thousandth of. A client now needs 16
// slow connections to stall scrapes, and each stalls them at most 5 s.
constexpr int kMetricsThreads = 16;
constexpr int kMetricsRequestTimeoutMs = 5000;

// Destroys `exposer` (civetweb's mg_stop), quickly. mg_stop sets a stop
// flag and joins civetweb's listener thread, which polls the listening
// socket in quanta of 2 s (civetweb 1.15's SOCKET_TIMEOUT_QUANTUM) and sees
// the flag only when a poll returns: stopping took 0-2 s, ~1 s on average,
// and compute-server exited that long after its "stopped" line. A
// connection to the socket ends the poll at once, so while mg_stop runs on
// its own thread this one connects every few milliseconds until it is
// done, or until a connection is refused: the listener has then left its
// poll and closed the socket. (Worker threads are woken by mg_stop itself;
// the endpoint does not keep connections alive, so only one in the middle
// of a slow request waits out a quantum in a read.)
void StopExposer(std::unique_ptr<prometheus::Exposer> exposer,
                 const std::string& address, int port) {
  if (exposer == nullptr) return;
  absl::Notification stopped;
  std::thread stopper;
  try {
    stopper = std::thread([&] {
      exposer.reset();
      stopped.Notify();
    });
  } catch (const std::system_error&) {
    // No thread to be had (pids.max): stopped here, in up to 2 s, rather
    // than std::terminate at the end of a drain that went well.
    exposer.reset();
    return;
  }
  bool listening = true;
  while (!stopped.WaitForNotificationWithTimeout(absl::Milliseconds(2))) {
    if (listening) listening = PokeListener(address, port);
  }
  stopper.join();
}

// A counter kept outside the metrics layer, read at scrape time.
class FunctionCounter final : public prometheus::Collectable {
 public:
  FunctionCounter(std::string name, std::string help,
                  std::function<uint64_t()> value)
      : name_(std::move(name)),
        help_(std::move(help)),
        value_(std::move(value)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::MetricFamily family =
        MakeFamily(name_, help_, prometheus::MetricType::Counter);
    AddValue(family, {}, value_ ? static_cast<double>(value_()) : 0.0);
    return {std::move(family)};
  }

 private:
  const std::string name_;
  const std::string help_;
  const std::function<uint64_t()> value_;
};

}  // namespace

Metrics::Metrics(MetricsOptions options)
    : registry_(std::make_shared<prometheus::Registry>()),
      pool_(std::make_shared<PoolCollector>()),
      tasks_(std::make_shared<TaskMetrics>()),
      grpc_(std::make_shared<GrpcMetrics>(
          std::move(options.grpc_service), std::move(options.grpc_methods),
          std::move(options.other_grpc_methods))),
      process_(std::make_shared<ProcessCollector>(std::move(options.process))),
      tenants_(options.max_tenant_series > 0
                   ? std::make_shared<TenantMetrics>(options.max_tenant_series,
                                                     Clock::Real())
                   : nullptr),
      log_(std::make_shared<FunctionCounter>(
          "compute_log_lines_dropped_total",
          "Log lines dropped because the log's reader fell behind (more than "
          "1 MiB of lines waiting); a warning line in the log says how many "
          "after each spell.",
          std::move(options.log_lines_dropped))) {
  prometheus::BuildGauge()
      .Name("compute_build_info")
      .Help(
          "Always 1; labelled with the version and git revision the server "
          "was built from.")
      .Register(*registry_)
      .Add({{"version", std::string(BuildVersion())},
            {"revision", std::string(BuildRevision())}})
      .Set(1);
  auto& returns =
      prometheus::BuildCounter()
          .Name("compute_memory_returns_total")
          .Help(
              "Times the server gave the allocator's freed pages back to the "
              "system: rule=cap, more kept than an eighth of "
              "--max_inflight_bytes; rule=idle, the pool idle for 1 s.")
          .Register(*registry_);
  memory_returns_cap_ = &returns.Add({{"rule", "cap"}});
  memory_returns_idle_ = &returns.Add({{"rule", "idle"}});
  // Set once: the quota is fixed at start-up. Beside
  // compute_pool_inflight_bytes_limit it shows the whole budget's split.
  prometheus::BuildGauge()
      .Name("compute_transport_quota_bytes")
      .Help(
          "Bytes gRPC's resource quota lets the transport hold (request "
          "bodies being read): 3/4 of --max_inflight_bytes; 0: no limit.")
      .Register(*registry_)
      .Add({})
      .Set(static_cast<double>(options.transport_quota_bytes));
}

void Metrics::CountMemoryReturn(MemoryReturnRule rule) {
  (rule == MemoryReturnRule::kCap ? memory_returns_cap_ : memory_returns_idle_)
      ->Increment();
}

Metrics::~Metrics() {
  // Stops its threads (a scrape in progress finishes) before the collectors
  // go.
  StopServing();
}

void Metrics::StopServing() {
  std::unique_ptr<prometheus::Exposer> exposer;
  std::string address;
  int port = 0;
  {
    MutexLock lock(&mu_);
    exposer = std::move(exposer_);
    address = address_;
    port = port_;
  }
  StopExposer(std::move(exposer), address, port);
}

void Metrics::AttachPool(const WorkerPool* pool, const CostModel* costs) {
  if (pool == nullptr) {
    pool_->Attach(nullptr);
    return;
  }
  PoolCollector::CostsFn costs_fn;
  if (costs != nullptr) {
    costs_fn = [costs] {
      using End = CostModel::ProbeEnd;
      std::vector<PoolCollector::KindCost> per_kind;
      for (int k = 0; k < costs->kinds(); ++k) {
        per_kind.push_back(PoolCollector::KindCost{
            .seconds_per_unit = costs->SecondsPerUnit(k),
            .probes_in_time = costs->ProbesEnded(k, End::kInTime),
            .probes_late = costs->ProbesEnded(k, End::kLate),
            .probes_other = costs->ProbesEnded(k, End::kNoSample)});
      }
      return per_kind;
    };
  }
  pool_->Attach([pool] { return pool->Stats(); }, std::move(costs_fn));
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
  std::vector<prometheus::MetricFamily> all;
  for (const prometheus::Collectable* c :
       std::initializer_list<const prometheus::Collectable*>{
           pool_.get(), tasks_.get(), grpc_.get(), process_.get(),
           registry_.get(), tenants_.get(), log_.get()}) {
    if (c == nullptr) continue;
    std::vector<prometheus::MetricFamily> families = c->Collect();
    all.insert(all.end(), std::make_move_iterator(families.begin()),
               std::make_move_iterator(families.end()));
  }
  return all;
}

std::string Metrics::Text() const {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, Collect());
  return out.str();
}

absl::Status Metrics::Serve(const std::string& address, int port,
                            const std::string& address_name,
                            const std::string& port_name) {
  MutexLock lock(&mu_);
  if (exposer_ != nullptr) {
    return absl::FailedPreconditionError("metrics endpoint already serving");
  }
  if (absl::Status s = CheckListenAddress(address_name, address, port,
                                          /*ipv4_only=*/true, port_name);
      !s.ok()) {
    return s;
  }
  std::string bind = HostPort(address, port);
  std::unique_ptr<prometheus::Exposer> exposer;
  try {
    exposer = std::make_unique<prometheus::Exposer>(std::vector<std::string>{
        "listening_ports", bind, "num_threads", std::to_string(kMetricsThreads),
        "request_timeout_ms", std::to_string(kMetricsRequestTimeoutMs)});
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot listen on ", bind,
                     " (in use, or not an address of this host): ", e.what()));
  }
  std::vector<int> ports = exposer->GetListeningPorts();
  if (ports.empty() || ports[0] <= 0) {
    return absl::UnavailableError(
        absl::StrCat("metrics: no listening port for ", bind));
  }
  for (const std::shared_ptr<prometheus::Collectable>& c :
       std::initializer_list<std::shared_ptr<prometheus::Collectable>>{
           pool_, tasks_, grpc_, process_, registry_, tenants_, log_}) {
    if (c != nullptr) exposer->RegisterCollectable(c);
  }
  port_ = ports[0];
  address_ = address;
  exposer_ = std::move(exposer);
  return absl::OkStatus();
}

int Metrics::port() const {
  MutexLock lock(&mu_);
  return port_;
}

}  // namespace compute::metrics
