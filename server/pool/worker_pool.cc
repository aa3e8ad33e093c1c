#include "server/pool/worker_pool.h"

#include <pthread.h>

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"

namespace compute {
namespace pool_internal {

// One task record, recycled. The payload fields (fn, done, options,
// submitted_ticks, result) are written by one thread at a time: the
// submitter before it links the record into the queue (release), then
// whoever takes it out of kQueued under mu_ (a worker, Cancel, the timer,
// Shutdown), then that thread alone until it pushes the record onto the free
// stack (release), from which the next submitter takes it (acquire).
//
// `seq` and `state` are atomics because Cancel and the timer read them for a
// handle that may be stale while the record is being reused: they read seq,
// then state, then seq again, and trust the state only if seq matched both
// times (the submitter stores seq before state). Only mu_ holders move a
// record out of kQueued, and the unrun states change only under mu_.
//
// Cancel and the timer do not unlink a queued record (the queue is unlinked
// only at its front): they mark it kUnrunDelivering, free its place and
// deliver its completion, and the record stays linked as a tombstone until
// a worker dequeues it, or ReapTombstonesLocked cuts it out. Whichever of
// the deliverer and the unlinker comes second recycles it.
struct alignas(64) PoolTask {
  enum class State : int {
    kFree,
    kQueued,   // linked, waiting for a worker
    kRunning,  // dequeued by a worker
    kFinished,
    kUnrunDelivering,  // taken without running; still linked; delivering
    kUnrunDelivered,   // delivered; still linked: the unlinker recycles it
    kUnrunUnlinked,    // unlinked while delivering: the deliverer recycles it
  };

  // Written by the submitter: the first two cache lines.
  TaskFn fn;
  DoneFn done;
  TaskOptions options;
  int64_t submitted_ticks = 0;   // Clock::Ticks()
  std::atomic<uint64_t> seq{0};  // unique per submission
  CancelSource cancel;           // generation = seq; code = TaskOutcome
  std::atomic<State> state{State::kFree};

  // The queue's link (written by the submitter that links after this
  // record), or the free stack's.
  std::atomic<PoolTask*> next{nullptr};

  // Written by the completer, whole (the submitter never touches it).
  TaskResult result;
};

}  // namespace pool_internal

using pool_internal::PoolTask;

// Per-worker state: what it runs (for Cancel, Shutdown and Stats) and the
// completions it delivered (written by that worker only, summed by Stats).
struct alignas(64) WorkerPool::WorkerSlot {
  std::atomic<PoolTask*> running{nullptr};
  std::atomic<uint64_t> running_seq{0};
  // Tasks this worker ran whose place it released: its share of the pool's
  // finished count (Finished() sums the shares).
  std::atomic<uint64_t> finished{0};
  std::array<std::atomic<uint64_t>, kNumTaskOutcomes> completed{};
  // Records this worker recycled, handed to the free stack kFreeBatch at a
  // time and whenever the worker runs out of work (this worker only).
  PoolTask* free_first = nullptr;
  PoolTask* free_last = nullptr;
  int free_count = 0;
};

namespace {

constexpr uint64_t kClosedBit = uint64_t{1} << 63;

// The pool whose worker or timer thread this is, if any.
thread_local const WorkerPool* current_pool = nullptr;

absl::Status StopStatus(TaskOutcome reason) {
  switch (reason) {
    case TaskOutcome::kCancelled:
      return absl::CancelledError("task cancelled");
    case TaskOutcome::kDeadlineExceeded:
      return absl::DeadlineExceededError("task deadline exceeded");
    case TaskOutcome::kShutDown:
      return absl::UnavailableError("worker pool shut down");
    default:
      return absl::InternalError("unexpected stop reason");
  }
}

// The pool's stop codes on a task's CancelSource: the reason it asked, kept
// apart from the generic CancelSource::kStoppedCode.
constexpr uint8_t kPoolStopCodeBase = 0x10;
uint8_t StopCode(TaskOutcome reason) {
  return static_cast<uint8_t>(kPoolStopCodeBase + static_cast<int>(reason));
}
// kOk when the pool did not ask this task to stop.
TaskOutcome StopReason(uint8_t code) {
  return code >= kPoolStopCodeBase
             ? static_cast<TaskOutcome>(code - kPoolStopCodeBase)
             : TaskOutcome::kOk;
}

void Increment(std::atomic<uint64_t>& counter) {  // single writer
  counter.store(counter.load(std::memory_order_relaxed) + 1,
                std::memory_order_relaxed);
}

}  // namespace

std::string_view TaskOutcomeName(TaskOutcome outcome) {
  switch (outcome) {
    case TaskOutcome::kOk:
      return "ok";
    case TaskOutcome::kCancelled:
      return "cancelled";
    case TaskOutcome::kDeadlineExceeded:
      return "deadline_exceeded";
    case TaskOutcome::kFailed:
      return "failed";
    case TaskOutcome::kShutDown:
      return "shut_down";
  }
  return "unknown";
}

uint64_t PoolStats::completed_total() const {
  uint64_t total = 0;
  for (uint64_t n : completed) total += n;
  return total;
}

absl::StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Create(
    PoolOptions options) {
  if (options.max_workers < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_workers must be >= 1 (got ", options.max_workers, ")"));
  }
  if (options.min_workers < 0 || options.min_workers > options.max_workers) {
    return absl::InvalidArgumentError(absl::StrCat(
        "min_workers must be between 0 and max_workers = ", options.max_workers,
        " (got ", options.min_workers, ")"));
  }
  if (options.idle_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("idle_timeout must be > 0 (got ",
                     absl::FormatDuration(options.idle_timeout), ")"));
  }
  return std::unique_ptr<WorkerPool>(new WorkerPool(std::move(options)));
}

