// WorkerPool: a bounded pool of long-lived worker threads behind a
// cost-aware scheduler with admission budgets.
//
// This is the classic worker-pool pattern (spawn workers once, keep an idle
// set and a FIFO queue, pair a queued task with a freed worker, bound the
// queue so bursts are absorbed or refused rather than piled up), plus what a
// production pool needs: cooperative cancellation, deadlines, min..max
// sizing with an idle timeout, and overload control. It knows nothing of
// gRPC or Prometheus.
//
// Contract
//   - Submit() never blocks. It accepts the task or refuses it at once, and
//     says why (SubmitRefusal): Unavailable once shutdown has begun,
//     DeadlineExceeded when the task's deadline has already passed, and
//     ResourceExhausted when a budget is spent (below).
//   - Every accepted task completes exactly once: its DoneFn is called once,
//     with one outcome (ok, cancelled, deadline exceeded, failed, shut down),
//     after the observer saw it. A refused task's DoneFn is never called.
//   - Order (fair_queue.h): critical tasks before default before
//     sheddable; within a class, tenants (TaskOptions::tenant) take turns
//     fairly by estimated cost, weighted; one tenant's tasks of one class
//     run in submission order (with one tenant, the pool is FIFO).
//   - Cancel(): a queued task leaves the queue at once (its place, bytes and
//     cost are free for the next Submit) and completes on the caller's
//     thread; a running task sees its CancelToken signalled and stops at its
//     next check.
//   - Deadlines: the pool's clock and each task's deadline are the single
//     source of truth (not gRPC's own cancel). A queued task whose deadline
//     passes leaves the queue and completes without running, on the timer
//     thread, or on a worker that reaches it first: no task starts past its
//     deadline. A running one gets its token signalled.
//     Whether a stopped task "was cancelled" or "ran out of time" is decided
//     when it completes: deadline exceeded if the clock is then at or past
//     its deadline, else cancelled.
//   - A task that returns an error or throws completes as failed with that
//     message (unless the pool had asked it to stop, in which case the
//     outcome is the reason it was asked); the worker lives on.
//   - Shutdown(deadline): refuses new work; a queued task whose cost
//     (TaskOptions::cost) is longer than the time left until `deadline`
//     from when it could start completes at once (it could not finish),
//     judged at the call (from when the first place is expected to free
//     up: FirstPlaceFreesInLocked; with a place free, every queued task as
//     if it started now), at a second call that brings the deadline
//     forward, whenever a worker frees up (from then; the task it starts
//     is checked in the same critical section), and, while every worker
//     stays busy, when the costliest queued task's cost passes the time left
//     (the draining Shutdown wakes then); other queued and
//     running tasks may finish until `deadline`; then queued tasks
//     complete, and running ones are signalled (a task that ignores its
//     token delays the join); every thread is joined. A queued task taken
//     out so completes as shut down, or deadline exceeded if its own
//     deadline has passed. A Shutdown called while another waits brings
//     that one's deadline forward to its own, if earlier (a second SIGTERM
//     ends the drain now). The destructor calls Shutdown(now).
//
// Budgets, checked in this order at Submit, each a SubmitRefusal reason
// (admission.h has the rules in full). First, before any budget, kExpired:
// the deadline has passed already; and kDeadline for a task whose own cost
// alone is past its deadline (pushback -1: no wait would help). Then:
//   - kQueueFull: a task is accepted while queued tasks < queue_capacity +
//     free places (max_workers - running: places whose worker has retired
//     below max_workers count too, a worker starts for them), so
//     `queue_capacity` counts the tasks that wait for a busy worker, and
//     capacity 0 makes a queueless pool. A full queue
//     first makes room, if it can, by displacing one queued task: the
//     newest of the lowest class below the task's own (sheddable first,
//     then default for a critical task; FairQueue::NewestBelow); else, for
//     a task whose tenant is under its fair share of its class's queue's
//     places (counted in tasks, not cost), the newest of the tenant most
//     over its share (the memory budget may pick another: kMemory,
//     below). The displaced task completes kPreempted (or
//     kDeadlineExceeded, if its deadline has passed: the time decides).
//   - kMemory: bytes held by queued and running tasks (TaskOptions::bytes)
//     plus the bytes held outside any task (HoldBytes, below) would pass
//     max_inflight_bytes. A displaced task's bytes count as freed; when
//     they are not enough (or none was displaced), one newest task of a
//     lower class that holds enough is displaced instead
//     (FairQueue::NewestBelow with min_bytes). One victim at most.
//   - kShed: a sheddable task's expected wait is over half the target.
//   - kOverload: a standing queue (below) and this task's expected wait is
//     over target_queue_wait (critical tasks are exempt).
//   - kDeadline: (with TaskOptions::admit_by_deadline) now + expected wait +
//     a margin of a quarter of that wait + the task's own cost is past its
//     deadline. An idle pool admits any task whose own cost fits.
// When queue_full, shed or overload refuses a task whose tenant holds more
// than its fair share of its class's queue (places for queue_full, queued
// cost for the others), the reason is kTenantShare instead: the tenant over
// its share is the one refused. (Not for memory: the queue does not count
// bytes per tenant.)
// Expected wait = 0 while a worker is free for the task; else (the queued
// cost fair queuing would run before it, with what the other tenants and
// the higher classes send meanwhile (Admission::ExpectedWaitWhileOthersSend)
// + remaining cost of the running ones) / workers.
// Each task's cost is its caller's estimate (TaskOptions::cost); see
// cost_model.h for how the service makes one.
//
// Bytes held outside a task (HoldBytes / ReleaseBytes): a task's bytes are
// released when it completes, but what it produced may live on: the
// service's answer stays in memory until the client has read it (or gone),
// and a client that never reads keeps it for as long as it stays
// connected. The caller holds those bytes from the task's completion until
// they are freed, so they count against the same budget as the queued and
// running tasks: while a non-reading client keeps answers, new work that
// would pass the budget is refused (kMemory) and small work is still
// admitted. Holding never refuses (the bytes exist already), so the bytes
// held may exceed max_inflight_bytes; they only refuse new tasks. The hold
// begins just after the task's own bytes are released, so another task may
// be admitted in that gap of microseconds, once per completion: the budget
// may be passed by at most one answer per completing task, never by a
// growing amount.
// Invariant: held_bytes() >= 0 at all times (each ReleaseBytes returns
// bytes an earlier HoldBytes took), and 0 when the pool is destroyed (its
// users released everything before). Checked in debug and sanitizer
// builds.
//
// Sizing: min_workers (>= 1) threads start with the pool and never retire;
// Submit starts another, up to max_workers, when more tasks are queued than
// idle workers will take, and a worker above min_workers idle for
// idle_timeout exits. A thread the system refuses (pids.max, RLIMIT_NPROC,
// RLIMIT_AS: std::system_error) fails Create (ResourceExhausted, after
// stopping the threads it started); in Submit it is no error for the task,
// already queued for the live workers (min_workers of them at least), and
// PoolStats::worker_start_failures counts it. Its slot stays empty; until
// a start succeeds, admission counts only the live workers (the queue holds
// queue_capacity beyond them, the expected wait divides by them), and a
// Submit whose task would wait tries again at most once per
// kWorkerStartRetryInterval (1 s), not at every call (each try is a failed
// clone under the lock), and before its admission, so that the admission
// counts what the try found: a queue full for the live workers is retried
// too, and no task is admitted for a place whose thread then fails.
//
// Standing queue (CoDel's rule, applied at admission rather than by dropping
// queued work): a queue wait above target_queue_wait is normal for a burst,
// which the queue exists to absorb. When every task dequeued for a whole
// overload_interval waited more than the target, the queue is standing: the
// pool is overloaded, and from then on admits only tasks whose expected wait
// is within the target, so accepted calls wait about the target instead of
// the whole queue. It stops when a worker finds the queue empty or a task
// waited less than half the target (the hysteresis keeps it from flapping
// while admission holds the wait just under the target). The short wait of a
// task that was its flow's only one ends nothing (admission.h).
//
// Threading: all public methods are thread-safe. Completion callbacks run on
// a worker, the timer thread, the thread that called Cancel/Shutdown, or,
// for a task displaced from a full queue, the thread whose Submit displaced
// it (after that Submit's own work is done; a caller must not hold a lock
// across Submit that the callback takes), never with a pool lock held, so they
// may call Submit, Cancel and Stats. They must not throw. Shutdown called from
// a pool thread (a task, a completion, the observer) only stops admitting work:
// it cannot wait for or join its own thread; the pool must not be destroyed
// from one. Submit and Cancel may race Shutdown, but not the destructor.
//
// Design: one mutex (mu_) guards the whole scheduler, whose parts each have
// a file: the queue (fair_queue.h: intrusive doubly-linked FIFOs, O(1)
// unlink on cancel and expiry), the deadline heap (deadline_heap.h: a task
// that finishes only marks its entry stale, O(1)), the admission policy
// (admission.h: the budgets and the overload detector), the task record
// (pool_task.h) and, here, the sums the budgets read and the free list of
// task records. Critical sections are a few dozen instructions and allocate
// nothing in the steady state. Task records are recycled, never freed
// before the pool, so a stale TaskHandle is harmless: its sequence number
// no longer matches. Every change of a task's state is checked
// (ABSL_ASSERT-style, active in debug and sanitizer builds) against the
// allowed transitions:
//   kFree -> kQueued -> kRunning -> kDelivering -> kFree
//                    \-> kDelivering (cancelled, expired, shut down,
//                        displaced: unrun)
// (a task that expires as a worker takes it goes kRunning -> kDelivering
// unrun, with worker -1; RunInlineIfFree's goes kQueued -> kRunning at
// once, never linked into the queue).
// Invariants, checked under mu_ in debug builds (CheckInvariantsLocked):
// the queue holds exactly the kQueued tasks; running_ (workers' tasks and
// inline runs) <= alive workers <= max_workers; queue_.size() + running_ <=
// queue_capacity + max_workers; the cost and byte sums equal those of the
// queued and running tasks; a task has a live entry in the deadline heap iff
// it is queued or run by a worker (an inline run is never timed), has a
// finite deadline and has not been signalled, and the heap holds at most 2 x
// live + 64 entries.
#ifndef COMPUTE_SERVER_POOL_WORKER_POOL_H_
#define COMPUTE_SERVER_POOL_WORKER_POOL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/pool/admission.h"
#include "server/pool/cancel_token.h"
#include "server/pool/clock.h"
#include "server/pool/deadline_heap.h"
#include "server/pool/fair_queue.h"
#include "server/pool/pool_options.h"
#include "server/pool/sync.h"
#include "server/pool/task_types.h"

