// compute.v1.Compute/Run on gRPC's completion-queue (async) API.
//
// Why not the callback API: in gRPC 1.51 it hands every event to an executor
// thread before the reactor sees it; measured on 2 cores, a bare callback
// server answers ~35% fewer trivial calls per second than a bare
// completion-queue one. Here each queue is polled by one thread of ours
// that runs the call's code itself: one hop in (to a worker, when the task
// queues) and one hop out (the worker finishes the call directly).
//
// RunQueues owns the queues (one per I/O thread) and their threads. Each
// queue keeps `requests_per_queue` RunCalls waiting for a call; when one
// gets a call it asks for a replacement first, then handles its own.
//
// RunCall: one call, from waiting for it to its last event.
//   States (events arrive on its queue's thread, one at a time):
//     kWaiting   RequestRun issued (the method is raw: the request arrives
//                as bytes, parsed by ParseRunRequest, wire.h).
//                 -> arrived (ok): ComputeService::Handle; answered at
//                    once (Finish issued; a cheap task run inline on this
//                    thread is finished by its completion, as below, before
//                    Handle returns) -> kFinishing, or queued -> kQueued
//                 -> arrived (!ok): the server is shutting down and no call
//                    came; gRPC sends no done event then: deleted.
//     kQueued    its task is in the pool; the pool's completion (a worker
//                thread) issues Finish -> kFinishing. A done event while
//                queued or running means the client cancelled (or the
//                deadline passed): the task is cancelled, and its
//                completion still finishes the call.
//     kFinishing Finish issued; waits for its finish event, which gRPC
//                delivers once the answer is sent, or the client has gone.
//                Until then gRPC keeps the answer in memory, for as long as
//                a client that does not read (its flow-control window shut)
//                stays connected. So the answer's serialized bytes are held
//                in the pool's memory budget (WorkerPool::HoldBytes) from
//                just before Finish to its finish event: a client that never
//                reads cannot make the server keep answers outside the
//                budget while it admits more work; new work that would pass
//                the budget is refused (reason memory) until the answers are
//                taken or the client disconnects. Invariant: every hold is
//                released by the call's finish event, which every Finish
//                gets (ok or not, also at shutdown), so once no call is left
//                the pool holds no bytes for answers (asserted in
//                Shutdown). An OK answer whose call's done event says
//                cancelled (before Finish or after it, on either thread:
//                the second of the two marks it) never reached the client:
//                ComputeService::AnswerUndelivered counts it.
//   Lifetime: a reference count. One reference is held by the chain of
//   request -> Finish events, one by the done event (AsyncNotifyWhenDone,
//   delivered once per call that arrived, whether finished or cancelled),
//   and one by a worker while it issues Finish (its finish event may be
//   handled on the queue's thread before Finish returns). The last one
//   deletes the call, so no call object outlives its events or leaks.
//
// Shutdown (ComputeServer::Drain): the service answers new calls
// UNAVAILABLE while the pool completes what it accepted (each completion
// finishes its call); then grpc::Server::Shutdown, which returns the waiting
// requests not ok and cancels what is left; then Shutdown() here: no new
// requests; the threads keep handling events until every call object on
// the queues (RunCalls and other services' calls, CallBegins) is gone; then
// each queue is shut down and drained by its thread, the threads joined.
// Why wait before the queues' shutdown: a call's arrival may still sit in a
// queue when grpc::Server::Shutdown returns (it waits for connections, not
// for the events it has queued), and handling it starts operations on its
// queue (the done notification, the answer), which gRPC aborts on once the
// queue is shut down (GPR_ASSERT in grpc_call_start_batch).
//
// Thread-safety: Start and Shutdown from one thread; the rest is internal.
#ifndef COMPUTE_SERVER_SERVICE_RUN_CALL_H_
#define COMPUTE_SERVER_SERVICE_RUN_CALL_H_

#include <atomic>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "compute/v1/compute.grpc.pb.h"
#include "grpcpp/server_builder.h"
#include "server/pool/sync.h"
#include "server/service/compute_service.h"

