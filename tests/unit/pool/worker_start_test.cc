// A worker or timer thread the system refuses (pids.max, RLIMIT_NPROC,
// RLIMIT_AS: std::thread throws std::system_error) must not take the
// server down: Create fails with a status, Submit queues the task for the
// live workers and counts the failure. PoolOptions::start_thread refuses
// threads on cue.
#include <atomic>
#include <cerrno>
#include <functional>
#include <memory>
#include <system_error>
#include <thread>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/pool/worker_pool.h"
#include "tests/unit/pool/pool_test_util.h"

namespace compute {
namespace {

using ::testing::HasSubstr;
using namespace ::compute::pool_test;  // NOLINT: the shared test helpers

// Starts the pool's threads and refuses the ones a test names, as the
// system does. Counts the threads it started and those whose body returned
// (all of them, once the pool is gone or Create has failed: none leaks).
// Must outlive the pool.
class Starter {
 public:
  void RefuseCall(int n) { refuse_call_.store(n); }  // the nth asked, from 1
  void RefuseNext(int n) { refuse_next_.store(n); }  // the next n asked
  std::function<std::thread(std::function<void()>)> Fn() {
    return [this](std::function<void()> body) {
      const int call = asked_.fetch_add(1) + 1;
      if (call == refuse_call_.load() || refuse_next_.fetch_sub(1) > 0) {
        refused_.fetch_add(1);
        throw std::system_error(EAGAIN, std::generic_category(),
                                "test refuses the thread");
      }
      started_.fetch_add(1);
      return std::thread([this, body = std::move(body)] {
        body();
        exited_.fetch_add(1);
      });
    };
  }
  int asked() const { return asked_.load(); }
  int refused() const { return refused_.load(); }
  int started() const { return started_.load(); }
  int exited() const { return exited_.load(); }

 private:
  std::atomic<int> refuse_call_{0};
  std::atomic<int> refuse_next_{0};
  std::atomic<int> asked_{0};
  std::atomic<int> refused_{0};
  std::atomic<int> started_{0};
  std::atomic<int> exited_{0};
};

PoolOptions Options(Starter& starter, int min_workers, int max_workers,
                    Clock* clock = nullptr) {
  PoolOptions options;
  options.min_workers = min_workers;
  options.max_workers = max_workers;
  options.queue_capacity = 8;
  options.start_thread = starter.Fn();
  options.clock = clock;
  return options;
}

// The pool, or nullptr (and a failure) if Create refused.
std::unique_ptr<WorkerPool> Started(const PoolOptions& options) {
  auto created = WorkerPool::Create(options);
  EXPECT_TRUE(created.ok()) << created.status();
  return created.ok() ? std::move(*created) : nullptr;
}

// A pool of 1..4 workers, queue capacity 2, the system refusing every
// thread from now on, and its one worker busy with task 0 (held by `gate`);
// nullptr (and a failure) if it did not get there.
std::unique_ptr<WorkerPool> OneBusyWorkerAndNoMoreThreads(Starter& starter,
                                                          SimulatedClock& clock,
                                                          Gate& gate,
                                                          Completions& done) {
  PoolOptions options = Options(starter, 1, 4, &clock);
  options.queue_capacity = 2;
  std::unique_ptr<WorkerPool> pool = Started(options);
  if (pool == nullptr) return nullptr;
  starter.RefuseNext(1'000'000);
  EXPECT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  if (!gate.WaitStarted(1)) {
    ADD_FAILURE() << "task 0 did not start";
    return nullptr;
  }
  return pool;
}

TEST(WorkerStartTest, CreateFailsWithStatusWhenAWorkerCannotStart) {
  Starter starter;
  starter.RefuseCall(2);
  auto pool = WorkerPool::Create(Options(starter, 3, 3));
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(pool.status().message(),
              HasSubstr("cannot start worker thread 2 of 3: Resource "
                        "temporarily unavailable"));
  EXPECT_EQ(starter.asked(), 2);  // stopped there: no 3rd worker, no timer
  EXPECT_EQ(starter.started(), 1);
  EXPECT_EQ(starter.exited(), 1);  // the first worker was stopped and joined
}

TEST(WorkerStartTest, CreateFailsWithStatusWhenTheTimerCannotStart) {
  Starter starter;
  starter.RefuseCall(3);  // two workers, then the timer
  auto pool = WorkerPool::Create(Options(starter, 2, 2));
  ASSERT_FALSE(pool.ok());
  EXPECT_EQ(pool.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(pool.status().message(),
              HasSubstr("cannot start the timer thread: Resource "
                        "temporarily unavailable"));
  EXPECT_EQ(starter.started(), 2);
  EXPECT_EQ(starter.exited(), 2);
}

TEST(WorkerStartTest, SubmitQueuesForTheLiveWorkerWhenGrowthFails) {
  Starter starter;
  SimulatedClock clock;  // the retry interval passes only when told
  Gate gate;
  Completions done;  // before the pool: it outlives the pool's completions
  std::unique_ptr<WorkerPool> pool = Started(Options(starter, 1, 3, &clock));
  ASSERT_NE(pool, nullptr);
  starter.RefuseNext(1'000'000);  // every thread from now on

  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  // That Submit tried to start a worker if the first was not yet idle.
  ASSERT_TRUE(gate.WaitStarted(1));
  EXPECT_LE(pool->Stats().worker_start_failures, 1u);
  // The only worker is busy: the first Submit below that finds no refusal
  // in the last second tries to start another, once; the others wait for
  // the interval instead of trying at every call.
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(pool->Submit(gate.Task(), done.For(i)).ok());
  }
  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.workers, 1);
  EXPECT_EQ(stats.worker_start_failures, 1u);
  EXPECT_EQ(stats.queue_depth, 3u);
  EXPECT_EQ(starter.refused(), 1);
  // The interval past, the next Submit tries again.
  clock.Advance(kWorkerStartRetryInterval);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(4)).ok());
  EXPECT_EQ(pool->Stats().worker_start_failures, 2u);
  EXPECT_EQ(starter.refused(), 2);
  EXPECT_EQ(done.size(), 0u);

  gate.Release();
  ASSERT_TRUE(done.WaitForCount(5));
  for (int i = 0; i <= 4; ++i) {
    EXPECT_EQ(done.CountOf(i), 1) << i;
    ASSERT_TRUE(done.Get(i).has_value());
    EXPECT_EQ(done.Get(i)->outcome, TaskOutcome::kOk) << i;
    EXPECT_EQ(done.Get(i)->worker, 0) << i;
  }
  stats = pool->Stats();
  EXPECT_EQ(stats.completed[static_cast<int>(TaskOutcome::kOk)], 5u);
  EXPECT_EQ(stats.workers, 1);
  pool.reset();
  EXPECT_EQ(done.size(), 5u);
  EXPECT_EQ(starter.exited(), starter.started());
}