WorkerPool::WorkerPool(PoolOptions options)
    : min_workers_(options.min_workers),
      max_workers_(options.max_workers),
      capacity_(options.queue_capacity),
      idle_timeout_(options.idle_timeout),
      clock_(options.clock != nullptr ? *options.clock : Clock::Real()),
      observer_(options.observer),
      thread_name_(std::move(options.thread_name)),
      slots_(new WorkerSlot[options.max_workers]),
      stub_(new PoolTask) {
  queue_back_.store(stub_.get(), std::memory_order_relaxed);
  queue_front_.store(stub_.get(), std::memory_order_relaxed);
  MutexLock lock(&mu_);
  reap_at_ = capacity_ + static_cast<size_t>(max_workers_) + 1;
  threads_.resize(max_workers_);
  for (int i = 0; i < std::max(min_workers_, 1); ++i) SpawnWorkerLocked();
  timer_thread_ = std::thread([this] { TimerLoop(); });
}

WorkerPool::~WorkerPool() { Shutdown(clock_.Now()); }

void WorkerPool::SpawnWorkerLocked() {
  int index = 0;
  while (threads_[index].joinable()) ++index;  // lowest free index
  workers_.store(workers_.load(std::memory_order_relaxed) + 1,
                 std::memory_order_relaxed);
  threads_[index] = std::thread([this, index] { WorkerLoop(index); });
}

// ---- Admission ---------------------------------------------------------

uint64_t WorkerPool::Finished() const {
  // Each share only grows, so the sum of loads made one after another lies
  // between the true totals at the first and the last load: never more
  // than has finished (admission stays within the bound).
  uint64_t finished = unrun_finished_.load(std::memory_order_acquire);
  for (int i = 0; i < max_workers_; ++i) {
    finished += slots_[i].finished.load(std::memory_order_acquire);
  }
  return finished;
}

uint64_t WorkerPool::InPool() const {
  // Finished first: a task finishes only after it was submitted, so the
  // difference is never negative although the loads are not one snapshot.
  uint64_t finished = Finished();
  uint64_t submitted = submitted_.load(std::memory_order_acquire) & ~kClosedBit;
  return submitted - finished;
}

absl::Status WorkerPool::Admit() {
  const uint64_t limit = capacity_ + static_cast<uint64_t>(max_workers_);
  uint64_t submitted = submitted_.load(std::memory_order_relaxed);
  for (;;) {
    if (submitted & kClosedBit) {
      return absl::UnavailableError("worker pool is shutting down");
    }
    // With a stale (smaller) finished count the estimate is too high, never
    // too low: far from the limit it is enough, near it read the real one.
    if (submitted + 1 - finished_hint_.load(std::memory_order_relaxed) >
        limit) {
      uint64_t finished = Finished();
      finished_hint_.store(finished, std::memory_order_relaxed);
      if (finished > submitted) {
        // Our `submitted` is older than tasks that have since finished
        // (this thread was preempted): the difference would wrap.
        submitted = submitted_.load(std::memory_order_relaxed);
        continue;
      }
      if (submitted + 1 - finished > limit) {
        rejected_.fetch_add(1, std::memory_order_relaxed);
        return absl::ResourceExhaustedError(absl::StrCat(
            "worker pool queue is full (capacity ", capacity_, ", ",
            workers_.load(std::memory_order_relaxed), " workers busy)"));
      }
    }
    if (submitted_.compare_exchange_weak(submitted, submitted + 1,
                                         std::memory_order_seq_cst,
                                         std::memory_order_relaxed)) {
      return absl::OkStatus();
    }
  }
}