namespace compute::service {

// What every event on the queues carries (the tag): the object it is for.
// Run's calls and the health service's (health.h) share the queues.
class QueueEvent {
 public:
  // On the queue's thread; `ok` as gRPC's completion queue gives it.
  virtual void Handle(bool ok) = 0;

 protected:
  ~QueueEvent() = default;
};

// The event of one call: hands `ok` to the call's On(kind, ok).
template <typename Call, typename Kind>
class CallEvent final : public QueueEvent {
 public:
  CallEvent(Call* call, Kind kind) : call_(call), kind_(kind) {}
  void Handle(bool ok) override { call_->On(kind_, ok); }

 private:
  Call* const call_;
  const Kind kind_;
};

class RunQueues {
 public:
  // Starts a thread, or throws std::system_error as std::thread does when
  // the system refuses one (pids.max, RLIMIT_NPROC).
  using ThreadStarter = std::function<std::thread(std::function<void()>)>;
  // `service` must outlive this. `start_thread` empty: std::thread.
  RunQueues(ComputeService& service, int io_threads, int requests_per_queue,
            ThreadStarter start_thread = nullptr);
  ~RunQueues();  // Shutdown()
  RunQueues(const RunQueues&) = delete;
  RunQueues& operator=(const RunQueues&) = delete;

  // Before BuildAndStart: registers the async service and adds the queues.
  void AddTo(grpc::ServerBuilder& builder);
  // After BuildAndStart: starts the threads, then requests calls.
  // ResourceExhausted if the system refuses a thread: no call was
  // requested then, and Shutdown stops the threads that started.
  absl::Status Start();
  // After grpc::Server::Shutdown: stops requesting, waits (at most
  // kCallsEndLimit) until no call object is left on the queues, then shuts
  // each queue down and joins its thread once it has drained. Idempotent.
  void Shutdown();
  static constexpr absl::Duration kCallsEndLimit = absl::Seconds(10);

  // Every object that awaits events on these queues counts itself in for
  // its life: RunCall does; other services' calls (health.h) call these.
  void CallBegins();
  void CallEnds();

  // For the other services on these queues (health.h): calls
  // `request(cq)` with queue `q`'s completion queue, unless the queues are
  // shutting down (then false, and `request` is not called).
  template <typename Request>
  bool RequestOn(int q, Request&& request) {
    Queue& queue = *queues_[static_cast<size_t>(q)];
    MutexLock lock(&queue.mu);
    if (!queue.accepting) return false;
    request(queue.cq.get());
    return true;
  }

  int io_threads() const { return static_cast<int>(queues_.size()); }
  int requests_per_queue() const { return requests_per_queue_; }
  // RunCall objects alive: those waiting for a call (io_threads x
  // requests_per_queue while serving) and those whose call is not over;
  // 0 after Shutdown. For tests and leak checks.
  int live_calls() const { return live_calls_.load(std::memory_order_acquire); }

 private:
  friend class RunCall;
  struct Queue {
    std::unique_ptr<grpc::ServerCompletionQueue> cq;
    std::thread thread;
    Mutex mu;  // orders new requests before the queue's shutdown
    bool accepting ABSL_GUARDED_BY(mu) = true;
  };
  // A new RunCall waiting for a call on `queue`, unless it is shutting down.
  void Request(Queue& queue);
  static void Poll(Queue& queue);

  ComputeService& service_;
  // Raw: the calls' bytes are parsed and serialized by RunCall (wire.h).
  compute::v1::Compute::WithRawMethod_Run<compute::v1::Compute::Service> async_;
  const int requests_per_queue_;
  const ThreadStarter start_thread_;
  std::vector<std::unique_ptr<Queue>> queues_;
  std::atomic<int> live_calls_{0};
  // Calls of every service on the queues (CallBegins - CallEnds); once
  // draining_, each end that leaves none wakes Shutdown.
  std::atomic<int> calls_on_queues_{0};
  std::atomic<bool> draining_{false};
  Mutex calls_mu_;
  CondVar calls_ended_;
  bool started_ = false;
  bool shut_down_ = false;
};

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_RUN_CALL_H_