// While the system refuses threads, the queue holds queue_capacity beyond
// the workers that exist, not beyond max_workers: tasks admitted for
// workers that never start would wait unseen by the bound, and the
// expected wait divides by the live workers.
TEST(WorkerStartTest, AdmissionCountsOnlyTheLiveWorkersWhileGrowthFails) {
  Starter starter;
  SimulatedClock clock;
  Gate gate;
  Completions done;
  std::unique_ptr<WorkerPool> pool =
      OneBusyWorkerAndNoMoreThreads(starter, clock, gate, done);
  ASSERT_NE(pool, nullptr);
  TaskOptions costly;
  costly.cost = absl::Seconds(1);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(1), costly).ok());
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(2), costly).ok());
  EXPECT_GE(pool->Stats().worker_start_failures, 1u);
  // One worker, busy; two queued of 1 s each: 2 s for the next to wait,
  // not 2 s / 4 places.
  EXPECT_GE(pool->Stats().expected_wait, absl::Seconds(2));
  // Before: queue_capacity + the three places with no thread admitted 3
  // more.
  SubmitRefusal why;
  absl::StatusOr<TaskHandle> refused =
      pool->Submit(gate.Task(), done.For(3), TaskOptions(), &why);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(why.reason, RefusalReason::kQueueFull);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("2 tasks queued (capacity 2), 1 of 1 workers busy"));

  // A second later, with threads to be had again, the places come back and
  // the next Submit starts a worker for the queued work.
  clock.Advance(kWorkerStartRetryInterval);
  starter.RefuseNext(0);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(4)).ok());
  ASSERT_TRUE(gate.WaitStarted(2));
  EXPECT_EQ(pool->Stats().workers, 2);

  gate.Release();
  ASSERT_TRUE(done.WaitForCount(4));  // 3 was refused: no completion
  EXPECT_EQ(done.CountOf(3), 0);
  for (int i : {0, 1, 2, 4}) {
    EXPECT_EQ(done.CountOf(i), 1) << i;
    ASSERT_TRUE(done.Get(i).has_value());
    EXPECT_EQ(done.Get(i)->outcome, TaskOutcome::kOk) << i;
  }
  pool.reset();
  EXPECT_EQ(starter.exited(), starter.started());
}

