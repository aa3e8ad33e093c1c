// ComputeServer: the gRPC server, its worker pool, health and reflection,
// wired together, with the drain sequence that Kubernetes expects.
//
// Drain(timeout), on SIGTERM:
//   1. health reports NOT_SERVING (overall and compute.v1.Compute), so
//      readiness probes and health-checking clients stop sending; calls go
//      on being served until none has arrived for 20 ms (at most 100 ms,
//      or until `timeout`; not after EndDrainNow): a client that watches
//      the health service (gRPC's healthCheckConfig, with round_robin) over
//      several addresses has then stopped sending here, and loses no call
//      to step 2. Before 2026-12-04 step 2 came at once, and a client with
//      8 calls in flight lost 4-8 of them, CANCELLED, to it;
//   2. every connection gets a GOAWAY and the listener closes: a client
//      sends its next calls over a new connection, to another replica (a
//      Kubernetes Service no longer routes new connections here by then);
//      calls its transport had sent after the GOAWAY are retried there by
//      gRPC itself. Calls that still reach the service (sent before the
//      GOAWAY reached the client) get UNAVAILABLE, retryable on another
//      replica; those still in gRPC's hands as the shutdown starts, or that
//      reach the server before their client has read the GOAWAY (every
//      call sent within about a round trip of it, from a client that does
//      not watch health), are cancelled by gRPC's core: CANCELLED, never
//      run (README, "Shutdown"; no API of gRPC 1.51 sends a GOAWAY without
//      that).
//      Until 2026-12-03 the GOAWAY came only in step 4, once the pool had
//      drained: a client with one connection (pick_first, or any through a
//      ClusterIP Service) had every call refused for the whole drain, up to
//      --drain_timeout, while other replicas idled;
//   3. accepted calls, queued and running, finish until `timeout`; what is
//      left is then cancelled and answered UNAVAILABLE; answers still on
//      their way to their clients (a large one to a slow reader) are waited
//      for until the same `timeout`;
//   4. health Watch streams end (UNAVAILABLE), then the gRPC server's
//      shutdown completes: calls still in gRPC get a grace of 1 s, then are
//      cancelled; every accepted call has its response.
// EndDrainNow(), on a second SIGTERM while Drain runs: what step 3 still
// waits for is stopped at once (queued calls never run, running ones are
// signalled) and answered UNAVAILABLE, and step 4, if it has not begun,
// gives gRPC no grace (once begun, its grace of at most 1 s cannot be
// cut short: grpc::Server::Shutdown takes its deadline once).
//
// Thread-safety: Drain and EndDrainNow may be called from any thread (not
// from a call's completion: Drain waits for those). Drain is idempotent: a
// second call, the destructor's too, returns once the first has drained,
// with the first one's timeout (EndDrainNow cuts it short).
#ifndef COMPUTE_SERVER_SERVICE_SERVER_H_
#define COMPUTE_SERVER_SERVICE_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "grpcpp/server.h"
#include "server/pool/sync.h"
#include "server/pool/worker_pool.h"
#include "server/service/compute_service.h"
#include "server/service/health.h"
#include "server/service/run_call.h"