namespace compute {

// After the system refused a worker thread, how long Submit waits before it
// tries to start one again.
inline constexpr absl::Duration kWorkerStartRetryInterval = absl::Seconds(1);

// A consistent snapshot, taken under the scheduler's lock.
struct PoolStats {
  size_t queue_depth = 0;
  size_t queue_capacity = 0;
  int workers = 0;
  int busy = 0;
  int idle = 0;
  int min_workers = 0;
  int max_workers = 0;
  uint64_t accepted = 0;
  // Refused for a budget (ResourceExhausted): queue_full, memory, overload,
  // deadline, tenant_share and shed. rejected_by counts every refusal by
  // its reason.
  uint64_t rejected = 0;
  std::array<uint64_t, kNumRefusalReasons> rejected_by{};
  std::array<uint64_t, kNumTaskOutcomes> completed{};
  absl::Duration queued_cost;    // estimated run time of the queued tasks
  absl::Duration running_cost;   // estimated time the running tasks have left
  absl::Duration expected_wait;  // for a task submitted now
  // Held by queued and running tasks, plus held_bytes.
  int64_t inflight_bytes = 0;
  int64_t held_bytes = 0;          // held outside tasks (HoldBytes)
  int64_t max_inflight_bytes = 0;  // 0 = no limit
  absl::Duration target_queue_wait;
  bool overloaded = false;  // a standing queue: admission holds the target
  // Workers Submit could not start (the system refused the thread).
  uint64_t worker_start_failures = 0;