// Shutdown waits, under mu_, for the pool to empty; it set closed_ before
// taking mu_. Every release is followed by this check under mu_ (the worker
// that released takes mu_ for its next task anyway), so either Shutdown's
// look under mu_ comes later and sees the release, or this check does and
// sees closed_. No barrier on the per-task path.
void WorkerPool::SignalIfDrainedLocked() {
  if (closed_.load(std::memory_order_relaxed) && InPool() == 0) {
    drained_cv_.SignalAll();
  }
}

void WorkerPool::ReleaseRunPlace(WorkerSlot& slot) {
  // Single writer: a plain increment. Release: whoever reads it (acquire)
  // also sees the submission it finishes (InPool never goes negative).
  slot.finished.store(slot.finished.load(std::memory_order_relaxed) + 1,
                      std::memory_order_release);
}

void WorkerPool::ReleasePlaceLocked() {
  unrun_finished_.fetch_add(1, std::memory_order_release);
  SignalIfDrainedLocked();
}

void WorkerPool::GrowIfNeeded() {
  if (min_workers_ == max_workers_) return;  // fixed size: never retires
  if (workers_.load(std::memory_order_relaxed) >= max_workers_) return;
  // The hint is a lower bound of the finished count: an upper bound of the
  // tasks in the pool, cheap to read.
  if ((submitted_.load(std::memory_order_relaxed) & ~kClosedBit) -
          finished_hint_.load(std::memory_order_relaxed) <=
      static_cast<uint64_t>(workers_.load())) {
    return;
  }
  if (InPool() <= static_cast<uint64_t>(workers_.load())) return;
  MutexLock lock(&mu_);
  // Each task in the pool needs a worker: grow by what is missing (a task
  // that waits for a busy worker while the pool may grow would be a queue
  // the operator did not ask for).
  while (!stopping_ &&
         workers_.load(std::memory_order_relaxed) < max_workers_ &&
         InPool() > static_cast<uint64_t>(workers_.load())) {
    SpawnWorkerLocked();
  }
}

// ---- Records, free stack, queue ----------------------------------------

PoolTask* WorkerPool::Allocate() {
  SpinLockHolder lock(&alloc_mu_);
  if (alloc_list_ == nullptr) {
    alloc_list_ = free_stack_.exchange(nullptr, std::memory_order_acquire);
  }
  if (alloc_list_ == nullptr) {
    constexpr size_t kChunk = 64;
    chunks_.push_back(std::make_unique<PoolTask[]>(kChunk));
    PoolTask* chunk = chunks_.back().get();
    for (size_t i = 0; i < kChunk; ++i) {
      chunk[i].next.store(alloc_list_, std::memory_order_relaxed);
      alloc_list_ = &chunk[i];
    }
  }
  PoolTask* task = alloc_list_;
  alloc_list_ = task->next.load(std::memory_order_relaxed);
  // The next Submit writes the first two lines of the next record, which a
  // worker last wrote: start fetching them now, while this Submit runs.
  if (alloc_list_ != nullptr) {
    __builtin_prefetch(alloc_list_, 1);
    __builtin_prefetch(reinterpret_cast<const char*>(alloc_list_) + 64, 1);
  }
  return task;
}

void WorkerPool::PushFreeChain(PoolTask* first, PoolTask* last) {
  PoolTask* head = free_stack_.load(std::memory_order_relaxed);
  do {
    last->next.store(head, std::memory_order_relaxed);
  } while (!free_stack_.compare_exchange_weak(
      head, first, std::memory_order_release, std::memory_order_relaxed));
}

void WorkerPool::Recycle(PoolTask* task, WorkerSlot* slot) {
  task->state.store(PoolTask::State::kFree, std::memory_order_relaxed);
  if (slot == nullptr) {
    PushFreeChain(task, task);
    return;
  }
  // Batched: one CAS on the shared free stack per kFreeBatch records
  // instead of one per task, which the workers would contend for.
  task->next.store(slot->free_first, std::memory_order_relaxed);
  slot->free_first = task;
  if (slot->free_last == nullptr) slot->free_last = task;
  if (++slot->free_count >= kFreeBatch) FlushFree(*slot);
}

void WorkerPool::FlushFree(WorkerSlot& slot) {
  if (slot.free_first == nullptr) return;
  PushFreeChain(slot.free_first, slot.free_last);
  slot.free_first = slot.free_last = nullptr;
  slot.free_count = 0;
}

void WorkerPool::Enqueue(PoolTask* task) {
  task->next.store(nullptr, std::memory_order_relaxed);
  // Sequentially consistent: pairs with QueueEmpty() in WaitForWork.
  PoolTask* prev = queue_back_.exchange(task, std::memory_order_seq_cst);
  // Until this store the queue is cut after `prev`: a consumer that gets
  // there sees `linking` and waits for these few instructions.
  prev->next.store(task, std::memory_order_release);
}

