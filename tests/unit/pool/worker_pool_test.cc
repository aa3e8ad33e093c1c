#include "server/pool/worker_pool.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <stdexcept>
#include <thread>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "tests/unit/pool/pool_test_util.h"

namespace compute {
namespace {

using ::testing::HasSubstr;
using namespace ::compute::pool_test;  // NOLINT: the shared test helpers

TEST(WorkerPoolTest, RunsTasksInFifoOrder) {
  auto pool = MakePool(1, 100);
  Gate gate;
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(-1)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  std::vector<int> ran;
  Mutex ran_mu;
  for (int i = 0; i < 50; ++i) {
    auto task = [&, i](const CancelToken&) {
      MutexLock lock(&ran_mu);
      ran.push_back(i);
      return absl::OkStatus();
    };
    ASSERT_TRUE(pool->Submit(task, done.For(i)).ok());
  }
  gate.Release();
  ASSERT_TRUE(done.WaitForCount(51));
  MutexLock lock(&ran_mu);
  std::vector<int> expected(50);
  for (int i = 0; i < 50; ++i) expected[i] = i;
  EXPECT_EQ(ran, expected);
}

TEST(WorkerPoolTest, RefusesPastWorkersPlusCapacityAndStatsShowIt) {
  constexpr int kWorkers = 2;
  constexpr size_t kCapacity = 3;
  auto pool = MakePool(kWorkers, kCapacity);
  Gate gate;
  Completions done;
  for (int i = 0; i < kWorkers; ++i) {
    ASSERT_TRUE(pool->Submit(gate.Task(), done.For(i)).ok());
  }
  ASSERT_TRUE(gate.WaitStarted(kWorkers));
  for (size_t i = 0; i < kCapacity; ++i) {
    ASSERT_TRUE(pool->Submit(Noop(), done.For(100 + i)).ok());
  }
  auto refused = pool->Submit(Noop(), done.For(999));
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("capacity 3"));

  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.queue_depth, kCapacity);
  EXPECT_EQ(stats.queue_capacity, kCapacity);
  EXPECT_EQ(stats.busy, kWorkers);
  EXPECT_EQ(stats.workers, kWorkers);
  EXPECT_EQ(stats.idle, 0);
  EXPECT_EQ(stats.rejected, 1u);
  EXPECT_EQ(stats.accepted, kWorkers + kCapacity);

  gate.Release();
  ASSERT_TRUE(done.WaitForCount(kWorkers + kCapacity));
  ASSERT_TRUE(WaitUntil([&] { return pool->Stats().busy == 0; }));
  stats = pool->Stats();
  EXPECT_EQ(stats.queue_depth, 0u);
  EXPECT_EQ(stats.completed[static_cast<int>(TaskOutcome::kOk)],
            kWorkers + kCapacity);
  EXPECT_EQ(done.CountOf(999), 0) << "a refused task must never complete";
}

TEST(WorkerPoolTest, CapacityZeroTakesTasksOnlyWhenAWorkerIsIdle) {
  auto pool = MakePool(1, 0);
  Gate gate;
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  EXPECT_EQ(pool->Submit(Noop(), done.For(1)).status().code(),
            absl::StatusCode::kResourceExhausted);
  gate.Release();
  ASSERT_TRUE(done.WaitForCount(1));
  // The worker is counted idle before its completion is delivered, so a
  // caller that saw its reply can submit again at once.
  Notification second_done;
  ASSERT_TRUE(pool->Submit(Noop(),
                           [&](const TaskResult& r) {
                             EXPECT_EQ(r.outcome, TaskOutcome::kOk);
                             second_done.Notify();
                           })
                  .ok());
  EXPECT_TRUE(second_done.WaitForNotificationWithTimeout(kWait));
}

TEST(WorkerPoolTest, CancelQueuedTaskFreesItsSlotAtOnce) {
  auto pool = MakePool(1, 1);
  Gate gate;
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  std::atomic<bool> ran{false};
  auto queued = pool->Submit(
      [&](const CancelToken&) {
        ran = true;
        return absl::OkStatus();
      },
      done.For(1));
  ASSERT_TRUE(queued.ok());
  ASSERT_EQ(pool->Submit(Noop(), done.For(2)).status().code(),
            absl::StatusCode::kResourceExhausted);

  EXPECT_TRUE(pool->Cancel(*queued));
  // Delivered on the cancelling thread, before Cancel returns.
  auto result = done.Get(1);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->outcome, TaskOutcome::kCancelled);
  EXPECT_EQ(result->worker, -1);
  EXPECT_EQ(pool->Stats().queue_depth, 0u);
  EXPECT_TRUE(pool->Submit(Noop(), done.For(3)).ok()) << "slot not reused";
  EXPECT_FALSE(pool->Cancel(*queued)) << "already finished";

  gate.Release();
  ASSERT_TRUE(done.WaitForCount(3));
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(done.CountOf(1), 1);
}

// A task that never runs has what it captured destroyed off the pool's
// lock, as one that ran does: a destructor may call the pool (here Stats,
// which takes the lock). Before, it was destroyed under the lock: the
// cancelling thread deadlocked on itself.
TEST(WorkerPoolTest, AnUnrunTasksCaptureIsDestroyedOffTheLock) {
  auto pool = MakePool(1, 1);
  Gate gate;
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  struct CallsThePoolWhenDestroyed {
    CallsThePoolWhenDestroyed(WorkerPool* pool, std::atomic<int>* calls)
        : pool(pool), calls(calls) {}
    ~CallsThePoolWhenDestroyed() {
      pool->Stats();
      ++*calls;
    }
    WorkerPool* const pool;
    std::atomic<int>* const calls;
  };
  std::atomic<int> calls{0};
  auto capture =
      std::make_shared<CallsThePoolWhenDestroyed>(pool.get(), &calls);
  auto queued = pool->Submit(
      [capture](const CancelToken&) { return absl::OkStatus(); }, done.For(1));
  ASSERT_TRUE(queued.ok());
  capture.reset();  // the task holds the only reference
  EXPECT_TRUE(pool->Cancel(*queued));
  EXPECT_EQ(calls.load(), 1);
  gate.Release();
  ASSERT_TRUE(done.WaitForCount(2));
}