  uint64_t completed_total() const;
};

namespace pool_internal {
struct PoolTask;
}

// Names an accepted task for Cancel(). A plain value: the pool recycles its
// task records, and a handle whose task has finished (its record reused for
// a later submission, with a new sequence number) simply no longer matches.
// Valid only with the pool that issued it, during that pool's life.
class TaskHandle {
 public:
  TaskHandle() = default;
  bool valid() const { return task_ != nullptr; }

 private:
  friend class WorkerPool;
  TaskHandle(pool_internal::PoolTask* task, uint64_t seq)
      : task_(task), seq_(seq) {}
  pool_internal::PoolTask* task_ = nullptr;
  uint64_t seq_ = 0;
};

class WorkerPool {
 public:
  // Checks the options (absl::InvalidArgumentError naming the field) and
  // starts min_workers threads plus the timer thread. A thread that cannot
  // start makes it return absl::ResourceExhaustedError naming it and the
  // cause, having stopped and joined the threads it started.
  static absl::StatusOr<std::unique_ptr<WorkerPool>> Create(
      PoolOptions options);

  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // On refusal, fills *refusal (when given) with the reason and pushback.
  [[nodiscard]] absl::StatusOr<TaskHandle> Submit(
      TaskFn fn, DoneFn done, TaskOptions options = {},
      SubmitRefusal* refusal = nullptr);

