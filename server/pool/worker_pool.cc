#include "server/pool/worker_pool.h"

#include <pthread.h>

#include <algorithm>
#include <exception>

#include "absl/strings/str_cat.h"

namespace compute {
namespace pool_internal {

// One task record, recycled. Fields other than the queue links and `state`
// are written by one thread at a time: the submitter before it is queued,
// then whoever takes it out of the queue under mu_ (a worker, Cancel, the
// timer, Shutdown), then that thread alone until it recycles the record
// under mu_. `seq` changes only under mu_, on reuse, which is what makes a
// stale TaskHandle or timer entry harmless.
struct PoolTask {
  enum class State { kFree, kQueued, kRunning, kFinished };

  TaskFn fn;
  DoneFn done;
  TaskOptions options;
  int64_t submitted_ticks = 0;  // Clock::Ticks()
  uint64_t seq = 0;             // unique per submission; timer key tie-break

  CancelSource cancel;
  // Why the pool asked the task to stop (kOk = it did not); written before
  // cancel.request_stop().
  std::atomic<TaskOutcome> stop_reason{TaskOutcome::kOk};

  State state = State::kFree;  // guarded by the pool's mu_
  PoolTask* prev = nullptr;    // queue links / free list, guarded by mu_
  PoolTask* next = nullptr;