namespace compute::service {

// A drain's wait between health's NOT_SERVING and the GOAWAY (step 1 of the
// drain, above): until no call has arrived for kDrainQuietPeriod, at most
// kDrainQuietWaitLimit. Short, both: until the GOAWAY, a client that reaches
// this server at one address only (a ClusterIP Service, an L4 balancer) and
// watches health fails its calls UNAVAILABLE on its own side (its one backend
// is unhealthy, and its connection is not yet closed); clients that do not
// watch keep calls arriving until the limit.
inline constexpr absl::Duration kDrainQuietPeriod = absl::Milliseconds(20);
inline constexpr absl::Duration kDrainQuietWaitLimit = absl::Milliseconds(100);

struct ServerConfig {
  std::string address = "0.0.0.0";  // host to bind; port below
  int port = 50051;                 // 0 = ask the kernel
  // Includes the scheduler's budgets: queue_capacity, max_inflight_bytes
  // (the pool's share of --max_inflight_bytes), target_queue_wait.
  PoolOptions pool;
  // gRPC's ResourceQuota: the bytes its transport may hold below the
  // handler (bodies being read, and a blur's pixels, which stay in the
  // received buffers while the call lasts). The rest of
  // --max_inflight_bytes (server/config.cc splits it). 0: no quota.
  int64_t transport_quota_bytes = 0;
  // Refuse at once a call whose deadline cannot be met (reason "deadline").
  bool admission = true;
  // Tenants: see ComputeServiceOptions.
  bool trust_tenant_header = false;
  int tenant_ipv6_prefix = 128;
  absl::flat_hash_map<std::string, double> tenant_weights;
  absl::Duration max_connection_age = absl::InfiniteDuration();
  absl::Duration max_connection_age_grace = absl::InfiniteDuration();
  // A connection with no call open for this long gets a GOAWAY (a health
  // Watch is a call: a watching client's connection is never idle).
  absl::Duration max_connection_idle = absl::InfiniteDuration();
  absl::Duration keepalive_time = absl::Hours(2);
  absl::Duration keepalive_timeout = absl::Seconds(20);
  int max_message_bytes = 32 << 20;
  // Streams (calls) open at once on one connection: HTTP/2
  // SETTINGS_MAX_CONCURRENT_STREAMS. >= 2 (a client's health Watch holds
  // one for good).
  int max_concurrent_streams = 256;
  // PEM file paths. cert + key: TLS. Plus client_ca: mutual TLS (a client
  // without a certificate signed by that CA is refused).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // What a start-up error calls each setting above: its flag, or the
  // COMPUTE_ variable its value came from (ParseConfig sets them), so that
  // an operator who set it in a ConfigMap reads the name written there.
  std::string address_name = "--address";
  std::string port_name = "--port";
  std::string tls_cert_name = "--tls_cert";
  std::string tls_key_name = "--tls_key";
  std::string tls_client_ca_name = "--tls_client_ca";
  // Threads polling the completion queues that serve Run (one queue each).
  int io_threads = 2;
  // Load reports in answers' trailers (load_report.h; inf: none), and the
  // CPUs the process may use (the reported cpu_utilization's scale):
  // fractional under a CPU quota (1.5 for cpu.max "150000 100000"), so a
  // replica throttled at its quota reports 1, not 0.75.
  absl::Duration load_report_interval = absl::Milliseconds(1);
  double cpus = 1;
  CallObserver* observer = nullptr;
  TenantObserver* tenant_observer = nullptr;  // optional
  TaskRunner run_task = nullptr;              // tests only: fault injection
  // How the I/O threads start (RunQueues::ThreadStarter; empty:
  // std::thread). Tests only: one that throws, as a refused thread does.
  std::function<std::thread(std::function<void()>)> start_io_thread;
  // A drain's wait between health's NOT_SERVING and the GOAWAY (step 1):
  // until no call has arrived for the period, at most the limit. Tests
  // only: an in-process client on a loaded machine needs longer to act on
  // NOT_SERVING.
  absl::Duration drain_quiet_period = kDrainQuietPeriod;
  absl::Duration drain_quiet_wait_limit = kDrainQuietWaitLimit;
};

class ComputeServer {
 public:
  // Builds the pool and starts serving. AlreadyExistsError "port N is in
  // use" when another socket listens on config.port (SO_REUSEPORT is off:
  // a second server must not quietly share the port with a first).
  static absl::StatusOr<std::unique_ptr<ComputeServer>> Start(
      const ServerConfig& config);
  ~ComputeServer();

  int port() const { return port_; }
  // What the start-up log should warn of (a TLS certificate not valid now,
  // or a server certificate without serverAuth), one line each; the server
  // serves regardless.
  const std::vector<std::string>& start_warnings() const {
    return start_warnings_;
  }
  WorkerPool& pool() { return *pool_; }
  ComputeService& service() { return *service_; }
  const RunQueues& queues() const { return *queues_; }
  const HealthService& health() const { return *health_; }
  HealthService& health() { return *health_; }

  void Drain(absl::Duration timeout);
  // Bytes of answers that the drain's step 3 left untaken by their clients
  // at its deadline (gRPC's shutdown then cancelled them); 0 when every
  // answer was taken, or before a drain. A client that never reads (a shut
  // flow-control window) holds a drain to its timeout, and the "stopped"
  // log line says so with this.
  int64_t untaken_answer_bytes() const {
    return untaken_answer_bytes_.load(std::memory_order_acquire);
  }
  // Ends a Drain in progress (or one yet to come) now; returns once the
  // pool has stopped. Every accepted call still gets its one response.
  void EndDrainNow();

 private:
  ComputeServer() = default;

  int port_ = 0;
  std::vector<std::string> start_warnings_;
  std::unique_ptr<WorkerPool> pool_;
  std::unique_ptr<ComputeService> service_;
  // Before server_: the server goes first (it points into both). health_
  // before queues_: its calls live on the queues until they shut down.
  std::unique_ptr<HealthService> health_;
  std::unique_ptr<RunQueues> queues_;
  std::unique_ptr<grpc::Server> server_;
  // Drain's steps, run by its first caller.
  void DrainOnce(absl::Duration timeout);
  // Between health's NOT_SERVING and the GOAWAY (server.h, step 1): returns
  // once no call has arrived for quiet_period_, after quiet_wait_limit_, at
  // `deadline`, or on EndDrainNow.
  void AwaitCallsStopArriving(absl::Time deadline);
  // ServerConfig's drain_quiet_period and drain_quiet_wait_limit.
  absl::Duration quiet_period_ = kDrainQuietPeriod;
  absl::Duration quiet_wait_limit_ = kDrainQuietWaitLimit;

  Mutex drain_mu_;
  CondVar drain_done_cv_;
  bool drain_begun_ ABSL_GUARDED_BY(drain_mu_) = false;
  bool drain_done_ ABSL_GUARDED_BY(drain_mu_) = false;
  std::atomic<bool> end_drain_now_{false};
  std::atomic<int64_t> untaken_answer_bytes_{0};
};

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_SERVER_H_
