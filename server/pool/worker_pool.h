// WorkerPool: a bounded pool of long-lived worker threads with a FIFO queue.
//
// This is the classic worker-pool pattern (spawn workers once, keep an idle
// set and a FIFO queue, pair a queued task with a freed worker, bound the
// queue so bursts are absorbed or refused rather than piled up), plus what a
// production pool needs: cooperative cancellation, deadlines, min..max sizing
// with an idle timeout, stats readable without locks, and a shutdown that
// loses nothing. It knows nothing of gRPC or Prometheus.
//
// Contract
//   - Submit() never blocks. It accepts the task or refuses it at once:
//     ResourceExhausted when the queue is full, Unavailable once shutdown has
//     begun, DeadlineExceeded when the task's deadline has already passed.
//   - Every accepted task completes exactly once: its DoneFn is called once,
//     with one outcome (ok, cancelled, deadline exceeded, failed, shut down),
//     after the observer saw it. A refused task's DoneFn is never called.
//   - FIFO: workers take queued tasks in submission order.
//   - Capacity: a task is accepted while queued tasks < capacity + idle
//     workers, so `capacity` counts the tasks that wait for a busy worker
//     and capacity 0 makes a queueless pool (a task is taken only when a
//     worker is free for it).
//   - Cancel(): a queued task leaves the queue at once (its slot is free for
//     the next Submit) and completes as cancelled on the caller's thread; a
//     running task sees its CancelToken signalled and stops at its next check.
//   - Deadlines: one timer thread for the whole pool. A queued task whose
//     deadline passes completes as deadline exceeded without running, on the
//     timer thread; a running one gets its token signalled.
//   - A task that returns an error or throws completes as failed with that
//     message (unless the pool had asked it to stop, in which case the
//     outcome is the reason it was asked); the worker lives on.
//   - Shutdown(deadline): refuses new work; queued and running tasks may
//     finish until `deadline`; then queued tasks complete as shut down and
//     running ones are signalled (a task that ignores its token delays the
//     join); every thread is joined. The destructor calls Shutdown(now).
//
// Threading: all public methods are thread-safe. Completion callbacks run on
// a worker, the timer thread, the thread that called Cancel/Shutdown, or
// (for a task accepted in the instant Shutdown stopped the workers) the
// submitting thread before Submit returns, never with a pool lock held, so they
// may call Submit, Cancel and Stats. They must not throw. Shutdown called from
// a pool thread (a task, a completion, the observer) only stops admitting work:
// it cannot wait for or join its own thread; the pool must not be destroyed
// from one. Submit and Cancel may race Shutdown, but not the destructor:
// Shutdown can return while a racing Submit is still finishing its call, so
// the owner destroys the pool only once no other thread can be in one.
// Stats() reads atomics only and never waits for a worker.
//
// Design (why it is fast): Submit takes no lock shared with the workers.
//   - Admission is one compare-and-swap on `submitted_` (the accepted count,
//     with a "closed" bit that Shutdown sets), checked against the finished
//     count (tasks that left the queue or finished running): in the pool =
//     submitted - finished <= capacity + max_workers. Each worker counts the
//     places it releases in its own slot with a plain store (no counter,
//     and no barrier, shared between workers); Finished() sums the shares.
//     The submitter keeps a stale lower bound of that sum and reads the
//     real one only near the limit, so far from it the two sides share no
//     counter line. Shutdown's wait for the pool to empty needs no barrier
//     either: each release is followed by a check under mu_, which the
//     worker takes for its next task anyway (SignalIfDrainedLocked).
//   - The queue is an intrusive multi-producer FIFO (Vyukov's, with a stub
//     record): a submitter links its record at the back with one exchange
//     and one store; workers dequeue one record at a time at the front,
//     under mu_, in O(1). (A LIFO inbox reversed by the worker, the earlier
//     design, walked hundreds of records under mu_ while the other worker
//     waited: 0.6x the minimal pool with 2 workers.)
//   - Cancel and the timer never unlink from the middle: they free the
//     task's place at once, mark the record a tombstone and deliver the
//     completion; the record stays linked until a worker dequeues it (and
//     skips it) or a sweep, once per capacity + max_workers tombstones, cuts
//     the tombstones out. So tombstones cost records, never places, and
//     their number stays bounded even while every worker is stuck.
//   - Task records come from a free stack (workers push them in batches of
//     kFreeBatch with one CAS, other recyclers one at a time; the
//     allocator takes the whole stack in one exchange under alloc_mu_, a
//     spin lock among submitters only), so neither side allocates, and
//     neither stack has an ABA hazard: the only pop is "take all". Records
//     are cache-line aligned; the submitter writes only their first two
//     lines (prefetched one Submit ahead), the completer the result.
//   - Workers take mu_ only to dequeue, and it is contended only between
//     workers. A worker delivers its finished task's completion after
//     dequeuing the next one, outside mu_.
//   - A record's `seq` (unique per submission) and `state` are atomics, and
//     its CancelSource is tagged with `seq`, so Cancel and the timer may hold
//     a stale (record, seq) pair: seq is re-read after state (a seqlock), and
//     a stop request for an old seq misses.
//   - Sleeping: a worker with nothing to do spins briefly (one worker at a
//     time, so idle workers never take the CPU from submitters), then,
//     under mu_, counts itself in `idle_waiters_` and re-checks the queue
//     before waiting. Submit links, then wakes a sleeper through mu_ only
//     if one sleeps, none spins and no wake is already pending; a worker
//     that dequeues with more queued wakes the next (both sides sequentially
//     consistent, so either the worker sees the task or the submitter sees
//     the sleeper).
//   - Stats and completion counters are per-worker where they are written
//     per task, and summed at read time.
#ifndef COMPUTE_SERVER_POOL_WORKER_POOL_H_
#define COMPUTE_SERVER_POOL_WORKER_POOL_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "server/pool/cancel_token.h"
#include "server/pool/clock.h"
#include "server/pool/sync.h"