  TaskResult result;  // filled by the completer
};

}  // namespace pool_internal

using pool_internal::PoolTask;

namespace {

// The pool whose worker or timer thread this is, if any.
thread_local const WorkerPool* current_pool = nullptr;

void RequestStop(PoolTask* task, TaskOutcome reason) {
  TaskOutcome expected = TaskOutcome::kOk;
  task->stop_reason.compare_exchange_strong(expected, reason,
                                            std::memory_order_relaxed);
  task->cancel.request_stop();
}

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
      thread_name_(std::move(options.thread_name)) {
  MutexLock lock(&mu_);
  threads_.resize(max_workers_);
  running_.assign(max_workers_, nullptr);
  for (int i = 0; i < min_workers_; ++i) SpawnWorkerLocked();
  timer_thread_ = std::thread([this] { TimerLoop(); });
}

WorkerPool::~WorkerPool() { Shutdown(clock_.Now()); }

void WorkerPool::SpawnWorkerLocked() {
  int index = 0;
  while (threads_[index].joinable()) ++index;  // lowest free index
  ++workers_;
  threads_[index] = std::thread([this, index] { WorkerLoop(index); });
  PublishGaugesLocked();
}

PoolTask* WorkerPool::AllocateLocked() {
  if (free_ == nullptr) {
    constexpr size_t kChunk = 64;
    chunks_.push_back(std::make_unique<PoolTask[]>(kChunk));
    PoolTask* chunk = chunks_.back().get();
    for (size_t i = 0; i < kChunk; ++i) {
      chunk[i].next = free_;
      free_ = &chunk[i];
    }
  }
  PoolTask* task = free_;
  free_ = task->next;
  task->next = nullptr;
  return task;
}

void WorkerPool::RecycleLocked(PoolTask* task) {
  task->state = PoolTask::State::kFree;
  task->seq = 0;  // no handle or timer entry matches a free record
  task->next = free_;
  free_ = task;
}

void WorkerPool::Recycle(PoolTask* task) {
  MutexLock lock(&mu_);
  RecycleLocked(task);
  // Only completions delivered off the workers (Cancel, timer, Shutdown)
  // come through here; Shutdown waits for them.
  if (--unrun_in_flight_ == 0) unrun_cv_.SignalAll();
}

void WorkerPool::SignalIfDrainedLocked() {
  if (shutting_down_ && busy_ == 0 && queue_size_ == 0) {
    drained_cv_.SignalAll();
  }
}

void WorkerPool::PublishGaugesLocked() {
  stat_queue_depth_.store(queue_size_, std::memory_order_relaxed);
  stat_workers_.store(workers_, std::memory_order_relaxed);
  stat_busy_.store(busy_, std::memory_order_relaxed);
}

void WorkerPool::PushBackLocked(PoolTask* task) {
  task->prev = tail_;
  task->next = nullptr;
  if (tail_ != nullptr) {
    tail_->next = task;
  } else {
    head_ = task;
  }
  tail_ = task;
  ++queue_size_;
}

void WorkerPool::UnlinkLocked(PoolTask* task) {
  (task->prev != nullptr ? task->prev->next : head_) = task->next;
  (task->next != nullptr ? task->next->prev : tail_) = task->prev;
  task->prev = task->next = nullptr;
  --queue_size_;
}

PoolTask* WorkerPool::PopFrontLocked() {
  PoolTask* task = head_;
  UnlinkLocked(task);
  return task;
}

absl::StatusOr<TaskHandle> WorkerPool::Submit(TaskFn fn, DoneFn done,
                                              TaskOptions options) {
  bool has_deadline = options.deadline != absl::InfiniteFuture();
  if (has_deadline && options.deadline <= clock_.Now()) {
    return absl::DeadlineExceededError(
        "task deadline passed before it was queued");
  }
  std::vector<std::thread> retired;
  bool wake;
  TaskHandle handle;
  {
    MutexLock lock(&mu_);
    if (shutting_down_) {
      return absl::UnavailableError("worker pool is shutting down");
    }
    int idle = workers_ - busy_;
    // Grow before refusing: a new worker is an idle slot.
    if (queue_size_ + 1 > static_cast<size_t>(idle) &&
        workers_ < max_workers_) {
      SpawnWorkerLocked();
      ++idle;
    }
    if (queue_size_ >= capacity_ + idle) {
      stat_rejected_.fetch_add(1, std::memory_order_relaxed);
      return absl::ResourceExhaustedError(
          absl::StrCat("worker pool queue is full (capacity ", capacity_, ", ",
                       workers_, " workers busy)"));
    }
    PoolTask* task = AllocateLocked();
    task->fn = std::move(fn);
    task->done = std::move(done);
    task->options = options;
    task->submitted_ticks = clock_.Ticks();
    task->seq = next_seq_++;
    task->cancel.Reset();
    task->stop_reason.store(TaskOutcome::kOk, std::memory_order_relaxed);
    task->result = TaskResult();
    task->state = PoolTask::State::kQueued;
    PushBackLocked(task);
    handle = TaskHandle(task, task->seq);
    if (has_deadline) {
      MutexLock timer_lock(&timer_mu_);
      bool earliest =
          timers_.empty() || options.deadline < timers_.begin()->first.first;
      timers_.emplace(std::make_pair(options.deadline, task->seq), task);
      if (earliest) timer_cv_.Signal();
    }
    wake = idle_waiters_ > 0;
    stat_accepted_.store(++accepted_, std::memory_order_relaxed);
    stat_queue_depth_.store(queue_size_, std::memory_order_relaxed);
    if (!retired_.empty()) retired.swap(retired_);
  }
  // Signalled after unlocking, so the woken worker does not block on mu_.
  if (wake) work_cv_.Signal();
  // Workers that retired on their idle timeout are joined here, off the lock.
  for (std::thread& t : retired) t.join();
  return handle;
}

bool WorkerPool::Cancel(const TaskHandle& handle) {
  PoolTask* task = handle.task_;
  if (task == nullptr) return false;
  {
    MutexLock lock(&mu_);
    if (task->seq != handle.seq_) return false;  // finished, record reused
    switch (task->state) {
      case PoolTask::State::kFree:
      case PoolTask::State::kFinished:
        return false;
      case PoolTask::State::kRunning:
        RequestStop(task, TaskOutcome::kCancelled);
        return true;
      case PoolTask::State::kQueued:
        UnlinkLocked(task);
        task->state = PoolTask::State::kFinished;
        ++unrun_in_flight_;
        PublishGaugesLocked();
        SignalIfDrainedLocked();
        break;
    }
  }
  DeliverUnrun(task, TaskOutcome::kCancelled,
               absl::CancelledError("task cancelled while queued"));
  return true;
}

void WorkerPool::WorkerLoop(int index) {
  std::string name = absl::StrCat(thread_name_, index).substr(0, 15);
  pthread_setname_np(pthread_self(), name.c_str());
  current_pool = this;

  // The task this worker finished: its completion is delivered outside the
  // lock right after taking the next task (`undelivered`), and its record is
  // recycled in the critical section after that (`delivered`).
  PoolTask* undelivered = nullptr;
  PoolTask* delivered = nullptr;
  mu_.Lock();
  for (;;) {
    if (delivered != nullptr) {
      RecycleLocked(delivered);
      delivered = nullptr;
    }
    if (head_ == nullptr) {
      if (undelivered != nullptr) {
        mu_.Unlock();
        Deliver(undelivered);
        delivered = std::exchange(undelivered, nullptr);
        SpinForWork();
        mu_.Lock();
        continue;
      }
      if (stopping_) {
        --workers_;
        PublishGaugesLocked();
        break;
      }
      if (!WaitForWork(index)) break;
      continue;
    }
    PoolTask* task = PopFrontLocked();
    task->state = PoolTask::State::kRunning;
    running_[index] = task;
    ++busy_;
    PublishGaugesLocked();
    mu_.Unlock();

    if (undelivered != nullptr) {
      Deliver(undelivered);
      delivered = std::exchange(undelivered, nullptr);
    }
    Execute(task, index);

    mu_.Lock();
    task->state = PoolTask::State::kFinished;
    undelivered = task;
    running_[index] = nullptr;
    --busy_;
    PublishGaugesLocked();
    SignalIfDrainedLocked();
  }
  mu_.Unlock();
}

// A worker that just ran out of work spins briefly before it sleeps: under
// a steady stream of short tasks the next one usually arrives within
// microseconds, and catching it here saves the submitter a futex wake-up and
// this worker a sleep (each several microseconds). Bounded, and reads only
// the lock-free depth mirror, so it never delays a submitter.
void WorkerPool::SpinForWork() const {
  for (int i = 0; i < kSpinIterations; ++i) {
    if (stat_queue_depth_.load(std::memory_order_relaxed) > 0) return;
#if defined(__x86_64__)
    __builtin_ia32_pause();
#endif
  }
}

bool WorkerPool::WaitForWork(int index) {
  bool may_retire = workers_ > min_workers_ && !stopping_;
  absl::Time until =
      may_retire ? clock_.Now() + idle_timeout_ : absl::InfiniteFuture();
  ++idle_waiters_;
  if (may_retire) {
    clock_.WaitWithDeadline(work_cv_, mu_, until);
  } else {
    work_cv_.Wait(&mu_);
  }
  --idle_waiters_;
  if (may_retire && head_ == nullptr && !stopping_ && workers_ > min_workers_ &&
      clock_.Now() >= until) {
    --workers_;
    retired_.push_back(std::move(threads_[index]));
    PublishGaugesLocked();
    return false;
  }
  return true;
}

void WorkerPool::Execute(PoolTask* task, int index) {
  TaskResult& result = task->result;
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
    // The reason is written before the stop flag (release); reading the flag
    // first (acquire) makes the reason visible.
    TaskOutcome reason = task->cancel.stop_requested()
                             ? task->stop_reason.load(std::memory_order_relaxed)
                             : TaskOutcome::kOk;
    if (reason == TaskOutcome::kOk) {
      result.outcome = TaskOutcome::kFailed;
      result.status = std::move(status);
    } else {
      result.outcome = reason;
      result.status = StopStatus(reason);
    }
  }
}

void WorkerPool::DeliverUnrun(PoolTask* task, TaskOutcome outcome,
                              absl::Status status) {
  task->fn = nullptr;
  task->result.outcome = outcome;
  task->result.status = std::move(status);
  task->result.queue_wait =
      std::max(absl::ZeroDuration(),
               clock_.TicksToDuration(clock_.Ticks() - task->submitted_ticks));
  Deliver(task);
  Recycle(task);
}

void WorkerPool::Deliver(PoolTask* task) {
  if (task->options.deadline != absl::InfiniteFuture()) {
    MutexLock lock(&timer_mu_);
    timers_.erase(std::make_pair(task->options.deadline, task->seq));
  }
  task->result.tag = task->options.tag;
  stat_completed_[static_cast<int>(task->result.outcome)].fetch_add(
      1, std::memory_order_relaxed);
  if (observer_ != nullptr) observer_->OnTaskFinished(task->result);
  if (task->done) task->done(task->result);
  task->done = nullptr;
}

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
      bool unqueued = false;
      {
        MutexLock lock(&mu_);
        if (task->seq != seq) continue;  // finished and reused since
        if (task->state == PoolTask::State::kRunning) {
          RequestStop(task, TaskOutcome::kDeadlineExceeded);
        } else if (task->state == PoolTask::State::kQueued) {
          UnlinkLocked(task);
          task->state = PoolTask::State::kFinished;
          ++unrun_in_flight_;
          unqueued = true;
          PublishGaugesLocked();
          SignalIfDrainedLocked();
        }
      }
      if (unqueued) {
        DeliverUnrun(task, TaskOutcome::kDeadlineExceeded,
                     absl::DeadlineExceededError(
                         "task deadline passed while it was queued"));
      }
    }
  }
}

