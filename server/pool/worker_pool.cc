// The scheduler behind WorkerPool: one mutex, the fair queue, the deadline
// heap, the admission policy, and a few sums; this file moves tasks between
// them, the workers and the timer. See worker_pool.h for the contract, the
// budgets and the invariants.
//
// Why one mutex: every decision here (admit, dequeue, expire, cancel) reads
// the same few numbers (queued count and cost, bytes, running tasks), and a
// decision taken on a stale copy of them is the bug class that made the
// previous lock-free core unreadable. A trivial call costs ~15 us in gRPC;
// the lock costs tens of nanoseconds. The pool's critical sections allocate
// nothing in the steady state (records and heap slots are reused), and
// completion callbacks always run off the lock.
#include "server/pool/worker_pool.h"

#include <pthread.h>

#include <algorithm>
#include <exception>
#include <new>
#include <numeric>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "server/pool/pool_check.h"
#include "server/pool/pool_task.h"

namespace compute {

using pool_internal::PoolTask;

namespace {

// Set while a thread runs pool code that delivers completions (a worker,
// the timer, a Cancel or Shutdown delivering off the lock): a Shutdown from
// there cannot wait for itself.
thread_local const WorkerPool* current_pool = nullptr;

class PoolThreadScope {
 public:
  explicit PoolThreadScope(const WorkerPool* pool)
      : previous_(std::exchange(current_pool, pool)) {}
  ~PoolThreadScope() { current_pool = previous_; }

 private:
  const WorkerPool* previous_;
};

// A running task is counted as having at least 1/kLeastLeftPart of its
// cost left, however long it has run (RunningLeftNsLocked). Never more
// than its cost, so that the full cost still bounds what is left (the
// deadline budget's quick check relies on it).
constexpr int64_t kLeastLeftPart = 5;

// Stop codes in the task's CancelSource, one per reason the pool asks.
constexpr uint8_t kStopCancel = 1;
constexpr uint8_t kStopDeadline = 2;
constexpr uint8_t kStopShutdown = 3;

uint8_t StopCodeFor(TaskOutcome reason) {
  switch (reason) {
    case TaskOutcome::kDeadlineExceeded:
      return kStopDeadline;
    case TaskOutcome::kShutDown:
      return kStopShutdown;
    default:
      return kStopCancel;
  }
}

void NameThread(const std::string& base, int index) {
  std::string name = absl::StrCat(base, index).substr(0, 15);
  pthread_setname_np(pthread_self(), name.c_str());
}

}  // namespace

uint64_t PoolStats::completed_total() const {
  uint64_t total = 0;
  for (uint64_t c : completed) total += c;
  return total;
}

// ---- Life cycle ----------------------------------------------------------

absl::StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Create(
    PoolOptions options) {
  if (absl::Status status = ValidatePoolOptions(options); !status.ok()) {
    return status;
  }
  std::unique_ptr<WorkerPool> pool(new WorkerPool(std::move(options)));
  // A thread the system refuses fails the pool. Returning drops `pool`:
  // its destructor (Shutdown) stops and joins the threads already started,
  // and skips the slots (and the timer) that have none.
  absl::Status started;
  {
    MutexLock lock(&pool->mu_);
    for (int i = 0; i < pool->min_workers_ && started.ok(); ++i) {
      if (absl::Status s = pool->SpawnWorkerLocked(); !s.ok()) {
        started = absl::ResourceExhaustedError(
            absl::StrCat("cannot start worker thread ", i + 1, " of ",
                         pool->min_workers_, ": ", s.message()));
      }
    }
  }
  if (!started.ok()) return started;
  absl::StatusOr<std::thread> timer =
      pool->StartThread([p = pool.get()] { p->TimerLoop(); });
  if (!timer.ok()) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot start the timer thread: ", timer.status().message()));
  }
  pool->timer_thread_ = std::move(*timer);
  return pool;
}