bool WorkerPool::QueueEmpty() const {
  // The front is the stub exactly when everything before it was dequeued,
  // and the back is the stub when nothing was enqueued after it.
  return queue_front_.load(std::memory_order_relaxed) == stub_.get() &&
         queue_back_.load(std::memory_order_seq_cst) == stub_.get();
}

PoolTask* WorkerPool::DequeueLocked(bool* linking) {
  PoolTask* const stub = stub_.get();
  PoolTask* front = queue_front_.load(std::memory_order_relaxed);
  PoolTask* next = front->next.load(std::memory_order_acquire);
  if (front == stub) {
    if (next == nullptr) {
      *linking = queue_back_.load(std::memory_order_seq_cst) != stub;
      return nullptr;
    }
    front = next;
    queue_front_.store(front, std::memory_order_relaxed);
    next = front->next.load(std::memory_order_acquire);
  }
  if (next == nullptr) {
    // A record leaves only once something is linked behind it (after that,
    // no submitter writes to it): behind the last one, put the stub.
    if (queue_back_.load(std::memory_order_seq_cst) != front) {
      *linking = true;
      return nullptr;
    }
    Enqueue(stub);
    next = front->next.load(std::memory_order_acquire);
    if (next == nullptr) {  // a submitter got in before the stub
      *linking = true;
      return nullptr;
    }
  }
  queue_front_.store(next, std::memory_order_relaxed);
  return front;
}

PoolTask* WorkerPool::PopRunnableLocked(WorkerSlot* slot, bool* linking) {
  for (;;) {
    PoolTask* task = DequeueLocked(linking);
    if (task == nullptr || task->state.load(std::memory_order_relaxed) ==
                               PoolTask::State::kQueued) {
      return task;
    }
    UnlinkedTombstoneLocked(task, slot);
  }
}

void WorkerPool::UnlinkedTombstoneLocked(PoolTask* task, WorkerSlot* slot) {
  --tombstones_;
  if (task->state.load(std::memory_order_relaxed) ==
      PoolTask::State::kUnrunDelivering) {
    // Its deliverer recycles it when done (DeliverUnrun).
    task->state.store(PoolTask::State::kUnrunUnlinked,
                      std::memory_order_relaxed);
  } else {  // kUnrunDelivered
    Recycle(task, slot);
  }
}

void WorkerPool::ReapTombstonesLocked() {
  PoolTask* const stub = stub_.get();
  PoolTask* prev = nullptr;
  PoolTask* node = queue_front_.load(std::memory_order_relaxed);
  for (;;) {
    PoolTask* next = node->next.load(std::memory_order_acquire);
    // The last linked record stays: a submitter may be linking behind it.
    // Any other has a successor, so no submitter writes to it any more.
    if (next == nullptr) return;
    PoolTask::State state = node->state.load(std::memory_order_relaxed);
    if (node != stub && (state == PoolTask::State::kUnrunDelivering ||
                         state == PoolTask::State::kUnrunDelivered)) {
      if (prev == nullptr) {
        queue_front_.store(next, std::memory_order_relaxed);
      } else {
        prev->next.store(next, std::memory_order_relaxed);
      }
      UnlinkedTombstoneLocked(node, nullptr);
    } else {
      prev = node;
    }
    node = next;
  }
}

void WorkerPool::TakeUnrunLocked(PoolTask* task, bool linked) {
  ++unrun_in_flight_;
  ReleasePlaceLocked();
  if (!linked) {
    task->state.store(PoolTask::State::kUnrunUnlinked,
                      std::memory_order_relaxed);
    return;
  }
  task->state.store(PoolTask::State::kUnrunDelivering,
                    std::memory_order_relaxed);
  // Tombstones hold records, not places: bound them by a sweep that costs
  // O(queue) once per capacity + max_workers new tombstones. (A sweep stops
  // where a submitter is still linking, so some may survive it.)
  if (++tombstones_ >= reap_at_) {
    ReapTombstonesLocked();
    reap_at_ = tombstones_ + capacity_ + static_cast<size_t>(max_workers_) + 1;
  }
}

// ---- Submit, Cancel ----------------------------------------------------