  // Workers as permits: when the task's cost is at most inline_max_cost,
  // nothing is queued, a worker's place is free and every budget admits it,
  // runs `fn` at once on this thread, holding that place, then `done` with
  // its result (the observer sees it first, as for any task), and returns
  // true. Otherwise returns false, having left `fn` and `done` untouched and
  // counted nothing: Submit them. `done` runs while the task still counts
  // in the pool, as a worker's completion does, so a Shutdown waits for it
  // and AwaitHeldBytesReleased then sees what it held (the service holds
  // the answer's bytes there). A task run here is not stopped by a cancel
  // or its deadline (it is shorter than either's reaction time);
  // TaskResult::worker is max_workers.
  bool RunInlineIfFree(TaskFn& fn, DoneFn& done, const TaskOptions& options);

  // Returns true when the task was queued or running (it is now leaving the
  // queue, or has been asked to stop); false when it had already finished.
  // `why`: kCancelled, whose outcome the clock decides when the task ends
  // (at or past its deadline it is kDeadlineExceeded), or
  // kDeadlineExceeded, when the caller knows the deadline has passed by
  // another copy of it: a gRPC client's RST_STREAM, sent when its own copy
  // passes, can arrive a hair before the server's copy does.
  bool Cancel(const TaskHandle& handle,
              TaskOutcome why = TaskOutcome::kCancelled);

  // Idempotent; concurrent callers all return once the pool has stopped.
  void Shutdown(absl::Time deadline);

  PoolStats Stats() const;

  // Charges `bytes` (>= 0) held outside any task to the memory budget until
  // a ReleaseBytes of the same amount; never refuses (see "Bytes held
  // outside a task" above). Lock-free: a relaxed atomic add, not mu_, since
  // the service calls both for every answer it sends (on the worker or I/O
  // thread that finishes the call, and on the I/O thread that sees it sent),
  // two more acquisitions of mu_ per call on its hottest path, and they need
  // no consistency with the queue: admission reads the sum once. May be
  // called after Shutdown.
  void HoldBytes(int64_t bytes);
  // Returns bytes taken by HoldBytes. Releasing more than is held is a bug
  // (checked in debug and sanitizer builds).
  void ReleaseBytes(int64_t bytes);
  int64_t held_bytes() const {
    return held_bytes_.load(std::memory_order_relaxed);
  }
  // After Shutdown: waits until every byte held outside tasks has been
  // released, or until Shutdown's deadline (the earliest any caller gave:
  // a later Shutdown(now) ends this wait too). Returns whether none is
  // held. The service holds an answer's bytes until its client has taken
  // it, so a drain waits here for answers still on their way (a large one
  // to a slow reader) before gRPC's shutdown would cancel them.
  bool AwaitHeldBytesReleased();