void WorkerPool::Shutdown(absl::Time deadline) {
  std::vector<PoolTask*> unrun;
  {
    MutexLock lock(&mu_);
    if (current_pool == this) {
      // From a task, a completion or the observer: stop admitting, but do
      // not wait for (or join) the thread we are on. The owner's Shutdown
      // or destructor finishes the job.
      shutting_down_ = true;
      return;
    }
    if (shutdown_started_) {
      // Another caller owns the shutdown; wait for it to finish.
      while (!shutdown_done_) shutdown_cv_.Wait(&mu_);
      return;
    }
    shutdown_started_ = true;
    shutting_down_ = true;
    while ((queue_size_ > 0 || busy_ > 0) && clock_.Now() < deadline) {
      clock_.WaitWithDeadline(drained_cv_, mu_, deadline);
    }
    while (head_ != nullptr) {
      PoolTask* task = PopFrontLocked();
      task->state = PoolTask::State::kFinished;
      ++unrun_in_flight_;
      unrun.push_back(task);
    }
    for (PoolTask* task : running_) {
      if (task != nullptr) RequestStop(task, TaskOutcome::kShutDown);
    }
    stopping_ = true;
    PublishGaugesLocked();
    work_cv_.SignalAll();
  }
  for (PoolTask* task : unrun) {
    DeliverUnrun(task, TaskOutcome::kShutDown,
                 absl::UnavailableError(
                     "worker pool shut down before the task could run"));
  }
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
  // Completions that Cancel or the timer took out of the queue are being
  // delivered on those threads; every completion is delivered by return.
  while (unrun_in_flight_ > 0) unrun_cv_.Wait(&mu_);
  shutdown_done_ = true;
  shutdown_cv_.SignalAll();
}

PoolStats WorkerPool::Stats() const {
  PoolStats stats;
  stats.queue_depth = stat_queue_depth_.load(std::memory_order_relaxed);
  stats.queue_capacity = capacity_;
  stats.workers = stat_workers_.load(std::memory_order_relaxed);
  stats.busy = stat_busy_.load(std::memory_order_relaxed);
  // Two separate loads: clamp the moment between a spawn and a pop.
  stats.idle = std::max(0, stats.workers - stats.busy);
  stats.min_workers = min_workers_;
  stats.max_workers = max_workers_;
  stats.accepted = stat_accepted_.load(std::memory_order_relaxed);
  stats.rejected = stat_rejected_.load(std::memory_order_relaxed);
  for (int i = 0; i < kNumTaskOutcomes; ++i) {
    stats.completed[i] = stat_completed_[i].load(std::memory_order_relaxed);
  }
  return stats;
}

}  // namespace compute