absl::StatusOr<TaskHandle> WorkerPool::Submit(TaskFn fn, DoneFn done,
                                              TaskOptions options) {
  const bool has_deadline = options.deadline != absl::InfiniteFuture();
  if (has_deadline && options.deadline <= clock_.Now()) {
    return absl::DeadlineExceededError(
        "task deadline passed before it was queued");
  }
  if (absl::Status admitted = Admit(); !admitted.ok()) return admitted;
  GrowIfNeeded();

  PoolTask* task = Allocate();
  const uint64_t seq = next_seq_.fetch_add(1, std::memory_order_relaxed);
  task->fn = std::move(fn);
  task->done = std::move(done);
  task->options = options;
  task->submitted_ticks = clock_.Ticks();
  task->cancel.Reset(seq);
  task->seq.store(seq, std::memory_order_relaxed);
  task->state.store(PoolTask::State::kQueued, std::memory_order_release);
  Enqueue(task);
  WakeWorkerIfAsleep();

  if (has_deadline) {
    // After the link: the timer finds the task queued or later. If it has
    // already finished, its entry is stale (seq no longer matches, or the
    // state is not queued or running) and expires harmlessly.
    MutexLock timer_lock(&timer_mu_);
    bool earliest =
        timers_.empty() || options.deadline < timers_.begin()->first.first;
    timers_.emplace(std::make_pair(options.deadline, seq), task);
    if (earliest) timer_cv_.Signal();
  }
  // Admitted just before Shutdown closed the pool, and pushed after it
  // stopped the workers: nobody else will see this task.
  if (closed_.load(std::memory_order_seq_cst)) CollectStragglers();
  if (has_retired_.load(std::memory_order_relaxed)) JoinRetired();
  return TaskHandle(task, seq);
}

void WorkerPool::WakeWorkerIfAsleep() {
  // Pairs with WaitForWork and SpinForWork; every access here and there is
  // sequentially consistent. A worker that starts waiting counts itself in
  // idle_waiters_, clears wake_pending_, then re-checks the queue; so a
  // submitter that linked either is seen by that re-check or sees the
  // waiter with no wake pending. A spinning worker will see the task too,
  // and it wakes the next sleeper itself if it finds more than one task
  // (WorkerLoop).
  if (spinning_.load(std::memory_order_seq_cst) > 0) return;
  if (idle_waiters_.load(std::memory_order_seq_cst) == 0) return;
  // Read before the exchange: while a wake is pending, submitters only
  // read the flag's line instead of taking it from each other.
  if (wake_pending_.load(std::memory_order_seq_cst)) return;
  if (wake_pending_.exchange(true, std::memory_order_seq_cst)) return;
  // Through mu_: a worker counted in idle_waiters_ holds mu_ until it waits.
  { MutexLock lock(&mu_); }
  work_cv_.Signal();
}

void WorkerPool::JoinRetired() {
  std::vector<std::thread> retired;
  {
    MutexLock lock(&mu_);
    retired.swap(retired_);
    has_retired_.store(false, std::memory_order_relaxed);
  }
  for (std::thread& t : retired) t.join();
}

WorkerPool::StopResult WorkerPool::StopLocked(PoolTask* task, uint64_t seq,
                                              TaskOutcome reason) {
  if (task->seq.load(std::memory_order_acquire) != seq) {
    return StopResult::kGone;
  }
  PoolTask::State state = task->state.load(std::memory_order_acquire);
  if (task->seq.load(std::memory_order_acquire) != seq) {
    return StopResult::kGone;  // reused between the two reads
  }
  switch (state) {
    case PoolTask::State::kQueued:
      TakeUnrunLocked(task, /*linked=*/true);
      return StopResult::kUnqueued;
    case PoolTask::State::kRunning:
      // Misses harmlessly if the task finished and the record moved on.
      return task->cancel.RequestStopFor(seq, StopCode(reason))
                 ? StopResult::kSignalled
                 : StopResult::kGone;
    default:
      return StopResult::kGone;
  }
}

bool WorkerPool::Cancel(const TaskHandle& handle) {
  PoolTask* task = handle.task_;
  if (task == nullptr) return false;
  StopResult result;
  {
    MutexLock lock(&mu_);
    result = StopLocked(task, handle.seq_, TaskOutcome::kCancelled);
  }
  if (result == StopResult::kUnqueued) {
    DeliverUnrun(task, TaskOutcome::kCancelled,
                 absl::CancelledError("task cancelled while queued"));
  }
  return result != StopResult::kGone;
}

// ---- Workers -----------------------------------------------------------