namespace {

// The budgets, with CoDel's interval in the clock's ticks (its own scale).
AdmissionBudgets BudgetsOf(const PoolOptions& options, const Clock& clock) {
  AdmissionBudgets budgets;
  budgets.queue_capacity = options.queue_capacity;
  budgets.max_inflight_bytes = options.max_inflight_bytes;
  budgets.target_queue_wait = options.target_queue_wait;
  const double ns_per_tick =
      absl::ToDoubleNanoseconds(clock.TicksToDuration(1'000'000'000)) / 1e9;
  // At most 2^62 ticks: an interval of centuries (or infinite) is never,
  // and the cast of a larger double is undefined.
  budgets.overload_interval_ticks = std::max<int64_t>(
      1, static_cast<int64_t>(
             std::min(absl::ToDoubleNanoseconds(options.overload_interval) /
                          std::max(ns_per_tick, 1e-6),
                      0x1p62)));
  return budgets;
}

}  // namespace

WorkerPool::WorkerPool(PoolOptions options)
    : min_workers_(options.min_workers),
      max_workers_(options.max_workers),
      capacity_(options.queue_capacity),
      max_inflight_bytes_(options.max_inflight_bytes),
      // Negative: no cost is at most it, so nothing runs inline.
      inline_max_cost_(options.inline_max_cost > absl::ZeroDuration()
                           ? options.inline_max_cost
                           : -absl::Nanoseconds(1)),
      spin_before_park_(options.spin_before_park),
      idle_timeout_(options.idle_timeout),
      clock_(options.clock != nullptr ? *options.clock : Clock::Real()),
      observer_(options.observer),
      thread_name_(std::move(options.thread_name)),
      start_thread_(std::move(options.start_thread)),
      admission_(BudgetsOf(options, clock_)) {
  MutexLock lock(&mu_);
  workers_.resize(static_cast<size_t>(max_workers_));
}

WorkerPool::~WorkerPool() {
  Shutdown(clock_.Now());
  // Whoever held bytes outside a task has given them back.
  POOL_CHECK(held_bytes() == 0);
}

void WorkerPool::HoldBytes(int64_t bytes) {
  POOL_CHECK(bytes >= 0);
  held_bytes_.fetch_add(bytes, std::memory_order_relaxed);
}

void WorkerPool::ReleaseBytes(int64_t bytes) {
  POOL_CHECK(bytes >= 0);
  // Sequentially consistent, against AwaitHeldBytesReleased's store and
  // load: either this sees it waiting, or it sees what this released.
  const int64_t before = held_bytes_.fetch_sub(bytes);
  POOL_CHECK(before >= bytes);
  if (before == bytes && awaiting_held_.load()) {
    MutexLock lock(&mu_);
    drained_cv_.SignalAll();
  }
}

bool WorkerPool::AwaitHeldBytesReleased() {
  MutexLock lock(&mu_);
  if (!shutdown_started_) return held_bytes_.load() == 0;  // no deadline
  awaiting_held_.store(true);
  while (held_bytes_.load() > 0 && clock_.Now() < shutdown_deadline_) {
    clock_.WaitWithDeadline(drained_cv_, mu_, shutdown_deadline_);
  }
  awaiting_held_.store(false);
  return held_bytes_.load() == 0;
}

absl::StatusOr<std::thread> WorkerPool::StartThread(
    std::function<void()> body) {
  try {
    if (start_thread_) return start_thread_(std::move(body));
    return std::thread(std::move(body));
  } catch (const std::system_error& e) {
    return absl::ResourceExhaustedError(e.code().message());
  } catch (const std::bad_alloc&) {  // the thread's state, under RLIMIT_AS
    return absl::ResourceExhaustedError("out of memory");
  }
}

absl::Status WorkerPool::SpawnWorkerLocked() {
  POOL_CHECK(alive_workers_ < max_workers_);
  for (size_t i = 0; i < workers_.size(); ++i) {
    Worker& w = workers_[i];
    if (w.alive) continue;
    // A worker that retired from this slot has left the loop (it marked
    // itself not alive, under mu_, as its last act, and needs nothing
    // more): joining it here is immediate.
    if (w.thread.joinable()) w.thread.join();
    // The thread before the counts, so a thread the system refuses leaves
    // the slot empty and the counts true. The new thread takes mu_ (held
    // here) before it reads its slot, so it sees itself alive.
    absl::StatusOr<std::thread> thread =
        StartThread([this, i] { WorkerLoop(static_cast<int>(i)); });
    if (!thread.ok()) return thread.status();
    w.thread = std::move(*thread);
    w.alive = true;
    ++alive_workers_;
    return absl::OkStatus();
  }
  return absl::InternalError("no empty worker slot");  // checked above
}

void WorkerPool::Shutdown(absl::Time deadline) {
  std::vector<PoolTask*> unrun;
  {
    MutexLock lock(&mu_);
    closed_ = true;
    if (current_pool == this) return;  // cannot wait for its own thread
    if (shutdown_started_) {
      if (deadline < shutdown_deadline_) {  // the first caller's wait ends
        shutdown_deadline_ = deadline;
        drained_cv_.SignalAll();
        // What cannot finish by the new deadline is answered now too.
        TakeWhatCannotFinishLocked(clock_.Now(), FirstPlaceFreesInLocked(),
                                   unrun);
      }
      DeliverUnrunUnlocked(unrun);
      while (!shutdown_done_) shutdown_cv_.Wait(&mu_);
      return;
    }
    shutdown_started_ = true;
    shutdown_deadline_ = deadline;
    // A queued task whose own cost is longer than the drain cannot finish
    // even if it started now: it is answered at once, so that its client
    // retries elsewhere now rather than when the drain ends (a 70 s drain
    // kept such calls waiting 70 s for nothing). With every place taken, none
    // starts before the first running task is expected to end. (Workers
    // apply the same rule as they free up: WorkerLoop.)
    TakeWhatCannotFinishLocked(clock_.Now(), FirstPlaceFreesInLocked(), unrun);
  }
  if (!unrun.empty()) {
    PoolThreadScope scope(this);
    for (PoolTask* task : unrun) DeliverUnrun(task);
    unrun.clear();
  }
  {
    MutexLock lock(&mu_);
    SignalIfDrainedLocked();
    // Queued and running work may finish until the deadline. Meanwhile this
    // thread wakes when the costliest queued task could no longer finish if
    // it started then (the first to), and answers what cannot: while every
    // worker runs past its estimate, none frees up to do it (WorkerLoop): a
    // 30 s task queued behind a 65 s run in a 70 s drain waited 65 s for its
    // answer. A task leaving the queue only makes that time later: the
    // wake then finds nothing, and waits again.
    while (in_pool_ > 0) {
      const absl::Time now = clock_.Now();
      if (now >= shutdown_deadline_) break;
      TakeWhatCannotFinishLocked(now, absl::ZeroDuration(), unrun);
      if (!unrun.empty()) {
        DeliverUnrunUnlocked(unrun);
        continue;
      }
      clock_.WaitWithDeadline(
          drained_cv_, mu_,
          std::min(shutdown_deadline_, FirstCannotFinishAtLocked()));
    }
    // Past it: what is queued never runs; what runs is asked to stop.
    queue_.ForEach([&](FairQueue::Node* node) {
      unrun.push_back(static_cast<PoolTask*>(node));
    });
    for (PoolTask* task : unrun) TakeUnrunLocked(task, TaskOutcome::kShutDown);
    for (Worker& w : workers_) {
      if (w.task != nullptr) SignalLocked(w.task, TaskOutcome::kShutDown);
    }
  }
  {
    PoolThreadScope scope(this);
    for (PoolTask* task : unrun) DeliverUnrun(task);
  }
  std::vector<std::thread> threads;
  {
    MutexLock lock(&mu_);
    while (in_pool_ > 0) drained_cv_.Wait(&mu_);
    stopping_ = true;
    work_cv_.SignalAll();
    timer_cv_.SignalAll();
    for (Worker& w : workers_) {
      if (w.thread.joinable()) threads.push_back(std::move(w.thread));
    }
  }
  for (std::thread& t : threads) t.join();
  if (timer_thread_.joinable()) timer_thread_.join();
  MutexLock lock(&mu_);
  shutdown_done_ = true;
  shutdown_cv_.SignalAll();
}

// ---- Admission -----------------------------------------------------------

absl::StatusOr<TaskHandle> WorkerPool::Submit(TaskFn fn, DoneFn done,
                                              TaskOptions options,
                                              SubmitRefusal* refusal) {
  SubmitRefusal local;
  SubmitRefusal* why = refusal != nullptr ? refusal : &local;
  bool wake_worker = false;
  bool wake_timer = false;
  TaskHandle handle;
  PoolTask* displaced = nullptr;  // made room for this one: deliver it
  options.cost = std::clamp(options.cost, absl::ZeroDuration(), kMaxTaskCost);
  options.bytes = std::clamp<int64_t>(options.bytes, 0, kMaxTaskBytes);
  // Not a number > 0: 1 (a NaN made its class's sum of weights NaN, and
  // every share with it).
  options.weight =
      options.weight > 0
          ? std::clamp(options.weight, kMinTaskWeight, kMaxTaskWeight)
          : 1;
  const Arrival arrival = ArrivalOf(options);
  const int64_t now_ticks = arrival.ticks;
  const int64_t cost_ns = absl::ToInt64Nanoseconds(options.cost);
  {
    MutexLock lock(&mu_);
    // Before the admission, so that it counts the worker a retry started.
    const bool retried_start =
        worker_start_refused_ && RetryWorkerStartLocked(now_ticks);
    absl::Status admit = AdmitLocked(options, arrival, why, &displaced);
    if (!admit.ok()) {
      ++rejected_by_[static_cast<int>(why->reason)];
      return admit;
    }
    PoolTask* task =
        NewTaskLocked(std::move(fn), std::move(done), options, now_ticks);
    queue_.Push(task, options.tenant, options.priority, options.weight, cost_ns,
                TicksToNs(now_ticks));
    queued_hint_.store(queue_.size(), std::memory_order_relaxed);
    inflight_bytes_ += options.bytes;
    ++in_pool_;
    ++accepted_;
    if (options.deadline != absl::InfiniteFuture()) {
      deadlines_.Add(task, options.deadline);
      // Only a deadline earlier than the one the timer sleeps until needs
      // it awake (with deadlines that grow, as calls' do, that is rare).
      wake_timer = options.deadline < timer_wakes_at_;
    }
    // Idle workers count those already woken but not yet running, so the
    // tasks no idle worker will take get a new worker, up to the maximum.
    if (queue_.size() > IdleTakersLocked() && alive_workers_ < max_workers_ &&
        !worker_start_refused_ && !retried_start) {
      // Not this task's error: it is queued, and the live workers will run
      // it. There is one at least: min_workers >= 1 started in Create, they
      // never retire below it, and they exit only once Submit refuses.
      if (!SpawnWorkerLocked().ok()) {
        POOL_CHECK(alive_workers_ >= min_workers_);
        ++worker_start_failures_;
        worker_start_refused_ = true;
        worker_start_refused_ticks_ = now_ticks;
      }
    }
    // A spinning worker will see the task without a wake-up.
    wake_worker = idle_workers_ > 0 && !spinning_;
    CheckInvariantsLocked();
    handle = TaskHandle(task, task->seq);
  }
  if (wake_worker) work_cv_.Signal();
  if (wake_timer) timer_cv_.Signal();
  if (displaced != nullptr) {
    PoolThreadScope scope(this);
    DeliverUnrun(displaced);
  }
  return handle;
}

bool WorkerPool::RunInlineIfFree(TaskFn& fn, DoneFn& done,
                                 const TaskOptions& options) {
  // Out of range: Submit counts it within the bounds (task_types.h).
  if (options.cost > inline_max_cost_ || options.cost < absl::ZeroDuration() ||
      options.bytes < 0 || options.bytes > kMaxTaskBytes ||
      !(options.weight >= kMinTaskWeight && options.weight <= kMaxTaskWeight)) {
    return false;
  }
  PoolTask* task;
  {
    MutexLock lock(&mu_);
    // A live worker's place: after idle workers retired (--min_workers
    // below --workers) the places beyond them have no thread, and busy
    // (running_) must not pass the workers there are.
    if (!queue_.empty() || running_ >= alive_workers_) return false;
    // Read here, not before the lock: a busy pool (the common refusal, after
    // which the caller Submits and reads the clock again) costs no read.
    const Arrival arrival = ArrivalOf(options);
    SubmitRefusal why;
    PoolTask* displaced = nullptr;  // none: nothing is queued
    if (!AdmitLocked(options, arrival, &why, &displaced).ok()) return false;
    // Queued only in name: nothing waits, so it is never linked.
    task =
        NewTaskLocked(std::move(fn), std::move(done), options, arrival.ticks);
    task->MoveTo(PoolTask::State::kRunning);
    ++running_;
    ++inline_running_;
    inline_bytes_ += options.bytes;
    inflight_bytes_ += options.bytes;
    ++in_pool_;
    ++accepted_;
    CheckInvariantsLocked();
  }
  PoolThreadScope scope(this);
  TaskResult result;
  Execute(task, max_workers_, task->submitted_ticks, absl::InfinitePast(),
          &result);
  bool wake_worker = false;
  {
    MutexLock lock(&mu_);
    --running_;
    --inline_running_;
    inline_bytes_ -= options.bytes;
    ReleaseLocked(task);
    task->MoveTo(PoolTask::State::kDelivering);
    ++completed_[static_cast<int>(result.outcome)];
    // A task queued while this one held the last free place waits for it.
    wake_worker = CanStartLocked() && idle_workers_ > 0 && !spinning_;
    CheckInvariantsLocked();
  }
  if (wake_worker) work_cv_.Signal();
  // As a worker's task: its place is free, but it counts as in the pool
  // until its completion has returned (Deliver before RecycleLocked), so
  // Shutdown returns only after that, and with it whatever bytes it held.
  Deliver(task, result);
  MutexLock lock(&mu_);
  RecycleLocked(task);
  return true;
}

WorkerPool::Arrival WorkerPool::ArrivalOf(const TaskOptions& options) const {
  Arrival arrival;
  arrival.ticks = clock_.Ticks();
  if (options.deadline != absl::InfiniteFuture()) arrival.now = clock_.Now();
  return arrival;
}

absl::Status WorkerPool::AdmitLocked(const TaskOptions& options,
                                     const Arrival& arrival, SubmitRefusal* why,
                                     PoolTask** displaced) {
  *displaced = nullptr;
  if (closed_) {
    *why = SubmitRefusal();
    why->reason = RefusalReason::kShutDown;
    return absl::UnavailableError("worker pool is shutting down");
  }
  auto running_left_ns = [&](PoolLoad::Left* left) {
    mu_.AssertHeld();
    RunningLeftNsLocked(arrival.ticks, left);
  };
  FairQueue::Node* victim = nullptr;
  absl::Status status = admission_.Check(
      options, arrival.now, LoadLocked(arrival.ticks, running_left_ns), why,
      &victim);
  if (status.ok() && victim != nullptr) {
    // Room made by displacing a queued task: it completes kPreempted.
    PoolTask* task = static_cast<PoolTask*>(victim);
    const bool preempt = task->priority > options.priority;
    TakeUnrunLocked(task, TaskOutcome::kPreempted);
    task->displaced_for =
        preempt ? RefusalReason::kPreempted : RefusalReason::kTenantShare;
    *displaced = task;
  }
  return status;
}

bool WorkerPool::RetryWorkerStartLocked(int64_t now_ticks) {
  POOL_CHECK(worker_start_refused_);
  if (closed_ || alive_workers_ >= max_workers_ ||
      clock_.TicksToDuration(now_ticks - worker_start_refused_ticks_) <
          kWorkerStartRetryInterval) {
    return false;
  }
  // Only for a task that would wait: with a worker free to take it, a new
  // thread would only idle, and the next Submit that needs one tries.
  if (queue_.size() < IdleTakersLocked()) return false;
  if (SpawnWorkerLocked().ok()) {
    worker_start_refused_ = false;
    return true;
  }
  ++worker_start_failures_;
  worker_start_refused_ticks_ = now_ticks;
  return false;
}

PoolLoad WorkerPool::LoadLocked(
    int64_t now_ticks,
    absl::FunctionRef<void(PoolLoad::Left*)> running_left_ns) const {
  // While the system refuses new threads, the places are the live workers:
  // a task admitted for a worker that cannot start would wait unseen by the
  // count bound and the expected wait. (At least 1: after shutdown the
  // workers are gone, and Stats still divides by it.)
  return PoolLoad{.queue = queue_,
                  .running = running_,
                  .max_workers = worker_start_refused_
                                     ? std::max(alive_workers_, 1)
                                     : max_workers_,
                  .task_bytes = inflight_bytes_,
                  .held_bytes = held_bytes(),
                  .running_full_cost_ns = running_full_cost_ns_,
                  .now_ns = TicksToNs(now_ticks),
                  .running_left_ns = running_left_ns};
}

void WorkerPool::RunningLeftNsLocked(int64_t now_ticks,
                                     PoolLoad::Left* left) const {
  for (const Worker& w : workers_) {
    if (w.task == nullptr) continue;
    // At least 0: a task may have started after the arrival read the clock
    // (before the lock), and its left must not pass its cost.
    int64_t elapsed = std::max<int64_t>(
        0, absl::ToInt64Nanoseconds(
               clock_.TicksToDuration(now_ticks - w.started_ticks)));
    left->push_back(
        std::max(w.task->cost_ns - elapsed, w.task->cost_ns / kLeastLeftPart));
  }
}

// ---- Records, the FIFO, the deadline heap --------------------------------

PoolTask* WorkerPool::NewTaskLocked(TaskFn fn, DoneFn done,
                                    const TaskOptions& options,
                                    int64_t now_ticks) {
  PoolTask* task = AllocateLocked();
  task->seq = next_seq_++;
  task->fn = std::move(fn);
  task->done = std::move(done);
  task->deadline = options.deadline;
  task->bytes = options.bytes;
  task->tag = options.tag;
  task->priority = options.priority;
  task->submitted_ticks = now_ticks;
  task->cancel.Reset(task->seq);
  task->MoveTo(PoolTask::State::kQueued);
  return task;
}

PoolTask* WorkerPool::AllocateLocked() {
  if (free_ == nullptr) {
    records_.push_back(std::make_unique<PoolTask>());
    return records_.back().get();
  }
  PoolTask* task = free_;
  free_ = task->next_free;
  task->next_free = nullptr;
  return task;
}

void WorkerPool::RecycleLocked(PoolTask* task) {
  task->MoveTo(PoolTask::State::kFree);
  task->seq = 0;
  task->fn = nullptr;
  task->done = nullptr;
  task->next_free = free_;
  free_ = task;
  POOL_CHECK(in_pool_ > 0);
  --in_pool_;
  SignalIfDrainedLocked();
}

// ---- Leaving the queue, stopping, releasing ------------------------------

void WorkerPool::ReleaseLocked(PoolTask* task) {
  deadlines_.Drop(task);
  inflight_bytes_ -= task->bytes;
  POOL_CHECK(inflight_bytes_ >= 0);
}

void WorkerPool::TakeUnrunLocked(PoolTask* task, TaskOutcome outcome) {
  POOL_CHECK(task->state == PoolTask::State::kQueued);
  queue_.Remove(task);
  queued_hint_.store(queue_.size(), std::memory_order_relaxed);
  ReleaseLocked(task);
  task->MoveTo(PoolTask::State::kDelivering);
  // Whatever takes it out (a cancel, a displacement, the shutdown), a task
  // past its deadline ends deadline_exceeded: the time decides, not who
  // got to it first (the timer may not have run yet).
  if (outcome != TaskOutcome::kDeadlineExceeded &&
      clock_.Now() >= task->deadline) {
    outcome = TaskOutcome::kDeadlineExceeded;
  }
  task->unrun_outcome = outcome;
  task->unrun_wait_ns = std::max<int64_t>(
      0, absl::ToInt64Nanoseconds(
             clock_.TicksToDuration(clock_.Ticks() - task->submitted_ticks)));
  ++completed_[static_cast<int>(outcome)];
}

absl::Duration WorkerPool::FirstPlaceFreesInLocked() const {
  if (running_ < alive_workers_) return absl::ZeroDuration();
  PoolLoad::Left left;
  RunningLeftNsLocked(clock_.Ticks(), &left);
  // Inline runs hold places too, and their ends are not estimated. (And
  // with no task running, e.g. no worker alive, nothing holds a place.)
  if (left.empty() || left.size() < static_cast<size_t>(running_)) {
    return absl::ZeroDuration();
  }
  for (const Worker& w : workers_) {
    // Asked to stop (a cancel, a deadline): it ends within milliseconds,
    // not at its estimate.
    if (w.task != nullptr && w.task->cancel.stop_requested()) {
      return absl::ZeroDuration();
    }
  }
  return absl::Nanoseconds(*std::min_element(left.begin(), left.end()));
}

void WorkerPool::TakeWhatCannotFinishLocked(absl::Time now,
                                            absl::Duration start_after,
                                            std::vector<PoolTask*>& out) {
  POOL_CHECK(shutdown_started_);
  const size_t before = out.size();
  const absl::Duration left = shutdown_deadline_ - now - start_after;
  queue_.ForEach([&](FairQueue::Node* node) {
    if (absl::Nanoseconds(node->cost_ns) > left) {
      out.push_back(static_cast<PoolTask*>(node));
    }
  });
  for (size_t i = before; i < out.size(); ++i) {
    TakeUnrunLocked(out[i], TaskOutcome::kShutDown);
  }
  if (out.size() > before) CheckInvariantsLocked();
}

absl::Time WorkerPool::FirstCannotFinishAtLocked() const {
  if (queue_.size() == 0) return absl::InfiniteFuture();
  int64_t costliest = 0;
  queue_.ForEach([&](const FairQueue::Node* node) {
    costliest = std::max(costliest, node->cost_ns);
  });
  // Past this, its cost is longer than the time left (strictly, as
  // TakeWhatCannotFinishLocked judges).
  return shutdown_deadline_ - absl::Nanoseconds(costliest) +
         absl::Nanoseconds(1);
}

void WorkerPool::DeliverUnrunUnlocked(std::vector<PoolTask*>& tasks) {
  if (tasks.empty()) return;
  mu_.Unlock();
  {
    PoolThreadScope scope(this);
    for (PoolTask* task : tasks) DeliverUnrun(task);
  }
  tasks.clear();
  mu_.Lock();
}

void WorkerPool::SignalLocked(PoolTask* task, TaskOutcome reason) {
  POOL_CHECK(task->state == PoolTask::State::kRunning);
  task->cancel.RequestStopFor(task->seq, StopCodeFor(reason));
  // Signalled once is enough: the timer need not fire for it again.
  deadlines_.Drop(task);
}

void WorkerPool::SignalIfDrainedLocked() {
  if (closed_ && in_pool_ == 0) drained_cv_.SignalAll();
}

bool WorkerPool::Cancel(const TaskHandle& handle, TaskOutcome why) {
  POOL_CHECK(why == TaskOutcome::kCancelled ||
             why == TaskOutcome::kDeadlineExceeded);
  PoolTask* task = handle.task_;
  if (task == nullptr) return false;
  {
    MutexLock lock(&mu_);
    if (task->seq != handle.seq_) return false;  // finished; record reused
    switch (task->state) {
      case PoolTask::State::kQueued:
        TakeUnrunLocked(task, why);
        CheckInvariantsLocked();
        break;  // delivered below, off the lock
      case PoolTask::State::kRunning:
        SignalLocked(task, why);
        return true;
      default:
        return false;  // its completion is already on its way
    }
  }
  PoolThreadScope scope(this);
  DeliverUnrun(task);
  return true;
}

// ---- Workers -------------------------------------------------------------

// One lock per task in the steady state: the critical section that finishes
// a task also starts the next, and the finished task's completion goes out
// (off the lock) before the next one runs; its record is recycled at the
// worker's next lock.
void WorkerPool::WorkerLoop(int index) {
  NameThread(thread_name_, index);
  PoolThreadScope scope(this);
  MutexLock lock(&mu_);
  Worker& me = workers_[static_cast<size_t>(index)];
  PoolTask* finished = nullptr;    // ran; its completion is not yet delivered
  TaskResult result;               // finished's, then the next task's
  std::vector<PoolTask*> expired;  // left the queue unrun, to deliver
  for (;;) {
    // Past their deadlines before it starts one: the timer may not have got
    // there yet (not scheduled on a busy CPU, or delivering earlier expiries
    // off the lock), and a task past its deadline must never start.
    absl::Time checked_at = absl::InfinitePast();
    int64_t checked_ticks = 0;
    if (CanStartLocked() && deadlines_.live() > 0) {
      checked_at = clock_.Now();
      checked_ticks = clock_.Ticks();
      ExpireLocked(checked_at, expired);
    }
    // While draining, what could not finish if it started now is answered
    // now (Shutdown), not when the drain ends.
    if (shutdown_started_ && CanStartLocked()) {
      if (checked_at == absl::InfinitePast()) {
        checked_at = clock_.Now();
        checked_ticks = clock_.Ticks();
      }
      TakeWhatCannotFinishLocked(checked_at, absl::ZeroDuration(), expired);
    }
    // Expired ones are delivered first, before a task starts: a start's
    // time would otherwise include their completions.
    // While draining, a task starts in the section that checked it could
    // finish: not after delivering the last one's completion, which may
    // take a while (a large answer, a slow callback).
    const bool deliver_first =
        !expired.empty() || (shutdown_started_ && finished != nullptr);
    PoolTask* next =
        !deliver_first && CanStartLocked() ? StartNextLocked(me) : nullptr;
    if (finished != nullptr || next != nullptr || !expired.empty()) {
      int64_t started = me.started_ticks;
      const bool delivers = finished != nullptr || !expired.empty();
      mu_.Unlock();
      if (finished != nullptr) Deliver(finished, result);
      for (PoolTask* task : expired) DeliverUnrun(task);
      expired.clear();
      if (next != nullptr) {
        // The completions took time (a large answer's, a slow callback's)
        // that is not next's: its run and wait are timed from now, and it
        // does not start if its deadline passed meanwhile (none starts past
        // its deadline). The time is the lock's clock reading plus the ticks
        // since it: tick reads (11 ns), not clock reads. Its running cost
        // (me.started_ticks) keeps the earlier start, so its remaining cost
        // looks that much smaller: the load is understated by at most one
        // completion's time per worker, divided by the workers.
        absl::Time now = absl::InfinitePast();  // nothing since the lock's
        if (delivers) {
          const int64_t ticks = clock_.Ticks();
          now = checked_at + clock_.TicksToDuration(ticks - checked_ticks);
          started = ticks;
        }
        Execute(next, index, started, now, &result);
      }
      mu_.Lock();
      if (finished != nullptr) RecycleLocked(finished);
      finished = nullptr;
      if (next != nullptr) {
        FinishLocked(me, next, result);
        finished = next;
      }
      continue;
    }
    // Nothing to deliver, nothing this worker may start: the queue is
    // empty, or every place is taken (by inline runs; see CanStartLocked).
    if (queue_.empty()) {
      admission_.ObserveQueueWait(absl::ZeroDuration(), clock_.Ticks());
    }
    if (stopping_) break;
    if (spin_before_park_ && SpinForWorkLocked()) continue;
    ++idle_workers_;
    bool may_retire = alive_workers_ > min_workers_;
    absl::Time give_up =
        may_retire ? clock_.Now() + idle_timeout_ : absl::InfiniteFuture();
    bool retire = false;
    while (!CanStartLocked() && !stopping_) {
      if (may_retire && clock_.Now() >= give_up) {
        if (running_ < alive_workers_) {
          retire = alive_workers_ > min_workers_;
          break;
        }
        // An inline run holds this worker's place: idle a while longer.
        give_up = clock_.Now() + idle_timeout_;
      }
      clock_.WaitWithDeadline(work_cv_, mu_, give_up);
    }
    --idle_workers_;
    if (retire) break;
  }
  me.alive = false;
  --alive_workers_;
}

PoolTask* WorkerPool::StartNextLocked(Worker& me) {
  PoolTask* task = static_cast<PoolTask*>(queue_.Pop());
  queued_hint_.store(queue_.size(), std::memory_order_relaxed);
  task->MoveTo(PoolTask::State::kRunning);
  me.task = task;
  me.started_ticks = clock_.Ticks();
  ++running_;
  running_full_cost_ns_ += task->cost_ns;
  // Sparse (admission.h): its flow held no other task (the flow stays
  // linked until Served), while another flow of its class holds a backlog
  // (more tasks queued than flows with any). Without a backlog elsewhere
  // every task is its flow's only one (many clients calling one at a time),
  // and each wait counts, as in CoDel. A lower class's backlog does not
  // count: this task went ahead of it, so its short wait is its own class's
  // (until 2026-12-06 it did, and two queued sheddable calls made every
  // default one-call tenant's wait sparse: a review's test). Or it is a
  // critical task while less critical ones
  // are queued: it went ahead of them, and critical calls are above the
  // overload rule (admission.h), so its short wait says nothing of theirs
  // (until 2026-12-06 two critical calls at once each interval kept a
  // standing default queue from ever being seen: a review's test).
  const bool sparse =
      (task->flow->size == 0 && queue_.HasBacklog(task->priority)) ||
      (task->priority == Priority::kCritical &&
       queue_.SizeBelow(Priority::kCritical) > 0);
  admission_.ObserveQueueWait(
      clock_.TicksToDuration(me.started_ticks - task->submitted_ticks),
      me.started_ticks, sparse);
  // More queued than this worker takes: wake one more (a submitter that saw
  // a spinning worker woke no one).
  if (CanStartLocked() && idle_workers_ > 0) work_cv_.Signal();
  CheckInvariantsLocked();
  return task;
}

void WorkerPool::FinishLocked(Worker& me, PoolTask* task,
                              const TaskResult& result) {
  const TaskOutcome outcome = result.outcome;
  me.task = nullptr;
  --running_;
  running_full_cost_ns_ -= task->cost_ns;
  // Its tenant is charged what it ran, not its estimate (fair_queue.h).
  queue_.Served(task, absl::ToInt64Nanoseconds(result.run_time));
  ReleaseLocked(task);
  task->MoveTo(PoolTask::State::kDelivering);
  ++completed_[static_cast<int>(outcome)];
  CheckInvariantsLocked();
}

bool WorkerPool::SpinForWorkLocked() {
  if (spinning_) return false;  // one spinner is enough to catch the next task
  spinning_ = true;
  mu_.Unlock();
  for (int i = 0;
       i < kSpinIterations && queued_hint_.load(std::memory_order_relaxed) == 0;
       ++i) {
    CpuRelax();
  }
  mu_.Lock();
  spinning_ = false;
  return CanStartLocked();
}

void WorkerPool::Execute(PoolTask* task, int index, int64_t start,
                         absl::Time now, TaskResult* out) {
  TaskResult& result = *out;
  result = TaskResult();
  result.tag = task->tag;
  result.priority = task->priority;
  // Clamped: TSCs of different cores may disagree by a few ticks.
  result.queue_wait =
      std::max(absl::ZeroDuration(),
               clock_.TicksToDuration(start - task->submitted_ticks));
  if (now >= task->deadline) {
    task->fn = nullptr;  // never runs; what it captured goes here
    result.outcome = TaskOutcome::kDeadlineExceeded;
    result.status = OutcomeStatus(result.outcome);
    return;
  }
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
  result.run_time =
      std::max(absl::ZeroDuration(), clock_.TicksToDuration(end - start));
  result.worker = index;
  if (status.ok()) {
    result.outcome = TaskOutcome::kOk;
    return;
  }
  switch (task->cancel.stop_code()) {
    case 0:
      result.outcome = TaskOutcome::kFailed;
      result.status = std::move(status);
      return;
    case kStopShutdown:
      result.outcome = TaskOutcome::kShutDown;
      break;
    case kStopDeadline:  // the timer's, or a caller's who knows (Cancel)
      result.outcome = TaskOutcome::kDeadlineExceeded;
      break;
    default:
      // A cancel: cancelled, unless the deadline has passed since.
      result.outcome = clock_.Now() >= task->deadline
                           ? TaskOutcome::kDeadlineExceeded
                           : TaskOutcome::kCancelled;
  }
  result.status = OutcomeStatus(result.outcome);
}

// ---- Completion ----------------------------------------------------------

void WorkerPool::DeliverUnrun(PoolTask* task) {
  // It never runs: what it captured is destroyed here, off the lock, as a
  // task that ran has its function destroyed (a destructor may call the
  // pool, or free much).
  task->fn = nullptr;
  TaskResult result;
  result.outcome = task->unrun_outcome;
  if (result.outcome == TaskOutcome::kPreempted) {
    result.displaced_for = task->displaced_for;
    result.status = absl::ResourceExhaustedError(
        task->displaced_for == RefusalReason::kPreempted
            ? "displaced from the queue by more critical work"
            : "displaced from the queue by a tenant under its fair share");
  } else {
    result.status = OutcomeStatus(result.outcome);
  }
  result.tag = task->tag;
  result.priority = task->priority;
  result.queue_wait = absl::Nanoseconds(task->unrun_wait_ns);
  Deliver(task, result);
  MutexLock lock(&mu_);
  RecycleLocked(task);
}

void WorkerPool::Deliver(PoolTask* task, const TaskResult& result) {
  if (observer_ != nullptr) observer_->OnTaskFinished(result);
  DoneFn done = std::move(task->done);
  if (done) done(result);
}

// ---- Deadlines -----------------------------------------------------------

void WorkerPool::TimerLoop() {
  NameThread(thread_name_ + "t", 0);
  PoolThreadScope scope(this);
  std::vector<PoolTask*> expired;
  MutexLock lock(&mu_);
  while (!stopping_) {
    ExpireLocked(clock_.Now(), expired);
    if (!expired.empty()) {
      mu_.Unlock();
      for (PoolTask* task : expired) DeliverUnrun(task);
      expired.clear();
      mu_.Lock();
      continue;
    }
    timer_wakes_at_ = deadlines_.Earliest();
    clock_.WaitWithDeadline(timer_cv_, mu_, timer_wakes_at_);
    // Until it looks again it will not sleep: every deadline is "earlier".
    timer_wakes_at_ = absl::InfinitePast();
  }
}

void WorkerPool::ExpireLocked(absl::Time now, std::vector<PoolTask*>& expired) {
  while (PoolTask* task = deadlines_.PopExpired(now)) {
    if (task->state == PoolTask::State::kQueued) {
      TakeUnrunLocked(task, TaskOutcome::kDeadlineExceeded);
      expired.push_back(task);
    } else {
      SignalLocked(task, TaskOutcome::kDeadlineExceeded);
    }
  }
  if (!expired.empty()) CheckInvariantsLocked();
}

// ---- Stats and invariants ------------------------------------------------

PoolStats WorkerPool::Stats() const {
  MutexLock lock(&mu_);
  PoolStats s;
  s.queue_depth = queue_.size();
  s.queue_capacity = capacity_;
  s.workers = alive_workers_;
  s.busy = running_;
  s.idle = alive_workers_ - running_;
  s.min_workers = min_workers_;
  s.max_workers = max_workers_;
  s.accepted = accepted_;
  s.rejected_by = rejected_by_;
  for (RefusalReason r : {RefusalReason::kQueueFull, RefusalReason::kMemory,
                          RefusalReason::kOverload, RefusalReason::kDeadline,
                          RefusalReason::kTenantShare, RefusalReason::kShed}) {
    s.rejected += rejected_by_[static_cast<int>(r)];
  }
  s.completed = completed_;
  s.queued_cost = absl::Nanoseconds(queue_.cost_ns());
  int64_t now_ticks = clock_.Ticks();
  PoolLoad::Left left;
  RunningLeftNsLocked(now_ticks, &left);
  s.running_cost =
      absl::Nanoseconds(std::accumulate(left.begin(), left.end(), int64_t{0}));
  auto running_left_ns = [&left](PoolLoad::Left* out) { *out = left; };
  s.expected_wait =
      Admission::ExpectedWait(LoadLocked(now_ticks, running_left_ns));
  s.held_bytes = held_bytes();
  s.inflight_bytes = inflight_bytes_ + s.held_bytes;
  s.max_inflight_bytes = max_inflight_bytes_;
  s.target_queue_wait = admission_.budgets().target_queue_wait;
  s.overloaded = admission_.overloaded();
  s.worker_start_failures = worker_start_failures_;
  return s;
}

void WorkerPool::CheckInvariantsLocked() const {
#if COMPUTE_POOL_CHECKS
  // O(queue) per call: cheap for tests' queues, and only in checked builds.
  // Past a few hundred queued tasks only the O(1) checks run.
  POOL_CHECK(inflight_bytes_ >= 0);
  POOL_CHECK(running_ >= 0 && running_ <= alive_workers_ + inline_running_);
  POOL_CHECK(running_ <= alive_workers_ && alive_workers_ <= max_workers_);
  POOL_CHECK(queue_.size() + static_cast<size_t>(running_) <=
             capacity_ + static_cast<size_t>(max_workers_));
  if (queue_.size() > 256) return;
  queue_.CheckInvariants();
  int64_t bytes = 0;
  queue_.ForEach([&](const FairQueue::Node* node) {
    const PoolTask* t = static_cast<const PoolTask*>(node);
    POOL_CHECK(t->state == PoolTask::State::kQueued);
    bytes += t->bytes;
    POOL_CHECK(t->timed == (t->deadline != absl::InfiniteFuture()));
  });
  int running = inline_running_;
  bytes += inline_bytes_;
  int64_t running_cost = 0;
  for (const Worker& w : workers_) {
    if (w.task == nullptr) continue;
    POOL_CHECK(w.task->state == PoolTask::State::kRunning);
    // In the deadline heap iff it has a deadline and was not signalled
    // (SignalLocked drops it; a task that starts past its deadline never
    // runs).
    POOL_CHECK(!w.task->timed || (w.task->deadline != absl::InfiniteFuture() &&
                                  !w.task->cancel.stop_requested()));
    ++running;
    bytes += w.task->bytes;
    running_cost += w.task->cost_ns;
  }
  POOL_CHECK(running_cost == running_full_cost_ns_);
  POOL_CHECK(running == running_ && bytes == inflight_bytes_);
  deadlines_.CheckInvariants([](const PoolTask* t, absl::Time deadline) {
    POOL_CHECK(t->state == PoolTask::State::kQueued ||
               t->state == PoolTask::State::kRunning);
    POOL_CHECK(deadline == t->deadline);
  });
#endif
}

}  // namespace compute