// Cancelled queued tasks stay in the queue as tombstones until a worker
// dequeues them or a sweep cuts them out (every capacity + workers of them).
// Cancelling at the front, the middle and the back, far more often than the
// queue holds tasks, must never run a cancelled task, never lose or reorder
// a live one, and deliver everything once.
TEST(WorkerPoolTest, ManyCancelsOfQueuedTasksKeepTheRestInFifoOrder) {
  constexpr size_t kCapacity = 4;
  auto pool = MakePool(1, kCapacity);
  Gate gate;
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(-1)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));

  std::mt19937 rng(7);
  std::vector<std::pair<int, TaskHandle>> live;
  std::vector<int> ran, kept;
  Mutex ran_mu;
  int next_id = 0, cancelled = 0;
  for (int op = 0; op < 2000; ++op) {
    if (live.size() < kCapacity) {
      const int id = next_id++;
      auto task = [&, id](const CancelToken&) {
        MutexLock lock(&ran_mu);
        ran.push_back(id);
        return absl::OkStatus();
      };
      auto handle = pool->Submit(task, done.For(id));
      ASSERT_TRUE(handle.ok()) << "op " << op << ": " << handle.status();
      live.emplace_back(id, *handle);
    } else {
      size_t victim = rng() % live.size();
      ASSERT_TRUE(pool->Cancel(live[victim].second));
      ASSERT_EQ(done.Get(live[victim].first)->outcome, TaskOutcome::kCancelled);
      live.erase(live.begin() + static_cast<long>(victim));
      ++cancelled;
    }
  }
  for (auto& [id, handle] : live) kept.push_back(id);
  EXPECT_EQ(pool->Stats().queue_depth, kept.size());

  gate.Release();
  ASSERT_TRUE(done.WaitForCount(static_cast<size_t>(next_id) + 1));
  {
    MutexLock lock(&ran_mu);
    EXPECT_EQ(ran, kept);
  }
  for (int id = 0; id < next_id; ++id) ASSERT_EQ(done.CountOf(id), 1) << id;
  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.completed[static_cast<int>(TaskOutcome::kCancelled)],
            static_cast<uint64_t>(cancelled));
  EXPECT_EQ(stats.completed[static_cast<int>(TaskOutcome::kOk)],
            kept.size() + 1);
  // The pool still works: the next tasks run.
  ASSERT_TRUE(pool->Submit(Noop(), done.For(next_id)).ok());
  ASSERT_TRUE(done.WaitForCount(static_cast<size_t>(next_id) + 2));
}