void WorkerPool::WorkerLoop(int index) {
  std::string name = absl::StrCat(thread_name_, index).substr(0, 15);
  pthread_setname_np(pthread_self(), name.c_str());
  current_pool = this;
  WorkerSlot& slot = slots_[index];

  // The task this worker finished: its completion is delivered outside the
  // lock, right after taking the next task.
  PoolTask* undelivered = nullptr;
  mu_.Lock();
  for (;;) {
    if (stopping_) break;  // Shutdown took what was queued
    bool linking = false;
    PoolTask* task = PopRunnableLocked(&slot, &linking);
    if (task == nullptr) {
      if (undelivered != nullptr) {
        mu_.Unlock();
        DeliverAndRecycle(std::exchange(undelivered, nullptr), &slot);
        FlushFree(slot);  // out of work: let submitters reuse them now
        SpinForWork();
        mu_.Lock();
        continue;
      }
      if (linking) {  // a submitter is a few instructions from linking
        mu_.Unlock();
        std::this_thread::yield();
        mu_.Lock();
        continue;
      }
      FlushFree(slot);  // tombstones it disposed of, before it sleeps
      if (!WaitForWork(index)) {
        mu_.Unlock();
        return;  // retired
      }
      continue;
    }
    // More work behind this task and a sleeping worker that nobody will
    // wake: a submitter that saw a spinner or a pending wake left it to
    // whoever takes work next, which is us. Wake one, so a burst runs on
    // every worker. (A submitter that skipped because a wake was pending
    // did so before the woken worker cleared the flag, so the woken
    // worker's check here sees its task.)
    if (!QueueEmpty() && spinning_.load(std::memory_order_seq_cst) == 0 &&
        idle_waiters_.load(std::memory_order_seq_cst) > 0 &&
        !wake_pending_.exchange(true, std::memory_order_seq_cst)) {
      work_cv_.Signal();
    }
    const uint64_t seq = task->seq.load(std::memory_order_relaxed);
    task->state.store(PoolTask::State::kRunning, std::memory_order_relaxed);
    slot.running_seq.store(seq, std::memory_order_relaxed);
    slot.running.store(task, std::memory_order_relaxed);
    mu_.Unlock();

    if (undelivered != nullptr) {
      DeliverAndRecycle(std::exchange(undelivered, nullptr), &slot);
    }
    Execute(task, index);
    undelivered = task;
    mu_.Lock();
    SignalIfDrainedLocked();  // Execute released the task's place
  }
  workers_.store(workers_.load(std::memory_order_relaxed) - 1,
                 std::memory_order_relaxed);
  mu_.Unlock();
  if (undelivered != nullptr) DeliverAndRecycle(undelivered, &slot);
  FlushFree(slot);
}

// A worker that just ran out of work spins briefly before it sleeps: under
// a steady stream of short tasks the next one usually arrives within
// microseconds, and catching it here saves the submitter a futex wake-up and
// this worker a sleep (each several microseconds). Bounded, and reads only
// two lock-free flags, so it never delays a submitter. While it spins it is
// counted in spinning_, and Submit wakes nobody: see WakeWorkerIfAsleep.
// At most one worker spins at a time.
void WorkerPool::SpinForWork() {
  // One spinner is enough to catch the next task; the others sleep rather
  // than take CPU from the submitters (on a small machine every worker
  // spinning would starve them).
  int none = 0;
  if (!spinning_.compare_exchange_strong(none, 1, std::memory_order_seq_cst)) {
    return;
  }
  for (int i = 0; i < kSpinIterations; ++i) {
    if (!QueueEmpty()) break;
    CpuRelax();
  }
  // Then WaitForWork re-checks the queue after counting itself a waiter,
  // both sequentially consistent: a task pushed by a submitter that saw
  // this worker spinning (and so woke nobody) is seen there.
  spinning_.store(0, std::memory_order_seq_cst);
}

