// HealthService: grpc.health.v1.Health (Check and Watch) on the server's
// own completion queues (RunQueues, run_call.h), polled by the same I/O
// threads as Run.
//
// Why not gRPC's default health service: in gRPC 1.51 it is built on the
// callback API, which starts a callback completion queue with two threads
// of its own ("nexting_thread") and uses gRPC's executor. Those threads poll
// the same sockets as ours, so they took in Run calls too: measured at 20k
// trivial calls/s, 45% of the server's CPU samples were on them, creating
// calls that our threads then had to be woken for; CPU per call 41 us with
// the default health service, 33 us without it (echo server 31 us).
//
// Status: a service name ("" is the server as a whole) is SERVING or
// NOT_SERVING once set; a name never set is unknown, through the shutdown
// too: Check answers NOT_FOUND and Watch sends SERVICE_UNKNOWN (and later
// changes), as the health protocol says.
//
// CheckCall: waits for a call; on it, asks for the next one, answers the
//   status and is deleted by its finish event.
// WatchCall: waits for a call; on it, asks for the next one, registers as a
//   watcher and sends the status (a name over 1 KiB, which the stream would
//   hold for its life, is refused INVALID_ARGUMENT instead); each change is
//   sent after the write in flight (one write at a time; a change during a
//   write is sent when it completes, only the latest). It ends with Finish:
//   UNAVAILABLE when the service shuts down (Shutdown, at the drain, so that
//   gRPC's Shutdown need not wait for open streams), after the latest status
//   has been written; CANCELLED once the client has gone. Lifetime: two
//   references, the request -> write -> Finish chain's and the done event's
//   (AsyncNotifyWhenDone, delivered once per call that arrived); the last one
//   deletes the call.
//
// Lock order: HealthService::mu_, then a WatchCall's. Status changes are
// sent to watchers with mu_ held, so they reach each watcher in order.
//
// Thread-safety: all public methods from any thread, after Start.
#ifndef COMPUTE_SERVER_SERVICE_HEALTH_H_
#define COMPUTE_SERVER_SERVICE_HEALTH_H_

#include <atomic>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/server_builder.h"
#include "server/pool/sync.h"
#include "server/service/run_call.h"

namespace compute::service {

class WatchCall;

class HealthService {
 public:
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;

  HealthService() = default;
  // After the queues have shut down (then no call is left).
  ~HealthService();
  HealthService(const HealthService&) = delete;
  HealthService& operator=(const HealthService&) = delete;

  // Before BuildAndStart.
  void AddTo(grpc::ServerBuilder& builder) { builder.RegisterService(&async_); }
  // After BuildAndStart and RunQueues::Start: waits for calls on each of
  // `queues`' queues. `queues` must outlive this.
  void Start(RunQueues& queues);

  // `service` ("" for the server as a whole) is SERVING or NOT_SERVING.
  // Ignored once shut down.
  void SetServing(const std::string& service, bool serving);
  // Every service set so far NOT_SERVING; ignored once shut down.
  void SetAllNotServing();
  // Every open Watch ends (UNAVAILABLE), once sent NOT_SERVING if its
  // service is known; later Checks of a known service answer NOT_SERVING
  // (of an unknown one, NOT_FOUND), later Watches end at once. Before
  // grpc::Server::Shutdown.
  void Shutdown();

  // Check and Watch calls alive: those waiting for a call and those open.
  int live_calls() const { return live_calls_.load(std::memory_order_acquire); }

 private:
  friend class CheckCall;
  friend class WatchCall;

  // The status Check and Watch report for `service`.
  Status StatusOf(const std::string& service) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sends each watcher its service's status (a write only where it changed).
  void NotifyWatchersLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A new call waiting on queue `q`, unless the queues are shutting down.
  void RequestCheck(int q);
  void RequestWatch(int q);
  // Called by a WatchCall once its call has arrived / when it ends.
  void AddWatcher(WatchCall* watcher);
  void RemoveWatcher(WatchCall* watcher);

  grpc::health::v1::Health::AsyncService async_;
  RunQueues* queues_ = nullptr;
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, bool> serving_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<WatchCall*> watchers_ ABSL_GUARDED_BY(mu_);
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<int> live_calls_{0};
};

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_HEALTH_H_