TEST(WorkerPoolTest, CancelRunningTaskSignalsItsToken) {
  auto pool = MakePool(1, 1);
  Gate gate;
  Completions done;
  auto handle = pool->Submit(gate.Task(), done.For(0));
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  EXPECT_TRUE(pool->Cancel(*handle));
  ASSERT_TRUE(done.WaitForCount(1));
  EXPECT_EQ(gate.saw_stop(), 1);
  auto result = done.Get(0);
  EXPECT_EQ(result->outcome, TaskOutcome::kCancelled);
  EXPECT_EQ(result->status.code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(result->worker, 0);
}

// A caller that knows the deadline has passed by its own copy (a gRPC
// client's cancel at its deadline) says so: the task ends
// kDeadlineExceeded, queued or running, though the pool's copy is still
// ahead; a plain cancel stays kCancelled.
TEST(WorkerPoolTest, ACancelForTheDeadlineEndsTheTaskDeadlineExceeded) {
  auto pool = MakePool(1, 4);
  Gate gate;
  Completions done;
  TaskOptions options;
  options.deadline = pool->clock().Now() + absl::Hours(1);
  auto running = pool->Submit(gate.Task(), done.For(0), options);
  ASSERT_TRUE(running.ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  auto queued = pool->Submit(Noop(), done.For(1), options);
  auto plain = pool->Submit(Noop(), done.For(2), options);
  ASSERT_TRUE(queued.ok());
  ASSERT_TRUE(plain.ok());

  EXPECT_TRUE(pool->Cancel(*queued, TaskOutcome::kDeadlineExceeded));
  EXPECT_TRUE(pool->Cancel(*plain));
  EXPECT_TRUE(pool->Cancel(*running, TaskOutcome::kDeadlineExceeded));
  ASSERT_TRUE(done.WaitForCount(3));
  EXPECT_EQ(gate.saw_stop(), 1);
  EXPECT_EQ(done.Get(0)->outcome, TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(done.Get(0)->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(done.Get(1)->outcome, TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(done.Get(1)->worker, -1) << "it never ran";
  EXPECT_EQ(done.Get(2)->outcome, TaskOutcome::kCancelled);
  const PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.completed[static_cast<int>(TaskOutcome::kDeadlineExceeded)],
            2u);
  EXPECT_EQ(stats.completed[static_cast<int>(TaskOutcome::kCancelled)], 1u);
  EXPECT_EQ(stats.queue_depth, 0u);
}

TEST(WorkerPoolTest, QueuedTaskWhoseDeadlinePassesNeverRuns) {
  SimulatedClock clock;
  auto pool = MakePool(1, 4, &clock);
  Gate gate;
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  std::atomic<bool> ran{false};
  TaskOptions options;
  options.deadline = clock.Now() + absl::Seconds(1);
  ASSERT_TRUE(pool->Submit(
                      [&](const CancelToken&) {
                        ran = true;
                        return absl::OkStatus();
                      },
                      done.For(1), options)
                  .ok());
  EXPECT_EQ(pool->Stats().queue_depth, 1u);
  clock.Advance(absl::Seconds(2));
  // Completes while the only worker is still busy: it did not wait for one.
  ASSERT_TRUE(done.WaitForCount(1));
  auto result = done.Get(1);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->outcome, TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(result->queue_wait, absl::Seconds(2));
  EXPECT_EQ(pool->Stats().queue_depth, 0u);
  EXPECT_EQ(gate.started(), 1);
  gate.Release();
  ASSERT_TRUE(done.WaitForCount(2));
  EXPECT_FALSE(ran.load());
}

// A one-worker pool on a simulated clock whose timer is held: the worker
// runs gate_'s task (completion 0), and a task due 5 ms after Hold() holds
// the timer thread in its completion until the test ends, so that only a
// worker or a caller sees a later deadline pass. A task with Due()'s
// deadline is past it after PassTheDeadlines().
class HeldTimerTest : public ::testing::Test {
 protected:
  void Hold(size_t capacity = 4) {
    pool_ = MakePool(1, capacity, &clock_);
    ASSERT_TRUE(pool_->Submit(gate_.Task(), done_.For(0)).ok());
    ASSERT_TRUE(gate_.WaitStarted(1));
    TaskOptions first;
    first.deadline = clock_.Now() + absl::Milliseconds(5);
    ASSERT_TRUE(pool_
                    ->Submit(
                        Noop(),
                        [this](const TaskResult&) {
                          timer_held_.Notify();
                          release_timer_.WaitForNotification();
                        },
                        first)
                    .ok());
  }
  // Due 10 ms after Hold().
  TaskOptions Due() const {
    TaskOptions options;
    options.deadline = clock_.Now() + absl::Milliseconds(10);
    return options;
  }
  // The timer takes the first task (at 5 ms) and is held; then the clock
  // passes Due()'s deadline, 16 ms after Hold().
  void PassTheDeadlines() {
    clock_.Advance(absl::Milliseconds(6));
    ASSERT_TRUE(timer_held_.WaitForNotificationWithTimeout(kWait));
    clock_.Advance(absl::Milliseconds(10));
  }
  void TearDown() override {  // before the pool's destructor
    if (!release_timer_.HasBeenNotified()) release_timer_.Notify();
  }

  SimulatedClock clock_;
  Notification timer_held_, release_timer_;
  Gate gate_;
  Completions done_;
  std::unique_ptr<WorkerPool> pool_;  // destroyed first
};

// The timer is not the only one that looks at deadlines: a worker that gets
// to the queue first (the timer not yet scheduled on a busy CPU, or busy
// delivering earlier expiries off the lock) expires what is past its
// deadline instead of starting it. Before, it started it, and a task that
// finished ran after its deadline and completed ok.
TEST_F(HeldTimerTest, AWorkerNeverStartsATaskPastItsDeadline) {
  ASSERT_NO_FATAL_FAILURE(Hold());
  std::atomic<bool> ran{false};
  ASSERT_TRUE(pool_
                  ->Submit(
                      [&](const CancelToken&) {
                        ran = true;
                        return absl::OkStatus();
                      },
                      done_.For(2), Due())
                  .ok());
  ASSERT_NO_FATAL_FAILURE(PassTheDeadlines());
  gate_.Release();  // the worker is free
  ASSERT_TRUE(done_.WaitForCount(2));
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(done_.Get(2)->outcome, TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(done_.Get(2)->queue_wait, absl::Milliseconds(16));
  EXPECT_EQ(pool_->Stats().queue_depth, 0u);
}

TEST(WorkerPoolTest, RunningTaskWhoseDeadlinePassesIsStopped) {
  SimulatedClock clock;
  auto pool = MakePool(1, 4, &clock);
  Gate gate;
  Completions done;
  TaskOptions options;
  options.deadline = clock.Now() + absl::Seconds(1);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0), options).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  clock.Advance(absl::Milliseconds(999));
  clock.Advance(absl::Milliseconds(1));
  ASSERT_TRUE(done.WaitForCount(1));
  EXPECT_EQ(gate.saw_stop(), 1);
  EXPECT_EQ(done.Get(0)->outcome, TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(done.Get(0)->status.code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(WorkerPoolTest, DeadlineAlreadyPassedIsRefusedAtSubmit) {
  SimulatedClock clock;
  auto pool = MakePool(1, 4, &clock);
  TaskOptions options;
  options.deadline = clock.Now();
  auto r = pool->Submit(
      Noop(), [](const TaskResult&) { FAIL(); }, options);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDeadlineExceeded);
}

TEST(WorkerPoolTest, ThrowingTaskFailsAndTheWorkerServesTheNextTask) {
  auto pool = MakePool(1, 4);
  Completions done;
  // The thread itself, not its slot: a replacement would be worker 0 too.
  std::thread::id threw, served_next;
  ASSERT_TRUE(pool->Submit(
                      [&](const CancelToken&) -> absl::Status {
                        threw = std::this_thread::get_id();
                        throw std::runtime_error("boom");
                      },
                      done.For(0))
                  .ok());
  ASSERT_TRUE(pool->Submit(
                      [](const CancelToken&) {
                        return absl::DataLossError("bad bytes");
                      },
                      done.For(1))
                  .ok());
  ASSERT_TRUE(pool->Submit(
                      [&](const CancelToken&) {
                        served_next = std::this_thread::get_id();
                        return absl::OkStatus();
                      },
                      done.For(2))
                  .ok());
  ASSERT_TRUE(done.WaitForCount(3));
  EXPECT_EQ(threw, served_next) << "the same thread serves the next task";
  EXPECT_EQ(done.Get(0)->outcome, TaskOutcome::kFailed);
  EXPECT_THAT(done.Get(0)->status.message(), HasSubstr("boom"));
  EXPECT_EQ(done.Get(1)->outcome, TaskOutcome::kFailed);
  EXPECT_EQ(done.Get(1)->status.code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(done.Get(2)->outcome, TaskOutcome::kOk);
  EXPECT_EQ(done.Get(2)->worker, 0);
  EXPECT_EQ(pool->Stats().workers, 1);
}

TEST(WorkerPoolTest, ObserverSeesEveryTaskWithItsTag) {
  struct Recorder : PoolObserver {
    void OnTaskFinished(const TaskResult& r) override {
      MutexLock lock(&mu);
      tags.push_back(r.tag);
      outcomes.push_back(r.outcome);
    }
    Mutex mu;
    std::vector<uint32_t> tags;
    std::vector<TaskOutcome> outcomes;
  } recorder;
  {
    auto pool = MakePool(1, 4, nullptr, &recorder);
    Completions done;
    TaskOptions options;
    options.tag = 7;
    ASSERT_TRUE(pool->Submit(Noop(), done.For(0), options).ok());
    ASSERT_TRUE(done.WaitForCount(1));
  }
  MutexLock lock(&recorder.mu);
  EXPECT_THAT(recorder.tags, ::testing::ElementsAre(7u));
  EXPECT_THAT(recorder.outcomes, ::testing::ElementsAre(TaskOutcome::kOk));
}

TEST(WorkerPoolTest, ShutdownFinishesQueuedWorkAndRefusesNewWork) {
  auto pool = MakePool(1, 8);
  Gate gate;
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(pool->Submit(Noop(), done.For(i)).ok());
  }
  std::thread shutdown(
      [&] { pool->Shutdown(absl::Now() + absl::Seconds(60)); });
  // Probes accepted before the shutdown began must still run; the first
  // refusal must say the pool is shutting down.
  Completions probes;
  int accepted_probes = 0;
  ASSERT_TRUE(WaitUntil([&] {
    auto r = pool->Submit(Noop(), probes.For(accepted_probes));
    if (r.ok()) ++accepted_probes;
    return r.status().code() == absl::StatusCode::kUnavailable;
  }));
  gate.Release();
  shutdown.join();
  EXPECT_EQ(done.size(), 4u);
  for (int i = 0; i <= 3; ++i) {
    EXPECT_EQ(done.Get(i)->outcome, TaskOutcome::kOk) << i;
  }
  EXPECT_EQ(probes.size(), static_cast<size_t>(accepted_probes));
  for (int i = 0; i < accepted_probes; ++i) {
    EXPECT_EQ(probes.Get(i)->outcome, TaskOutcome::kOk);
  }
  EXPECT_EQ(pool->Stats().workers, 0);
}

TEST(WorkerPoolTest, ShutdownPastItsDeadlineStopsRunningAndDropsQueued) {
  auto pool = MakePool(1, 8);
  Gate gate;  // never released: only the shutdown can stop it
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  std::atomic<int> ran{0};
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(pool->Submit(
                        [&](const CancelToken&) {
                          ++ran;
                          return absl::OkStatus();
                        },
                        done.For(i))
                    .ok());
  }
  pool->Shutdown(absl::Now() + absl::Milliseconds(20));
  EXPECT_EQ(done.size(), 4u) << "every completion delivered by Shutdown";
  EXPECT_EQ(done.Get(0)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(gate.saw_stop(), 1);
  for (int i = 1; i <= 3; ++i) {
    EXPECT_EQ(done.Get(i)->outcome, TaskOutcome::kShutDown) << i;
    EXPECT_EQ(done.CountOf(i), 1);
  }
  EXPECT_EQ(ran.load(), 0) << "nothing starts after the shutdown deadline";
  pool->Shutdown(absl::Now());  // idempotent
}

// The drain tests' set-up: one worker on a simulated clock, held by a gated
// task until the test releases it, tasks queued behind it that count their
// runs, and each Shutdown on a thread of its own, joined at the end (after
// the gate is released, so that a failed assertion cannot hang the test).
class WorkerPoolDrainTest : public ::testing::Test {
 protected:
  ~WorkerPoolDrainTest() override {
    gate_.Release();
    held_may_return_.Notify();
    JoinDrains();
  }

  // Starts the gated task, estimated at `cost`, and waits until it runs;
  // its completion goes to `done` (by default done_.For(0)).
  void StartGated(absl::Duration cost, DoneFn done = nullptr) {
    TaskOptions options;
    options.cost = cost;
    if (done == nullptr) done = done_.For(0);
    ASSERT_TRUE(pool_->Submit(gate_.Task(), std::move(done), options).ok());
    ASSERT_TRUE(gate_.WaitStarted(1));
  }

  // Queues a task estimated at `cost` that counts its runs in ran_; its
  // completion is done_.Get(index).
  void Queue(int index, absl::Duration cost) {
    TaskOptions options;
    options.cost = cost;
    auto count_run = [this](const CancelToken&) {
      ++ran_;
      return absl::OkStatus();
    };
    ASSERT_TRUE(pool_->Submit(count_run, done_.For(index), options).ok());
  }

  // Queues a task estimated at `cost` whose completion, once it leaves the
  // queue unrun, holds the thread that delivers it until held_may_return_:
  // a test takes the draining Shutdown's thread out of the way with it.
  void QueueHeld(absl::Duration cost) {
    TaskOptions options;
    options.cost = cost;
    auto hold = [this](const TaskResult& r) {
      EXPECT_EQ(r.outcome, TaskOutcome::kShutDown);
      held_delivering_.Notify();
      held_may_return_.WaitForNotification();
    };
    ASSERT_TRUE(pool_->Submit(Noop(), hold, options).ok());
  }

  // Shutdown(now + drain) on a thread of its own.
  void StartDrain(absl::Duration drain) {
    const absl::Time deadline = clock_.Now() + drain;
    drains_.emplace_back([this, deadline] { pool_->Shutdown(deadline); });
  }

  // Waits until `n` threads wait on the clock: the pool's timer, then each
  // Shutdown once it has judged the queue.
  void WaitForClockWaiters(size_t n) {
    ASSERT_TRUE(WaitUntil([&] { return clock_.waiters() == n; }))
        << clock_.waiters() << " waiting on the clock, not " << n;
  }

  // Waits until a thread waits on the clock until `t` (the draining
  // Shutdown: when it means to look again).
  bool SomeoneWaitsUntil(absl::Time t) {
    return WaitUntil([&] {
      std::vector<absl::Time> d = clock_.waiter_deadlines();
      return std::find(d.begin(), d.end(), t) != d.end();
    });
  }

  void JoinDrains() {
    for (std::thread& t : drains_) {
      if (t.joinable()) t.join();
    }
  }

  SimulatedClock clock_;
  Gate gate_;
  Notification held_delivering_, held_may_return_;  // QueueHeld's
  Completions done_;
  std::atomic<int> ran_{0};
  std::unique_ptr<WorkerPool> pool_ = MakePool(1, 4, &clock_);
  std::vector<std::thread> drains_;
};

// A queued task that could not finish before the drain's deadline even if
// it started now is answered at once, so that its client can retry
// elsewhere; one that fits still waits for a worker and runs.
TEST_F(WorkerPoolDrainTest,
       ShutdownAnswersAtOnceAQueuedTaskLongerThanTheDrain) {
  ASSERT_NO_FATAL_FAILURE(StartGated(absl::ZeroDuration()));  // not estimated
  ASSERT_NO_FATAL_FAILURE(Queue(1, absl::Seconds(5)));
  ASSERT_NO_FATAL_FAILURE(Queue(2, absl::Seconds(1)));
  StartDrain(absl::Seconds(2));
  ASSERT_TRUE(done_.WaitForCount(1)) << "answered before the drain ends";
  EXPECT_EQ(done_.Get(1)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(done_.Get(1)->worker, -1) << "it never ran";
  EXPECT_FALSE(done_.Get(2).has_value()) << "the short one still waits";
  gate_.Release();
  ASSERT_TRUE(done_.WaitForCount(3));
  EXPECT_EQ(done_.Get(2)->outcome, TaskOutcome::kOk);
  EXPECT_EQ(ran_.load(), 1);
}

// With every worker busy, a queued task starts no sooner than the first
// running one is expected to end: one that could not finish from then is
// answered when the drain begins, not when it ends (a review's repro: two
// 2 s calls running, four queued, a 3 s drain; the queued ones waited the
// whole drain, two of them started and were stopped).
TEST_F(WorkerPoolDrainTest, ShutdownAnswersAtOnceWhatCannotStartInTime) {
  ASSERT_NO_FATAL_FAILURE(StartGated(absl::Seconds(3)));
  ASSERT_NO_FATAL_FAILURE(
      Queue(1, absl::Milliseconds(1500)));  // 3 s + 1.5 s > the drain's 4 s
  ASSERT_NO_FATAL_FAILURE(Queue(2, absl::Milliseconds(500)));  // 3 s + 0.5 s
  StartDrain(absl::Seconds(4));
  ASSERT_TRUE(done_.WaitForCount(1)) << "answered before the drain ends";
  EXPECT_EQ(done_.Get(1)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(done_.Get(1)->worker, -1) << "it never ran";
  EXPECT_FALSE(done_.Get(2).has_value()) << "the one that fits still waits";
  gate_.Release();
  ASSERT_TRUE(done_.WaitForCount(3));
  EXPECT_EQ(done_.Get(2)->outcome, TaskOutcome::kOk);
  EXPECT_EQ(ran_.load(), 1);
}

// The running task took longer than expected: when it ends, what is queued
// and could no longer finish in the drain's time left is answered then,
// not started (to be stopped at the drain's end).
TEST_F(WorkerPoolDrainTest, ADrainingWorkerAnswersWhatCanNoLongerFinish) {
  ASSERT_NO_FATAL_FAILURE(StartGated(absl::Seconds(1)));
  // 1 s + 3.5 s > 4 s: answered at the SIGTERM, by the draining Shutdown's
  // thread, which its completion then holds: what follows is the worker's.
  ASSERT_NO_FATAL_FAILURE(QueueHeld(absl::Milliseconds(3500)));
  // 1 s + 2 s fits the 4 s drain as expected.
  ASSERT_NO_FATAL_FAILURE(Queue(1, absl::Seconds(2)));
  StartDrain(absl::Seconds(4));
  ASSERT_TRUE(held_delivering_.WaitForNotificationWithTimeout(kWait));
  // The running task ends 3 s in, not 1: 1 s left, under the queued 2 s.
  clock_.Advance(absl::Seconds(3));
  gate_.Release();
  ASSERT_TRUE(done_.WaitForCount(2));
  EXPECT_EQ(done_.Get(0)->outcome, TaskOutcome::kOk);
  EXPECT_EQ(done_.Get(1)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(done_.Get(1)->worker, -1) << "it never ran";
  EXPECT_EQ(ran_.load(), 0);
}

// Every worker runs past its estimate, so none frees up to apply the rule
// above: the draining Shutdown answers a queued task once its own cost is
// longer than the time left (before, a 30 s task queued behind a 65 s run
// in a 70 s drain waited the whole 70 s).
TEST_F(WorkerPoolDrainTest, ADrainAnswersWhatCanNoLongerFinishWhileAllRun) {
  ASSERT_NO_FATAL_FAILURE(StartGated(absl::Seconds(1)));
  ASSERT_NO_FATAL_FAILURE(Queue(1, absl::Seconds(3)));  // fits, as expected
  ASSERT_NO_FATAL_FAILURE(WaitForClockWaiters(1));
  const absl::Time drain_ends = clock_.Now() + absl::Seconds(10);
  ASSERT_NO_FATAL_FAILURE(StartDrain(absl::Seconds(10)));
  ASSERT_NO_FATAL_FAILURE(WaitForClockWaiters(2));
  // The drain wakes when the queued task's 3 s no longer fit.
  EXPECT_TRUE(
      SomeoneWaitsUntil(drain_ends - absl::Seconds(3) + absl::Nanoseconds(1)));
  clock_.Advance(absl::Seconds(5));  // still running: 5 s left, enough
  EXPECT_FALSE(done_.Get(1).has_value()) << "it can still finish";
  clock_.Advance(absl::Milliseconds(2500));  // 2.5 s left: not enough
  ASSERT_TRUE(done_.WaitForCount(1)) << "answered while the worker runs";
  EXPECT_EQ(done_.Get(1)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(done_.Get(1)->worker, -1) << "it never ran";
  EXPECT_FALSE(done_.Get(0).has_value());
  gate_.Release();
  ASSERT_TRUE(done_.WaitForCount(2));
  EXPECT_EQ(done_.Get(0)->outcome, TaskOutcome::kOk);
  EXPECT_EQ(ran_.load(), 0);
}

// The costliest queued task is the first that can no longer finish: the
// drain wakes for it, answers it, and waits again for the next (a review
// of the first version, which woke at the cheapest one's time, the last).
TEST_F(WorkerPoolDrainTest, ADrainAnswersTheCostliestQueuedTaskFirst) {
  ASSERT_NO_FATAL_FAILURE(StartGated(absl::Seconds(1)));
  ASSERT_NO_FATAL_FAILURE(Queue(1, absl::Seconds(1)));
  ASSERT_NO_FATAL_FAILURE(Queue(2, absl::Seconds(4)));
  ASSERT_NO_FATAL_FAILURE(WaitForClockWaiters(1));
  const absl::Time drain_ends = clock_.Now() + absl::Seconds(10);
  ASSERT_NO_FATAL_FAILURE(StartDrain(absl::Seconds(10)));
  ASSERT_NO_FATAL_FAILURE(WaitForClockWaiters(2));
  EXPECT_TRUE(
      SomeoneWaitsUntil(drain_ends - absl::Seconds(4) + absl::Nanoseconds(1)));
  // 7 s in, with the worker still busy: 3 s left, under the 4 s task's.
  clock_.Advance(absl::Seconds(7));
  ASSERT_TRUE(done_.WaitForCount(1)) << "answered while the worker runs";
  EXPECT_EQ(done_.Get(2)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(done_.Get(2)->worker, -1) << "it never ran";
  EXPECT_FALSE(done_.Get(1).has_value()) << "the 1 s task still fits";
  // Then it waits for the 1 s task's time.
  EXPECT_TRUE(
      SomeoneWaitsUntil(drain_ends - absl::Seconds(1) + absl::Nanoseconds(1)));
  gate_.Release();
  ASSERT_TRUE(done_.WaitForCount(3));
  EXPECT_EQ(done_.Get(1)->outcome, TaskOutcome::kOk);
  EXPECT_EQ(ran_.load(), 1);
}

// While draining, the next task is checked in the section that starts it:
// a slow completion of the last one (a large answer, a slow callback) that
// eats the time left is not followed by a start that cannot finish (a
// review's scenario: before, the task was taken in the section that
// finished the last one, and started after its completion whatever the
// time).
TEST_F(WorkerPoolDrainTest,
       ADrainingWorkerChecksTheNextTaskAfterTheLastCompletion) {
  Notification completing, complete;
  absl::Cleanup finish = [&] {
    complete.Notify();
    gate_.Release();
    held_may_return_.Notify();
    pool_->Shutdown(absl::InfiniteFuture());  // before `complete` goes
    JoinDrains();
  };
  ASSERT_NO_FATAL_FAILURE(
      StartGated(absl::Milliseconds(100), [&](const TaskResult&) {
        completing.Notify();
        complete.WaitForNotification();
      }));
  // 0.1 s + 2.95 s > 3 s: answered at the SIGTERM, by the draining
  // Shutdown's thread, which its completion then holds.
  ASSERT_NO_FATAL_FAILURE(QueueHeld(absl::Milliseconds(2950)));
  // 0.1 s + 2 s fits the 3 s drain.
  ASSERT_NO_FATAL_FAILURE(Queue(1, absl::Seconds(2)));
  StartDrain(absl::Seconds(3));
  ASSERT_TRUE(held_delivering_.WaitForNotificationWithTimeout(kWait));
  gate_.Release();
  completing.WaitForNotification();
  // The completion takes 2 s: 0.9 s left, under the queued 2 s.
  clock_.Advance(absl::Seconds(2));
  complete.Notify();
  ASSERT_TRUE(done_.WaitForCount(1));
  EXPECT_EQ(done_.Get(1)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(done_.Get(1)->worker, -1) << "it never ran";
  EXPECT_EQ(ran_.load(), 0);
}

// A running task already asked to stop (a cancel, a deadline) ends within
// milliseconds, not at its estimate: the drain does not count its estimate
// against the queued ones.
TEST_F(WorkerPoolDrainTest, ShutdownCountsATaskAskedToStopAsEndingNow) {
  Notification release;  // the task ignores its token until released
  std::atomic<bool> started{false};
  absl::Cleanup finish = [&] {
    release.Notify();
    pool_->Shutdown(absl::InfiniteFuture());  // before `release` goes
    JoinDrains();
  };
  TaskOptions stopping;
  stopping.cost = absl::Seconds(10);
  auto handle = pool_->Submit(
      [&](const CancelToken&) {
        started = true;
        release.WaitForNotification();
        return absl::OkStatus();
      },
      done_.For(0), stopping);
  ASSERT_TRUE(handle.ok());
  ASSERT_TRUE(WaitUntil([&] { return started.load(); }));
  ASSERT_TRUE(pool_->Cancel(*handle));
  ASSERT_NO_FATAL_FAILURE(Queue(
      1, absl::Seconds(5)));  // 5 s fits the 12 s drain, not after 10 s more
  ASSERT_NO_FATAL_FAILURE(WaitForClockWaiters(1));
  StartDrain(absl::Seconds(12));
  ASSERT_NO_FATAL_FAILURE(
      WaitForClockWaiters(2));  // the drain has judged the queue and waits
  EXPECT_FALSE(done_.Get(1).has_value()) << "kept: it can still finish";
  release.Notify();
  ASSERT_TRUE(done_.WaitForCount(2));
  EXPECT_EQ(done_.Get(1)->outcome, TaskOutcome::kOk);
  EXPECT_EQ(ran_.load(), 1);
}

// A second Shutdown whose deadline is earlier, but not yet come, answers
// what cannot finish by it at once, as the first did by its own.
TEST_F(WorkerPoolDrainTest,
       ASecondShutdownAnswersWhatCannotFinishByItsDeadline) {
  ASSERT_NO_FATAL_FAILURE(StartGated(absl::Seconds(1)));
  ASSERT_NO_FATAL_FAILURE(
      Queue(1, absl::Seconds(2)));  // 1 s + 2 s: fits 10 s, not 2 s
  ASSERT_NO_FATAL_FAILURE(WaitForClockWaiters(1));
  StartDrain(absl::Seconds(10));
  ASSERT_NO_FATAL_FAILURE(WaitForClockWaiters(2));
  EXPECT_FALSE(done_.Get(1).has_value()) << "it fits the first drain";
  StartDrain(absl::Seconds(2));
  ASSERT_TRUE(done_.WaitForCount(1)) << "answered at the second call";
  EXPECT_EQ(done_.Get(1)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(done_.Get(1)->worker, -1) << "it never ran";
  gate_.Release();
  ASSERT_TRUE(done_.WaitForCount(2));
  EXPECT_EQ(done_.Get(0)->outcome, TaskOutcome::kOk);
  EXPECT_EQ(ran_.load(), 0);
}

// A second SIGTERM: a Shutdown with an earlier deadline ends the wait of
// the one in progress.
TEST(WorkerPoolTest, ASecondShutdownBringsTheDeadlineForward) {
  auto pool = MakePool(1, 8);
  Gate gate;  // never released: only the shutdown can stop it
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  ASSERT_TRUE(pool->Submit(Noop(), done.For(1)).ok());
  std::thread first([&] { pool->Shutdown(absl::Now() + absl::Seconds(60)); });
  // Submit is refused once the first Shutdown has begun (in the same
  // critical section).
  ASSERT_TRUE(WaitUntil(
      [&] { return !pool->Submit(Noop(), [](const TaskResult&) {}).ok(); }));
  const absl::Time start = absl::Now();
  pool->Shutdown(absl::Now());
  EXPECT_LT(absl::Now() - start, absl::Seconds(30))
      << "the first Shutdown's 60 s deadline held";
  first.join();
  EXPECT_EQ(done.Get(0)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(done.Get(1)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(gate.saw_stop(), 1);
}

// The drain waits for answers still being taken (bytes held outside
// tasks) until Shutdown's deadline, and a second Shutdown(now) ends that
// wait as it ends Shutdown's.
TEST(WorkerPoolTest, AfterShutdownHeldBytesAreAwaitedUntilItsDeadline) {
  {
    auto pool = MakePool(1, 8);
    pool->HoldBytes(100);
    pool->Shutdown(absl::Now() + absl::Seconds(60));
    std::thread taker([&] { pool->ReleaseBytes(100); });
    EXPECT_TRUE(pool->AwaitHeldBytesReleased()) << "released by the taker";
    taker.join();
  }
  {
    auto pool = MakePool(1, 8);
    pool->HoldBytes(100);
    pool->Shutdown(absl::Now());
    EXPECT_FALSE(pool->AwaitHeldBytesReleased()) << "the deadline has passed";
    pool->ReleaseBytes(100);
  }
  {
    auto pool = MakePool(1, 8);
    pool->HoldBytes(100);
    pool->Shutdown(absl::Now() + absl::Seconds(60));
    std::thread second_signal([&] { pool->Shutdown(absl::Now()); });
    const absl::Time start = absl::Now();
    EXPECT_FALSE(pool->AwaitHeldBytesReleased());
    EXPECT_LT(absl::Now() - start, absl::Seconds(30))
        << "the first Shutdown's 60 s deadline held";
    second_signal.join();
    pool->ReleaseBytes(100);
  }
}

TEST(WorkerPoolTest, DestructorShutsDownAndDeliversEverything) {
  Gate gate;
  Completions done;
  {
    auto pool = MakePool(2, 8);
    for (int i = 0; i < 2; ++i) {
      ASSERT_TRUE(pool->Submit(gate.Task(), done.For(i)).ok());
    }
    for (int i = 2; i < 6; ++i) {
      ASSERT_TRUE(pool->Submit(Noop(), done.For(i)).ok());
    }
    ASSERT_TRUE(gate.WaitStarted(2));
  }
  EXPECT_EQ(done.size(), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(done.CountOf(i), 1);
}

TEST(WorkerPoolTest, ShutdownFromACompletionStopsAdmittingWithoutDeadlock) {
  auto pool = MakePool(1, 4);
  Notification done;
  ASSERT_TRUE(pool->Submit(Noop(),
                           [&](const TaskResult&) {
                             pool->Shutdown(absl::InfiniteFuture());
                             done.Notify();
                           })
                  .ok());
  ASSERT_TRUE(done.WaitForNotificationWithTimeout(kWait));
  EXPECT_EQ(pool->Submit(Noop(), nullptr).status().code(),
            absl::StatusCode::kUnavailable);
  pool->Shutdown(absl::Now() + kWait);  // the owner's call joins everything
  EXPECT_EQ(pool->Stats().workers, 0);
}

// The same from a completion that Cancel delivers on its caller's thread: a
// Shutdown waiting there for every unrun completion would wait for itself.
TEST(WorkerPoolTest, ShutdownFromACancelledTasksCompletionDoesNotDeadlock) {
  auto pool = MakePool(1, 4);
  Gate gate;
  ASSERT_TRUE(pool->Submit(gate.Task(), nullptr).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  auto queued = pool->Submit(Noop(), [&](const TaskResult& result) {
    EXPECT_EQ(result.outcome, TaskOutcome::kCancelled);
    pool->Shutdown(absl::InfiniteFuture());
  });
  ASSERT_TRUE(queued.ok());
  Notification cancel_returned;
  std::thread canceller([&] {
    EXPECT_TRUE(pool->Cancel(*queued));
    cancel_returned.Notify();
  });
  if (!cancel_returned.WaitForNotificationWithTimeout(kWait)) {
    // Deadlocked: nothing can be joined or destroyed; fail loudly now.
    ADD_FAILURE() << "Shutdown from a Cancel-delivered completion hung";
    std::abort();
  }
  canceller.join();
  EXPECT_EQ(pool->Submit(Noop(), nullptr).status().code(),
            absl::StatusCode::kUnavailable);
  gate.Release();
  pool->Shutdown(absl::Now() + kWait);
  EXPECT_EQ(pool->Stats().workers, 0);
}

TEST(WorkerPoolTest, IdleTimeoutShrinksToMinimumAndLoadGrowsToMaximum) {
  SimulatedClock clock;
  PoolOptions options;
  options.min_workers = 1;
  options.max_workers = 3;
  options.queue_capacity = 0;
  options.idle_timeout = absl::Seconds(10);
  options.clock = &clock;
  auto pool = *WorkerPool::Create(options);
  EXPECT_EQ(pool->Stats().workers, 1);
  // The timer and the idle worker wait on the clock.
  ASSERT_TRUE(WaitUntil([&] { return clock.waiters() == 2; }))
      << clock.waiters();

  for (int round = 0; round < 2; ++round) {
    Gate gate;
    Completions done;
    for (int i = 0; i < 3; ++i) {
      ASSERT_TRUE(pool->Submit(gate.Task(), done.For(i)).ok()) << i;
    }
    ASSERT_TRUE(gate.WaitStarted(3));
    EXPECT_EQ(pool->Stats().workers, 3);
    EXPECT_EQ(pool->Submit(Noop(), done.For(9)).status().code(),
              absl::StatusCode::kResourceExhausted)
        << "never beyond max_workers";
    gate.Release();
    ASSERT_TRUE(done.WaitForCount(3));
    ASSERT_TRUE(WaitUntil([&] { return pool->Stats().busy == 0; }));
    // Each idle worker above the minimum retires once the timeout has
    // passed: none 9 s after they went idle, two by 11 s, with no further
    // advance of the clock.
    // Each waits on the clock once it has computed when it may retire
    // (Stats().idle counts a worker idle before: it may still be spinning
    // for work, and advancing then moved its retirement 9 s later).
    ASSERT_TRUE(WaitUntil([&] { return clock.waiters() == 4; }))
        << clock.waiters();
    clock.Advance(absl::Seconds(9));
    // Still waiting (their time has not come), none retired.
    ASSERT_TRUE(WaitUntil([&] { return clock.waiters() == 4; }))
        << clock.waiters();
    EXPECT_EQ(pool->Stats().workers, 3);
    clock.Advance(absl::Seconds(2));
    ASSERT_TRUE(WaitUntil([&] { return pool->Stats().workers == 1; }));
  }
}

TEST(WorkerPoolTest, RejectsBadOptionsNamingTheField) {
  PoolOptions options;
  options.max_workers = 0;
  EXPECT_THAT(WorkerPool::Create(options).status().message(),
              HasSubstr("max_workers"));
  options.max_workers = 2;
  options.min_workers = 3;
  EXPECT_THAT(WorkerPool::Create(options).status().message(),
              HasSubstr("min_workers"));
}

// `rounds` bursts of one gated task per worker: each must start on every
// worker before it is released.
void RunGatedBursts(WorkerPool& pool, int workers, int rounds) {
  for (int round = 0; round < rounds; ++round) {
    Gate gate;
    Completions done;
    for (int i = 0; i < workers; ++i) {
      ASSERT_TRUE(pool.Submit(gate.Task(), done.For(i)).ok());
    }
    ASSERT_TRUE(gate.WaitStarted(workers)) << "round " << round;
    gate.Release();
    ASSERT_TRUE(done.WaitForCount(workers));
  }
}

// Workers that sleep are woken one by one: the submitter wakes one, and a
// worker that finds more tasks queued behind its own wakes the next. A burst
// of gated tasks must therefore start on every worker.
TEST(WorkerPoolTest, BurstWakesEverySleepingWorker) {
  constexpr int kWorkers = 3;
  // Without spinning, a worker that is idle (Stats, under the pool's lock)
  // is waiting on the condition variable: a spinning one would see the
  // burst without being woken, and the wake chain would go untested.
  PoolOptions options;
  options.max_workers = kWorkers;
  options.min_workers = kWorkers;
  options.queue_capacity = 8;
  options.spin_before_park = false;
  absl::StatusOr<std::unique_ptr<WorkerPool>> created =
      WorkerPool::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<WorkerPool> pool = std::move(*created);
  ASSERT_TRUE(WaitUntil([&] { return pool->Stats().idle == kWorkers; }));
  RunGatedBursts(*pool, kWorkers, /*rounds=*/20);
}

// Task records are recycled: a handle kept past its task's end must not
// reach a later task that reuses the record, queued or running.
TEST(WorkerPoolTest, StaleHandlesDoNotCancelTheRecordsNextTasks) {
  constexpr int kTasks = 100;
  auto pool = MakePool(1, 2 * kTasks);
  Completions done;
  std::vector<TaskHandle> stale;
  for (int i = 0; i < kTasks; ++i) {
    auto handle = pool->Submit(Noop(), done.For(i));
    ASSERT_TRUE(handle.ok());
    stale.push_back(*handle);
  }
  ASSERT_TRUE(done.WaitForCount(kTasks));
  // Records go back to the free list after their completion returns.
  ASSERT_TRUE(
      WaitUntil([&] { return pool->Stats().completed_total() == kTasks; }));
  // As many again, one running and the rest queued: most of them reuse the
  // records of the finished ones.
  Gate gate;
  for (int i = kTasks; i < 2 * kTasks; ++i) {
    ASSERT_TRUE(pool->Submit(gate.Task(), done.For(i)).ok());
  }
  ASSERT_TRUE(gate.WaitStarted(1));
  for (const TaskHandle& handle : stale) {
    EXPECT_FALSE(pool->Cancel(handle)) << "its task has finished";
  }
  gate.Release();
  ASSERT_TRUE(done.WaitForCount(2 * kTasks));
  EXPECT_EQ(gate.saw_stop(), 0);
  for (int i = kTasks; i < 2 * kTasks; ++i) {
    EXPECT_EQ(done.Get(i)->outcome, TaskOutcome::kOk) << i;
  }
}

// Submitters race Shutdown: a task accepted in the instant the workers stop
// must still complete (as shut down, or ok if it ran), exactly once, before
// Shutdown returns.
TEST(WorkerPoolTest, SubmitRacingShutdownLosesNothing) {
  constexpr int kThreads = 3;
  for (int round = 0; round < 30; ++round) {
    auto pool = MakePool(2, 64);
    std::atomic<int> accepted{0};
    std::atomic<int> completed{0};
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&] {
        while (!go.load()) {
        }
        // Until the pool refuses as shut down (bounded, should it not).
        for (int i = 0; i < 1000000; ++i) {
          auto h = pool->Submit(Noop(), [&](const TaskResult& r) {
            EXPECT_TRUE(r.outcome == TaskOutcome::kOk ||
                        r.outcome == TaskOutcome::kShutDown);
            completed.fetch_add(1);
          });
          if (h.ok()) {
            accepted.fetch_add(1);
          } else if (h.status().code() == absl::StatusCode::kUnavailable) {
            return;
          }
        }
      });
    }
    go.store(true);
    ASSERT_TRUE(
        WaitUntil([&] { return accepted.load() >= 50 * (round % 5 + 1); }));
    pool->Shutdown(absl::Now());  // deadline passed: queued ones shut down
    for (auto& t : threads) t.join();
    // Every task accepted before Shutdown returned had completed by then;
    // the threads stopped at their first refusal, so none came after.
    EXPECT_EQ(completed.load(), accepted.load()) << "round " << round;
    PoolStats stats = pool->Stats();
    EXPECT_EQ(stats.completed_total(), stats.accepted);
    EXPECT_EQ(stats.queue_depth, 0u);
  }
}

// Several threads submit and cancel at random with random deadlines; every
// accepted task completes exactly once and the counters add up.
TEST(WorkerPoolTest, StressEveryCompletionExactlyOnce) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 3000;
  PoolOptions options;
  options.min_workers = 1;
  options.max_workers = 3;
  options.queue_capacity = 16;
  options.idle_timeout = absl::Milliseconds(1);  // churn the workers too
  auto pool = *WorkerPool::Create(options);

  std::vector<std::atomic<int>> completions(kThreads * kPerThread);
  std::atomic<uint64_t> accepted{0}, full{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::vector<TaskHandle> handles;
      for (int i = 0; i < kPerThread; ++i) {
        int id = t * kPerThread + i;
        TaskOptions task_options;
        int kind = rng() % 4;
        if (kind == 1)
          task_options.deadline = absl::Now() + absl::Microseconds(rng() % 200);
        if (kind == 2) task_options.deadline = absl::Now() + absl::Seconds(30);
        int spin_us = rng() % 20;
        auto task = [spin_us](const CancelToken& token) -> absl::Status {
          absl::Time end = absl::Now() + absl::Microseconds(spin_us);
          while (absl::Now() < end) {
            if (token.stop_requested()) return absl::CancelledError("stop");
          }
          return absl::OkStatus();
        };
        auto h = pool->Submit(
            task, [&, id](const TaskResult&) { completions[id].fetch_add(1); },
            task_options);
        if (h.ok()) {
          ++accepted;
          handles.push_back(*h);
        } else if (h.status().code() == absl::StatusCode::kResourceExhausted) {
          ++full;
        } else {
          ASSERT_EQ(h.status().code(), absl::StatusCode::kDeadlineExceeded);
          completions[id].fetch_add(1);  // refused: counts as its one answer
        }
        if (!handles.empty() && rng() % 3 == 0) {
          pool->Cancel(handles[rng() % handles.size()]);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(WaitUntil(
      [&] { return pool->Stats().completed_total() == accepted.load(); }));
  pool->Shutdown(absl::Now());
  for (size_t id = 0; id < completions.size(); ++id) {
    int n = completions[id].load();
    // Refused (queue full) tasks never complete; all others exactly once.
    ASSERT_LE(n, 1) << "task " << id << " completed " << n << " times";
  }
  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.accepted, accepted.load());
  EXPECT_EQ(stats.rejected, full.load());
  EXPECT_EQ(stats.completed_total(), accepted.load());
  uint64_t answered = 0;
  for (auto& c : completions) answered += c.load();
  EXPECT_EQ(answered + full.load(), uint64_t{kThreads * kPerThread});
  EXPECT_EQ(stats.queue_depth, 0u);
  EXPECT_EQ(stats.busy, 0);
}

// A burst that a spinning worker sees wakes no one at Submit (spinning_ is
// set): the worker that takes the first task must wake the next, or the
// burst runs one task at a time. (BurstWakesEverySleepingWorker runs
// without spinning, where every Submit wakes a worker itself.) Without the
// wake-up this failed within 20 rounds.
TEST(WorkerPoolTest, BurstWhileAWorkerSpinsStartsOnEveryWorker) {
  constexpr int kWorkers = 3;
  PoolOptions options;
  options.max_workers = kWorkers;
  options.min_workers = kWorkers;
  options.queue_capacity = 8;
  options.spin_before_park = true;
  absl::StatusOr<std::unique_ptr<WorkerPool>> created =
      WorkerPool::Create(options);
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<WorkerPool> pool = std::move(*created);
  RunGatedBursts(*pool, kWorkers, /*rounds=*/200);
}

// Cancel of a queued task at or past its deadline (the timer not there yet)
// completes it kDeadlineExceeded, not kCancelled: the outcome is decided by
// the time, whoever delivers it.
TEST_F(HeldTimerTest, CancelOfAQueuedTaskPastItsDeadlineIsDeadlineExceeded) {
  ASSERT_NO_FATAL_FAILURE(Hold());
  absl::StatusOr<TaskHandle> h = pool_->Submit(Noop(), done_.For(2), Due());
  ASSERT_TRUE(h.ok());
  ASSERT_NO_FATAL_FAILURE(PassTheDeadlines());
  EXPECT_TRUE(pool_->Cancel(*h));
  ASSERT_TRUE(done_.Get(2).has_value());
  EXPECT_EQ(done_.Get(2)->outcome, TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(done_.Get(2)->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(pool_->Stats().completed[static_cast<int>(TaskOutcome::kCancelled)],
            0u);
  release_timer_.Notify();
  gate_.Release();
  ASSERT_TRUE(done_.WaitForCount(2));
}

// A queued task past its deadline that something else takes out before the
// timer gets to it ends kDeadlineExceeded too: displaced by more critical
// work, or dropped by a shutdown past its own deadline.
TEST_F(HeldTimerTest, ADisplacedTaskPastItsDeadlineIsDeadlineExceeded) {
  ASSERT_NO_FATAL_FAILURE(Hold(/*capacity=*/2));
  TaskOptions sheddable = Due();
  sheddable.priority = Priority::kSheddable;
  ASSERT_TRUE(pool_->Submit(Noop(), done_.For(2), sheddable).ok());
  ASSERT_NO_FATAL_FAILURE(PassTheDeadlines());
  ASSERT_TRUE(pool_->Submit(Noop(), done_.For(3)).ok());  // the queue is full
  TaskOptions critical;
  critical.priority = Priority::kCritical;
  ASSERT_TRUE(pool_->Submit(Noop(), done_.For(4), critical).ok());
  ASSERT_TRUE(done_.Get(2).has_value()) << "displaced, delivered at once";
  EXPECT_EQ(done_.Get(2)->outcome, TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(done_.Get(2)->status.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(pool_->Stats().completed[static_cast<int>(TaskOutcome::kPreempted)],
            0u);
  release_timer_.Notify();
  gate_.Release();
  ASSERT_TRUE(done_.WaitForCount(4));  // the held timer's task is not in it
}

TEST_F(HeldTimerTest, AShutdownDropsAQueuedTaskPastItsDeadlineAsExpired) {
  ASSERT_NO_FATAL_FAILURE(Hold());
  ASSERT_TRUE(pool_->Submit(Noop(), done_.For(2), Due()).ok());
  ASSERT_TRUE(pool_->Submit(Noop(), done_.For(3)).ok());  // no deadline
  ASSERT_NO_FATAL_FAILURE(PassTheDeadlines());
  // Past its deadline at once; it then waits for the held timer's task.
  std::thread shutdown([&] { pool_->Shutdown(clock_.Now()); });
  absl::Cleanup join = [&] {
    if (!release_timer_.HasBeenNotified()) release_timer_.Notify();
    shutdown.join();
  };
  ASSERT_TRUE(done_.WaitForCount(3)) << "the gate's task and the queued two";
  EXPECT_EQ(done_.Get(0)->outcome, TaskOutcome::kShutDown);
  EXPECT_EQ(done_.Get(2)->outcome, TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(done_.Get(3)->outcome, TaskOutcome::kShutDown);
}

// On the real clock (whose passing time signals no waiter, unlike
// SimulatedClock::Advance), a Submit with a deadline earlier than the
// timer's must wake it: a queued task behind a busy worker expires.
TEST(WorkerPoolTest, RealClockQueuedTaskExpiresWhileTheWorkerIsBusy) {
  auto pool = MakePool(1, 4);
  Gate gate;
  Completions done;
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  TaskOptions options;
  // Far enough that a stalled test machine still submits before it.
  options.deadline = absl::Now() + absl::Seconds(2);
  ASSERT_TRUE(pool->Submit(Noop(), done.For(1), options).ok());
  ASSERT_TRUE(done.WaitForCount(1, kWait)) << "timer never woke";
  EXPECT_EQ(done.Get(1)->outcome, TaskOutcome::kDeadlineExceeded);
  gate.Release();
  ASSERT_TRUE(done.WaitForCount(2));
}

}  // namespace
}  // namespace compute