  Clock& clock() const { return clock_; }
  int64_t max_inflight_bytes() const { return max_inflight_bytes_; }

 private:
  using PoolTask = pool_internal::PoolTask;
  struct Worker {
    std::thread thread;
    bool alive = false;         // its thread runs the worker loop
    PoolTask* task = nullptr;   // the task it runs, or nullptr
    int64_t started_ticks = 0;  // when that task started
  };

  explicit WorkerPool(PoolOptions options);

  // When a task arrived. Submit reads it before taking the pool's mutex (on
  // a VM, clock_gettime is ~45 ns, and the mutex is what the submitters and
  // the workers contend for); RunInlineIfFree under it, once it knows the
  // pool is free (uncontended then, and no read when it is not).
  struct Arrival {
    int64_t ticks = 0;
    // Now() for a task with a deadline (checked against it); else unread.
    absl::Time now = absl::InfinitePast();
  };
  Arrival ArrivalOf(const TaskOptions& options) const;

  // Admission (admission.h decides): OK, or why not (and *refusal filled).
  // When it admits a task by displacing a queued one to make room, it takes
  // that one out (*displaced; the caller delivers it off the lock).
  absl::Status AdmitLocked(const TaskOptions& options, const Arrival& arrival,
                           SubmitRefusal* refusal, PoolTask** displaced)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Workers that will take a queued task without a new thread: the idle
  // ones (those woken but not yet running included) and the spinning one.
  size_t IdleTakersLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return static_cast<size_t>(idle_workers_ + (spinning_ ? 1 : 0));
  }
  // With worker_start_refused_, from Submit before its admission: tries to
  // start a worker once the retry interval has passed, if a place is empty
  // and the arriving task would wait. Success clears the refusal (true: a
  // worker started, the one this Submit's growth would start); failure
  // restarts the interval.
  bool RetryWorkerStartLocked(int64_t now_ticks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The pool's load at `now_ticks`, for admission_; valid while
  // running_left_ns is.
  PoolLoad LoadLocked(int64_t now_ticks,
                      absl::FunctionRef<void(PoolLoad::Left*)> running_left_ns)
      const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The clock's ticks as a monotonic time in ns (the fair queue's rates).
  int64_t TicksToNs(int64_t ticks) const {
    return absl::ToInt64Nanoseconds(clock_.TicksToDuration(ticks));
  }
  // Appends the estimated time each task on a worker has left: its cost
  // less the time it has run, and at least a fifth of its cost (a task
  // past its estimate has not ended: counted as ending at once, it made
  // the pool look free while every worker was busy).
  void RunningLeftNsLocked(int64_t now_ticks, PoolLoad::Left* left) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A record for a new submission, in state kQueued (not yet linked).
  PoolTask* NewTaskLocked(TaskFn fn, DoneFn done, const TaskOptions& options,
                          int64_t now_ticks) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  PoolTask* AllocateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RecycleLocked(PoolTask* task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // A queued task leaves without running: unlinked, its budgets released,
  // its outcome decided (at or past its deadline, whatever took it out, it
  // is the deadline) and counted. The caller delivers it (off the lock) with
  // DeliverUnrun.
  void TakeUnrunLocked(PoolTask* task, TaskOutcome outcome)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A running task is asked to stop for `reason`.
  void SignalLocked(PoolTask* task, TaskOutcome reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Budgets of a task that left the queue or finished running.
  void ReleaseLocked(PoolTask* task) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes Shutdown if nothing is left to deliver.
  void SignalIfDrainedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Starts a worker in the first empty slot. When the system refuses the
  // thread (ResourceExhausted with its cause) nothing changes: the slot
  // stays empty and the workers' counts are as they were.
  absl::Status SpawnWorkerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // options.start_thread, or std::thread; a thread the system refuses
  // (std::system_error, std::bad_alloc) is ResourceExhausted with its cause.
  absl::StatusOr<std::thread> StartThread(std::function<void()> body);
  void WorkerLoop(int index);
  // Whether a worker may start the front task: one is queued and a place
  // is free. Inline runs (RunInlineIfFree) hold places too, so an idle
  // worker may find a task queued and no place for it: it waits, and the
  // inline run that frees the place wakes it.
  bool CanStartLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !queue_.empty() && running_ < alive_workers_;
  }
  // Dequeues the front task onto worker `me` (CanStartLocked() holds).
  PoolTask* StartNextLocked(Worker& me) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // `me` finished running `task`: its budgets are free, its outcome counted.
  void FinishLocked(Worker& me, PoolTask* task, const TaskResult& result)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Before sleeping, one idle worker at a time polls queued_hint_ for up to
  // kSpinIterations pauses (a few microseconds) with mu_ released: a task
  // that arrives then starts without a futex wake-up on either side, which
  // on a VM costs several microseconds per task. Only one spins, so idle
  // workers never take the CPUs from the gRPC threads. Returns whether a
  // task may start (CanStartLocked; mu_ held again either way).
  bool SpinForWorkLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  static constexpr int kSpinIterations = 512;
  // Runs the task (off the lock), started at `start` ticks, and writes its
  // result to `out` (the record keeps none). A task whose deadline is at
  // or before `now` (the time at `start`; InfinitePast: not looked at) does
  // not run: result.worker -1, deadline_exceeded (see WorkerLoop).
  void Execute(PoolTask* task, int index, int64_t start, absl::Time now,
               TaskResult* out) ABSL_LOCKS_EXCLUDED(mu_);
  // Completes a task taken by TakeUnrunLocked on the calling thread.
  void DeliverUnrun(PoolTask* task) ABSL_LOCKS_EXCLUDED(mu_);
  // The same for each of `tasks` (then cleared), from a section that holds
  // mu_: it is released while they are delivered, and held again after.
  void DeliverUnrunUnlocked(std::vector<PoolTask*>& tasks)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Observer, counters, DoneFn: off the lock.
  void Deliver(PoolTask* task, const TaskResult& result)
      ABSL_LOCKS_EXCLUDED(mu_);
  void TimerLoop();
  // What is past its deadline at `now`: a queued task leaves the queue (into
  // `expired`, for the caller to deliver off the lock with DeliverUnrun), a
  // running one is signalled. The timer thread calls it when a deadline
  // comes, and a worker before it starts a task, should it get there first.
  void ExpireLocked(absl::Time now, std::vector<PoolTask*>& expired)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // While draining: the queued tasks that could not finish by the drain's
  // deadline if they started `start_after` past `now` (their own cost is
  // longer than what would be left) leave the queue as shut down, into
  // `out` (for the caller to deliver off the lock with DeliverUnrun), so
  // that their clients retry elsewhere at once, not when the drain ends.
  void TakeWhatCannotFinishLocked(absl::Time now, absl::Duration start_after,
                                  std::vector<PoolTask*>& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // How long until a place frees up for a queued task: 0 with one free,
  // with an inline run holding one (its end is not estimated), or with a
  // running task already asked to stop; else the least estimated time a
  // running task has left (RunningLeftNsLocked).
  absl::Duration FirstPlaceFreesInLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // While draining: when the first queued task (the costliest) could no
  // longer finish even if it started then (InfiniteFuture with none
  // queued). O(queue), once per wake of the draining Shutdown.
  absl::Time FirstCannotFinishAtLocked() const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  void CheckInvariantsLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int min_workers_;
  const int max_workers_;
  const size_t capacity_;
  const int64_t max_inflight_bytes_;
  const absl::Duration inline_max_cost_;
  const bool spin_before_park_;
  const absl::Duration idle_timeout_;
  Clock& clock_;
  PoolObserver* const observer_;
  const std::string thread_name_;
  const std::function<std::thread(std::function<void()>)> start_thread_;

  mutable Mutex mu_;
  // The budgets and the standing-queue detector.
  Admission admission_ ABSL_GUARDED_BY(mu_);
  CondVar work_cv_;   // a task was queued, or stopping
  CondVar timer_cv_;  // the earliest deadline changed, or stopping
  // Shutdown waits: in_pool_ reached 0, or a later Shutdown brought the
  // deadline forward.
  CondVar drained_cv_;
  CondVar shutdown_cv_;  // shutdown_done_ became true

  // The queue: classes, and tenants' flows within a class.
  FairQueue queue_ ABSL_GUARDED_BY(mu_);
  int running_ ABSL_GUARDED_BY(mu_) = 0;  // on workers and inline
  int inline_running_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t inline_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Accepted tasks not yet delivered and recycled (Shutdown waits for 0).
  size_t in_pool_ ABSL_GUARDED_BY(mu_) = 0;
  // The queued and running tasks with a deadline, not yet signalled.
  DeadlineHeap<PoolTask> deadlines_ ABSL_GUARDED_BY(mu_);
  // Estimated cost of the tasks on workers, in full (not what is left).
  int64_t running_full_cost_ns_ ABSL_GUARDED_BY(mu_) = 0;
  // Bytes of the queued and running tasks (TaskOptions::bytes).
  int64_t inflight_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Bytes held outside tasks (HoldBytes); read under mu_ by admission.
  std::atomic<int64_t> held_bytes_{0};
  // Set while AwaitHeldBytesReleased waits: the release that leaves nothing
  // held wakes it (drained_cv_).
  std::atomic<bool> awaiting_held_{false};
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;

  // Task records: owned here, recycled through free_ (never freed before the
  // pool, so a stale handle's pointer stays valid).
  std::vector<std::unique_ptr<PoolTask>> records_ ABSL_GUARDED_BY(mu_);
  PoolTask* free_ ABSL_GUARDED_BY(mu_) = nullptr;

  std::vector<Worker> workers_ ABSL_GUARDED_BY(mu_);  // max_workers slots
  int alive_workers_ ABSL_GUARDED_BY(mu_) = 0;
  int idle_workers_ ABSL_GUARDED_BY(mu_) = 0;   // waiting for work
  bool spinning_ ABSL_GUARDED_BY(mu_) = false;  // a worker in SpinForWork
  // queue_.size(), for the spinning worker to read without mu_ (written
  // under it).
  std::atomic<size_t> queued_hint_{0};
  // What the timer thread sleeps until (InfinitePast while it is awake):
  // Submit wakes it only for an earlier deadline.
  absl::Time timer_wakes_at_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::thread timer_thread_;

  bool closed_ ABSL_GUARDED_BY(mu_) = false;  // Submit refuses
  bool shutdown_started_ ABSL_GUARDED_BY(mu_) = false;
  // Until when queued and running work may still finish; a later Shutdown
  // with an earlier deadline brings it forward.
  absl::Time shutdown_deadline_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // threads exit
  bool shutdown_done_ ABSL_GUARDED_BY(mu_) = false;

  // Counters for Stats (under mu_; read only by Stats, also under mu_).
  uint64_t accepted_ ABSL_GUARDED_BY(mu_) = 0;
  std::array<uint64_t, kNumRefusalReasons> rejected_by_ ABSL_GUARDED_BY(mu_){};
  std::array<uint64_t, kNumTaskOutcomes> completed_ ABSL_GUARDED_BY(mu_){};
  uint64_t worker_start_failures_ ABSL_GUARDED_BY(mu_) = 0;
  // A try to start a worker was refused, the last one at that tick, and none
  // has succeeded since (RetryWorkerStartLocked clears it on success):
  // admission counts only the live workers, and a start is tried again only
  // kWorkerStartRetryInterval after the last refusal.
  bool worker_start_refused_ ABSL_GUARDED_BY(mu_) = false;
  int64_t worker_start_refused_ticks_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_WORKER_POOL_H_