// The retry after the interval comes before the admission, so the
// admission counts what it found: a retry that fails admits nothing beyond
// the live workers (before, the Submit that cleared the refusal was admitted
// for the empty places, then its own retry failed: one task a second past
// the bound), and a queue full for the live workers still gets its retry.
TEST(WorkerStartTest, ARetryThatFailsAdmitsNothingForTheEmptyPlaces) {
  Starter starter;
  SimulatedClock clock;
  Gate gate;
  Completions done;
  std::unique_ptr<WorkerPool> pool =
      OneBusyWorkerAndNoMoreThreads(starter, clock, gate, done);
  ASSERT_NE(pool, nullptr);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(1)).ok());
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(2)).ok());
  const int refused_before = starter.refused();
  ASSERT_GE(refused_before, 1);

  // The interval past, threads still refused: the retry fails, and the
  // queue, full for the one live worker, refuses the task.
  clock.Advance(kWorkerStartRetryInterval);
  SubmitRefusal why;
  absl::StatusOr<TaskHandle> refused =
      pool->Submit(gate.Task(), done.For(3), TaskOptions(), &why);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(why.reason, RefusalReason::kQueueFull);
  EXPECT_EQ(starter.refused(), refused_before + 1);
  // The failure restarted the interval: no new try at the next call.
  ASSERT_FALSE(pool->Submit(gate.Task(), done.For(4)).ok());
  EXPECT_EQ(starter.refused(), refused_before + 1);
  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.queue_depth, 2u);
  EXPECT_EQ(stats.workers, 1);

  // Threads to be had again: the full queue's next Submit, past the
  // interval, starts one and is admitted for its place.
  clock.Advance(kWorkerStartRetryInterval);
  starter.RefuseNext(0);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(5)).ok());
  ASSERT_TRUE(gate.WaitStarted(2));
  EXPECT_EQ(pool->Stats().workers, 2);

  gate.Release();
  ASSERT_TRUE(done.WaitForCount(4));  // 3 and 4 were refused
  for (int i : {0, 1, 2, 5}) {
    EXPECT_EQ(done.CountOf(i), 1) << i;
    ASSERT_TRUE(done.Get(i).has_value());
    EXPECT_EQ(done.Get(i)->outcome, TaskOutcome::kOk) << i;
  }
  pool.reset();
  EXPECT_EQ(done.CountOf(3), 0);
  EXPECT_EQ(done.CountOf(4), 0);
  EXPECT_EQ(starter.exited(), starter.started());
}

TEST(WorkerStartTest, GrowthSucceedsAfterAFailure) {
  Starter starter;
  SimulatedClock clock;
  Gate gate;
  Completions done;
  std::unique_ptr<WorkerPool> pool = Started(Options(starter, 1, 2, &clock));
  ASSERT_NE(pool, nullptr);

  // Refused, if this Submit tries to start one (the first worker not yet
  // idle), so the only place to grow is left for the Submits below.
  starter.RefuseNext(1'000'000);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  clock.Advance(kWorkerStartRetryInterval);  // whether it tried or not
  const uint64_t before = pool->Stats().worker_start_failures;
  starter.RefuseNext(1);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(1)).ok());  // refused
  EXPECT_EQ(pool->Stats().workers, 1);
  EXPECT_EQ(pool->Stats().worker_start_failures, before + 1);
  clock.Advance(kWorkerStartRetryInterval);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(2)).ok());  // starts one
  ASSERT_TRUE(gate.WaitStarted(2));  // the new worker runs task 1
  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.workers, 2);
  EXPECT_EQ(stats.busy, 2);
  EXPECT_EQ(stats.worker_start_failures, before + 1);
  EXPECT_EQ(stats.queue_depth, 1u);

  gate.Release();
  ASSERT_TRUE(done.WaitForCount(3));
  for (int i = 0; i <= 2; ++i) {
    EXPECT_EQ(done.CountOf(i), 1) << i;
    ASSERT_TRUE(done.Get(i).has_value());
    EXPECT_EQ(done.Get(i)->outcome, TaskOutcome::kOk) << i;
  }
  EXPECT_EQ(done.Get(1)->worker, 1);
  pool.reset();
  EXPECT_EQ(starter.exited(), starter.started());
}

}  // namespace
}  // namespace compute