namespace compute {

enum class TaskOutcome : int {
  kOk = 0,
  kCancelled,
  kDeadlineExceeded,
  kFailed,
  kShutDown,
};
inline constexpr int kNumTaskOutcomes = 5;

// "ok", "cancelled", "deadline_exceeded", "failed", "shut_down".
std::string_view TaskOutcomeName(TaskOutcome outcome);

struct TaskResult {
  TaskOutcome outcome = TaskOutcome::kOk;
  // OK for kOk; otherwise the error (for kFailed, the task's own error or
  // exception message).
  absl::Status status;
  absl::Duration queue_wait;  // submitted -> started (or -> completed)
  absl::Duration run_time;    // zero when it never ran
  int worker = -1;            // index of the worker that ran it, or -1
  uint32_t tag = 0;           // TaskOptions::tag
};

using TaskFn = absl::AnyInvocable<absl::Status(const CancelToken&)>;
using DoneFn = absl::AnyInvocable<void(const TaskResult&)>;

struct TaskOptions {
  absl::Time deadline = absl::InfiniteFuture();
  // Opaque to the pool; handed back in TaskResult (the service puts the task
  // kind here so observers can label by it).
  uint32_t tag = 0;
};

// Receives every finished task, on the completing thread, just before its
// DoneFn. Must be thread-safe and cheap: it runs on the hot path.
class PoolObserver {
 public:
  virtual ~PoolObserver() = default;
  virtual void OnTaskFinished(const TaskResult& result) = 0;
};

struct PoolOptions {
  int max_workers = 1;  // >= 1
  int min_workers = 1;  // 1..max_workers (a pool always keeps one worker)
  // Tasks that may wait for a busy worker; 0 = queueless.
  size_t queue_capacity = 64;
  // A worker above min_workers idle this long exits.
  absl::Duration idle_timeout = absl::Seconds(60);
  Clock* clock = nullptr;                 // nullptr = Clock::Real()
  PoolObserver* observer = nullptr;       // optional; must outlive the pool
  std::string thread_name = "compute-w";  // + worker index (15 chars max)
};

// A consistent-enough snapshot: each field is read atomically, the set is not.
struct PoolStats {
  size_t queue_depth = 0;
  size_t queue_capacity = 0;
  int workers = 0;
  int busy = 0;
  int idle = 0;
  int min_workers = 0;
  int max_workers = 0;
  uint64_t accepted = 0;
  uint64_t rejected = 0;  // refused because the queue was full
  std::array<uint64_t, kNumTaskOutcomes> completed{};

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
  // starts min_workers threads plus the timer thread.
  static absl::StatusOr<std::unique_ptr<WorkerPool>> Create(
      PoolOptions options);

  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  [[nodiscard]] absl::StatusOr<TaskHandle> Submit(TaskFn fn, DoneFn done,
                                                  TaskOptions options = {});

  // Returns true when the task was queued or running (it is now leaving the
  // queue, or has been asked to stop); false when it had already finished.
  bool Cancel(const TaskHandle& handle);