bool WorkerPool::WaitForWork(int index) {
  const int workers = workers_.load(std::memory_order_relaxed);
  // A pool always keeps one worker, whatever min_workers says.
  bool may_retire = workers > std::max(min_workers_, 1) && !stopping_;
  absl::Time until =
      may_retire ? clock_.Now() + idle_timeout_ : absl::InfiniteFuture();
  idle_waiters_.fetch_add(1, std::memory_order_seq_cst);
  wake_pending_.store(false, std::memory_order_seq_cst);
  // Re-check after counting ourselves (see WakeWorkerIfAsleep).
  if (QueueEmpty() && !stopping_) {
    if (may_retire) {
      clock_.WaitWithDeadline(work_cv_, mu_, until);
    } else {
      work_cv_.Wait(&mu_);
    }
  }
  idle_waiters_.fetch_sub(1, std::memory_order_seq_cst);
  // Awake: the next submitter may wake another sleeper.
  wake_pending_.store(false, std::memory_order_seq_cst);
  if (may_retire && !stopping_ && QueueEmpty() &&
      workers_.load(std::memory_order_relaxed) > std::max(min_workers_, 1) &&
      clock_.Now() >= until &&
      // Every task in the pool keeps a worker after this one leaves.
      InPool() < static_cast<uint64_t>(workers_.load())) {
    workers_.store(workers_.load(std::memory_order_relaxed) - 1,
                   std::memory_order_relaxed);
    retired_.push_back(std::move(threads_[index]));
    has_retired_.store(true, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void WorkerPool::Execute(PoolTask* task, int index) {
  TaskResult& result = task->result;
  result.status = absl::OkStatus();  // the rest is assigned below
  int64_t start = clock_.Ticks();
  absl::Status status;
  try {
    status = task->fn(task->cancel.token());
  } catch (const std::exception& e) {
    status = absl::InternalError(absl::StrCat("task threw: ", e.what()));
  } catch (...) {
    status = absl::InternalError("task threw a non-standard exception");
  }
  int64_t end = clock_.Ticks();
  // Release what the task captured now, on the worker, not in a callback.
  task->fn = nullptr;

  // Clamped: TSCs of different cores may disagree by a few ticks.
  result.queue_wait =
      std::max(absl::ZeroDuration(),
               clock_.TicksToDuration(start - task->submitted_ticks));
  result.run_time =
      std::max(absl::ZeroDuration(), clock_.TicksToDuration(end - start));
  result.worker = index;
  if (status.ok()) {
    result.outcome = TaskOutcome::kOk;
  } else {
    // The code the pool stopped it with, if it did (acquire: set once).
    TaskOutcome reason = StopReason(task->cancel.stop_code());
    if (reason == TaskOutcome::kOk) {
      result.outcome = TaskOutcome::kFailed;
      result.status = std::move(status);
    } else {
      result.outcome = reason;
      result.status = StopStatus(reason);
    }
  }
  WorkerSlot& slot = slots_[index];
  slot.running.store(nullptr, std::memory_order_relaxed);
  task->state.store(PoolTask::State::kFinished, std::memory_order_relaxed);
  // Counted idle before its completion is delivered: a caller that saw the
  // reply may submit again at once.
  ReleaseRunPlace(slot);
}

// ---- Completion --------------------------------------------------------

void WorkerPool::DeliverUnrun(PoolTask* task, TaskOutcome outcome,
                              absl::Status status) {
  task->fn = nullptr;
  task->result = TaskResult();
  task->result.outcome = outcome;
  task->result.status = std::move(status);
  task->result.queue_wait =
      std::max(absl::ZeroDuration(),
               clock_.TicksToDuration(clock_.Ticks() - task->submitted_ticks));
  {
    // While its completion runs this thread counts as the pool's: a
    // Shutdown from it only stops admitting work (it cannot wait for
    // unrun_in_flight_, which counts this very delivery).
    const WorkerPool* caller_pool = std::exchange(current_pool, this);
    Deliver(task, nullptr);
    current_pool = caller_pool;
  }
  MutexLock lock(&mu_);
  if (task->state.load(std::memory_order_relaxed) ==
      PoolTask::State::kUnrunUnlinked) {
    Recycle(task, nullptr);
  } else {  // still linked: whoever unlinks it recycles it
    task->state.store(PoolTask::State::kUnrunDelivered,
                      std::memory_order_relaxed);
  }
  // Shutdown waits until every completion taken off the workers is done.
  if (--unrun_in_flight_ == 0) unrun_cv_.SignalAll();
}

void WorkerPool::DeliverAndRecycle(PoolTask* task, WorkerSlot* slot) {
  Deliver(task, slot);
  Recycle(task, slot);
}

void WorkerPool::Deliver(PoolTask* task, WorkerSlot* slot) {
  if (task->options.deadline != absl::InfiniteFuture()) {
    MutexLock lock(&timer_mu_);
    timers_.erase(std::make_pair(task->options.deadline,
                                 task->seq.load(std::memory_order_relaxed)));
  }
  task->result.tag = task->options.tag;
  const int outcome = static_cast<int>(task->result.outcome);
  if (slot != nullptr) {
    Increment(slot->completed[outcome]);
  } else {
    unrun_completed_[outcome].fetch_add(1, std::memory_order_relaxed);
  }
  if (observer_ != nullptr) observer_->OnTaskFinished(task->result);
  if (task->done) task->done(task->result);
  task->done = nullptr;
}

// ---- Deadlines ---------------------------------------------------------

void WorkerPool::TimerLoop() {
  pthread_setname_np(pthread_self(), "compute-timer");
  current_pool = this;
  for (;;) {
    std::vector<std::pair<PoolTask*, uint64_t>> expired;
    {
      MutexLock lock(&timer_mu_);
      for (;;) {
        if (timer_stop_) return;
        absl::Time now = clock_.Now();
        while (!timers_.empty() && timers_.begin()->first.first <= now) {
          expired.emplace_back(timers_.begin()->second,
                               timers_.begin()->first.second);
          timers_.erase(timers_.begin());
        }
        if (!expired.empty()) break;
        if (timers_.empty()) {
          timer_cv_.Wait(&timer_mu_);
        } else {
          clock_.WaitWithDeadline(timer_cv_, timer_mu_,
                                  timers_.begin()->first.first);
        }
      }
    }
    for (auto [task, seq] : expired) {
      StopResult result;
      {
        MutexLock lock(&mu_);
        result = StopLocked(task, seq, TaskOutcome::kDeadlineExceeded);
      }
      if (result == StopResult::kUnqueued) {
        DeliverUnrun(task, TaskOutcome::kDeadlineExceeded,
                     absl::DeadlineExceededError(
                         "task deadline passed while it was queued"));
      }
    }
  }
}

// ---- Shutdown ----------------------------------------------------------

void WorkerPool::CollectStragglers() {
  std::vector<PoolTask*> unrun;
  mu_.Lock();
  if (stopping_) {  // else the workers or Shutdown will see them
    for (;;) {
      bool linking = false;
      PoolTask* task = PopRunnableLocked(nullptr, &linking);
      if (task != nullptr) {
        TakeUnrunLocked(task, /*linked=*/false);
        unrun.push_back(task);
        continue;
      }
      if (!linking) break;
      // A submitter is a few instructions from linking its task.
      mu_.Unlock();
      std::this_thread::yield();
      mu_.Lock();
    }
  }
  mu_.Unlock();
  for (PoolTask* task : unrun) {
    DeliverUnrun(task, TaskOutcome::kShutDown,
                 absl::UnavailableError(
                     "worker pool shut down before the task could run"));
  }
}

void WorkerPool::Shutdown(absl::Time deadline) {
  // From here on Admit() refuses; a release signals the drain.
  submitted_.fetch_or(kClosedBit, std::memory_order_seq_cst);
  closed_.store(true, std::memory_order_seq_cst);
  {
    MutexLock lock(&mu_);
    if (current_pool == this) {
      // From a task, a completion or the observer: stop admitting, but do
      // not wait for (or join) the thread we are on. The owner's Shutdown
      // or destructor finishes the job.
      return;
    }
    if (shutdown_started_) {
      // Another caller owns the shutdown; wait for it to finish.
      while (!shutdown_done_) shutdown_cv_.Wait(&mu_);
      return;
    }
    shutdown_started_ = true;
    while (InPool() > 0 && clock_.Now() < deadline) {
      clock_.WaitWithDeadline(drained_cv_, mu_, deadline);
    }
    stopping_ = true;
    for (int i = 0; i < max_workers_; ++i) {
      PoolTask* task = slots_[i].running.load(std::memory_order_relaxed);
      if (task != nullptr) {
        task->cancel.RequestStopFor(
            slots_[i].running_seq.load(std::memory_order_relaxed),
            StopCode(TaskOutcome::kShutDown));
      }
    }
    work_cv_.SignalAll();
  }
  CollectStragglers();  // everything still queued, now that workers stop
  std::vector<std::thread> threads;
  {
    MutexLock lock(&mu_);
    for (std::thread& t : threads_) {
      if (t.joinable()) threads.push_back(std::move(t));
    }
    for (std::thread& t : retired_) threads.push_back(std::move(t));
    retired_.clear();
  }
  for (std::thread& t : threads) t.join();
  {
    MutexLock lock(&timer_mu_);
    timer_stop_ = true;
    timer_cv_.Signal();
  }
  timer_thread_.join();
  MutexLock lock(&mu_);
  // Completions that Cancel, the timer or a racing Submit took out of the
  // queue are being delivered on those threads; every completion is
  // delivered by return.
  while (unrun_in_flight_ > 0 || InPool() > 0) unrun_cv_.Wait(&mu_);
  shutdown_done_ = true;
  shutdown_cv_.SignalAll();
}

PoolStats WorkerPool::Stats() const {
  PoolStats stats;
  stats.queue_capacity = capacity_;
  stats.workers = workers_.load(std::memory_order_relaxed);
  for (int i = 0; i < max_workers_; ++i) {
    if (slots_[i].running.load(std::memory_order_relaxed) != nullptr) {
      ++stats.busy;
    }
    for (int o = 0; o < kNumTaskOutcomes; ++o) {
      stats.completed[o] +=
          slots_[i].completed[o].load(std::memory_order_relaxed);
    }
  }
  for (int o = 0; o < kNumTaskOutcomes; ++o) {
    stats.completed[o] += unrun_completed_[o].load(std::memory_order_relaxed);
  }
  // In the pool = queued + running (+ a task between admission and queue).
  const uint64_t in_pool = InPool();
  stats.queue_depth = in_pool > static_cast<uint64_t>(stats.busy)
                          ? in_pool - static_cast<uint64_t>(stats.busy)
                          : 0;
  // Separate loads: clamp the moment between a spawn and a pop.
  stats.idle = std::max(0, stats.workers - stats.busy);
  stats.min_workers = min_workers_;
  stats.max_workers = max_workers_;
  stats.accepted = submitted_.load(std::memory_order_relaxed) & ~kClosedBit;
  stats.rejected = rejected_.load(std::memory_order_relaxed);
  return stats;
}

}  // namespace compute