  // Idempotent; concurrent callers all return once the pool has stopped.
  void Shutdown(absl::Time deadline);

  PoolStats Stats() const;

  Clock& clock() const { return clock_; }

 private:
  using PoolTask = pool_internal::PoolTask;
  struct WorkerSlot;  // per-worker state, one cache line each

  explicit WorkerPool(PoolOptions options);

  // Admission: reserves a place for one task, or says why not.
  absl::Status Admit();
  // The task finished running on the worker owning `slot`: its place is
  // free. The worker calls SignalIfDrainedLocked when it next holds mu_.
  void ReleaseRunPlace(WorkerSlot& slot);
  // A queued task was taken out without running: its place is free.
  void ReleasePlaceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Wakes Shutdown if the pool is closed and now empty.
  void SignalIfDrainedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t Finished() const;  // places released, summed over the shares
  uint64_t InPool() const;    // accepted and not yet released
  void GrowIfNeeded() ABSL_LOCKS_EXCLUDED(mu_);

  PoolTask* Allocate() ABSL_LOCKS_EXCLUDED(alloc_mu_);
  // Back to the free stack: at once off the workers (`slot` null), else
  // through the worker's batch.
  void Recycle(PoolTask* task, WorkerSlot* slot);
  static constexpr int kFreeBatch = 32;
  void FlushFree(WorkerSlot& slot);
  void PushFreeChain(PoolTask* first, PoolTask* last);
  // The queue: an intrusive multi-producer queue (Vyukov's, with a stub
  // record) that submitters link into without a lock and mu_ holders
  // dequeue from, one at a time, at the front.
  void Enqueue(PoolTask* task);
  // Nothing linked (a tombstone counts as something). Sequentially
  // consistent on the back: see WakeWorkerIfAsleep.
  bool QueueEmpty() const;
  // The front record, or nullptr: empty, or (`*linking` set) a submitter
  // has claimed the back but not yet linked to it.
  PoolTask* DequeueLocked(bool* linking) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Dequeues until a kQueued record, disposing of tombstones.
  PoolTask* PopRunnableLocked(WorkerSlot* slot, bool* linking)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnlinkedTombstoneLocked(PoolTask* task, WorkerSlot* slot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Cuts every tombstone but the last linked record out of the queue.
  void ReapTombstonesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes a queued task to complete without running: frees its place. A
  // task still `linked` stays in the queue as a tombstone.
  void TakeUnrunLocked(PoolTask* task, bool linked)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After Shutdown stopped the workers: tasks a racing Submit pushed late.
  void CollectStragglers() ABSL_LOCKS_EXCLUDED(mu_);

  void SpawnWorkerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WorkerLoop(int index);
  // Blocks until there may be work, the pool stops, or the worker retires
  // (returns false: the caller exits).
  bool WaitForWork(int index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Up to kSpinIterations pause instructions (about 5 us on the EPYC
  // development VM: a pause is ~20 ns there), if no other worker spins.
  static constexpr int kSpinIterations = 256;
  void SpinForWork();
  void WakeWorkerIfAsleep() ABSL_LOCKS_EXCLUDED(mu_);
  void JoinRetired() ABSL_LOCKS_EXCLUDED(mu_);

  // Runs the task on worker `index`, fills its result, and frees its place.
  void Execute(PoolTask* task, int index);
  // Timer bookkeeping, counters, observer, DoneFn. `slot` is the
  // delivering worker's, or null off the workers.
  void Deliver(PoolTask* task, WorkerSlot* slot);
  // Deliver, then back to the free stack.
  void DeliverAndRecycle(PoolTask* task, WorkerSlot* slot);
  // Completes a task taken by TakeUnrunLocked (cancelled, expired, shut
  // down) on the calling thread.
  void DeliverUnrun(PoolTask* task, TaskOutcome outcome, absl::Status status)
      ABSL_LOCKS_EXCLUDED(mu_);
  // What Cancel or an expired deadline did to the task `seq` on `task`.
  enum class StopResult {
    kGone,       // finished, or the record was reused
    kSignalled,  // running: its token is signalled
    kUnqueued,   // was queued: taken out (TakeUnrunLocked), deliver it
  };
  StopResult StopLocked(PoolTask* task, uint64_t seq, TaskOutcome reason)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void TimerLoop();

  const int min_workers_;
  const int max_workers_;
  const size_t capacity_;
  const absl::Duration idle_timeout_;
  Clock& clock_;
  PoolObserver* const observer_;
  const std::string thread_name_;

  // ---- Submitter side (one cache line, written by submitters) ----
  // Accepted tasks, with kClosedBit once Shutdown began.
  alignas(64) std::atomic<uint64_t> submitted_{0};
  // A lower bound of Finished(), refreshed near the limit.
  std::atomic<uint64_t> finished_hint_{0};
  std::atomic<uint64_t> next_seq_{1};

  // ---- Worker side ----
  // Places released by tasks that never ran (Cancel, the timer, Shutdown);
  // each worker counts the tasks it ran in its WorkerSlot.
  alignas(64) std::atomic<uint64_t> unrun_finished_{0};
  // The queue's back, where submitters link (the stub when none since).
  alignas(64) std::atomic<PoolTask*> queue_back_{nullptr};
  alignas(64) std::atomic<PoolTask*> free_stack_{nullptr};
  // Read per Submit, written only when a worker sleeps, wakes, starts or
  // stops spinning.
  alignas(64) std::atomic<int> idle_waiters_{0};
  // Workers in SpinForWork (at most one): it will see a new task, so Submit
  // wakes no sleeper while this is non-zero (the Go scheduler's rule).
  std::atomic<int> spinning_{0};
  // A submitter has signalled a sleeper that has not yet woken: further
  // submitters need not signal (the woken worker dequeues, and wakes the
  // next if more is queued).
  // Cleared by each worker as it starts to wait and as it wakes.
  std::atomic<bool> wake_pending_{false};
  // Read per Submit, written rarely (shutdown, growth, retirement).
  alignas(64) std::atomic<bool> closed_{false};  // mirrors kClosedBit
  std::atomic<int> workers_{0};                  // changed under mu_
  std::atomic<bool> has_retired_{false};         // retired_ is not empty
  alignas(64) std::atomic<uint64_t> rejected_{0};
  std::array<std::atomic<uint64_t>, kNumTaskOutcomes> unrun_completed_{};

  // Submitter side: its own cache line, apart from the workers' mu_.
  // Held for a few pointer moves (a chunk allocation at worst): a spin lock.
  alignas(64) SpinLock alloc_mu_;
  // Task records: allocated in chunks, never freed before the pool.
  std::vector<std::unique_ptr<PoolTask[]>> chunks_ ABSL_GUARDED_BY(alloc_mu_);
  PoolTask* alloc_list_ ABSL_GUARDED_BY(alloc_mu_) = nullptr;

  // mu_ and what a worker touches under it per task share one cache line:
  // the workers pass it between them at every dequeue.
  alignas(64) mutable Mutex mu_ ABSL_ACQUIRED_AFTER(alloc_mu_);
  // The queue's front: the next record to dequeue, or the stub. Written
  // under mu_; an atomic so that a spinning worker may peek.
  std::atomic<PoolTask*> queue_front_{nullptr};
  // Queued records taken without running, still linked.
  size_t tombstones_ ABSL_GUARDED_BY(mu_) = 0;
  alignas(64) CondVar work_cv_;              // work arrived, or stopping
  CondVar drained_cv_;                       // nothing in the pool (shutdown)
  CondVar shutdown_cv_;                      // shutdown_done_ became true
  size_t reap_at_ ABSL_GUARDED_BY(mu_) = 0;  // sweep when tombstones_ gets here
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;  // workers exit
  bool shutdown_started_ ABSL_GUARDED_BY(mu_) = false;
  bool shutdown_done_ ABSL_GUARDED_BY(mu_) = false;
  // Tasks taken out of the queue by Cancel, the timer or Shutdown whose
  // completion is being delivered off the lock.
  int unrun_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  CondVar unrun_cv_;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);  // by worker index
  std::vector<std::thread> retired_ ABSL_GUARDED_BY(mu_);  // to be joined
  std::unique_ptr<WorkerSlot[]> slots_;                    // by worker index
  const std::unique_ptr<PoolTask> stub_;  // the queue's placeholder record

  // Deadlines of queued and running tasks. Lock order: mu_ before timer_mu_;
  // the timer thread never holds timer_mu_ while taking mu_.
  alignas(64) Mutex timer_mu_ ABSL_ACQUIRED_AFTER(mu_);
  CondVar timer_cv_;
  std::map<std::pair<absl::Time, uint64_t>, PoolTask*> timers_
      ABSL_GUARDED_BY(timer_mu_);
  bool timer_stop_ ABSL_GUARDED_BY(timer_mu_) = false;
  std::thread timer_thread_;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_WORKER_POOL_H_
