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

PoolOptions Options(Starter& starter, int min_workers, int max_workers) {
  PoolOptions options;
  options.min_workers = min_workers;
  options.max_workers = max_workers;
  options.queue_capacity = 8;
  options.start_thread = starter.Fn();
  return options;
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
  Gate gate;
  Completions done;  // before the pool: it outlives the pool's completions
  auto created = WorkerPool::Create(Options(starter, 1, 3));
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<WorkerPool> pool = std::move(*created);
  starter.RefuseNext(1'000'000);  // every thread from now on

  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  // That Submit tried to start a worker if the first was not yet idle.
  ASSERT_TRUE(gate.WaitStarted(1));
  const uint64_t before = pool->Stats().worker_start_failures;
  EXPECT_LE(before, 1u);
  // The only worker is busy: each Submit below tries to start another.
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(pool->Submit(gate.Task(), done.For(i)).ok());
  }
  PoolStats stats = pool->Stats();
  EXPECT_EQ(stats.workers, 1);
  EXPECT_EQ(stats.worker_start_failures, before + 3);
  EXPECT_EQ(stats.queue_depth, 3u);
  EXPECT_EQ(static_cast<uint64_t>(starter.refused()),
            stats.worker_start_failures);
  EXPECT_EQ(done.size(), 0u);

  gate.Release();
  ASSERT_TRUE(done.WaitForCount(4));
  for (int i = 0; i <= 3; ++i) {
    EXPECT_EQ(done.CountOf(i), 1) << i;
    ASSERT_TRUE(done.Get(i).has_value());
    EXPECT_EQ(done.Get(i)->outcome, TaskOutcome::kOk) << i;
    EXPECT_EQ(done.Get(i)->worker, 0) << i;
  }
  stats = pool->Stats();
  EXPECT_EQ(stats.completed[static_cast<int>(TaskOutcome::kOk)], 4u);
  EXPECT_EQ(stats.workers, 1);
  pool.reset();
  EXPECT_EQ(done.size(), 4u);
  EXPECT_EQ(starter.exited(), starter.started());
}

TEST(WorkerStartTest, GrowthSucceedsAfterAFailure) {
  Starter starter;
  Gate gate;
  Completions done;
  auto created = WorkerPool::Create(Options(starter, 1, 2));
  ASSERT_TRUE(created.ok()) << created.status();
  std::unique_ptr<WorkerPool> pool = std::move(*created);

  // Refused, if this Submit tries to start one (the first worker not yet
  // idle), so the only place to grow is left for the Submits below.
  starter.RefuseNext(1'000'000);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(0)).ok());
  ASSERT_TRUE(gate.WaitStarted(1));
  const uint64_t before = pool->Stats().worker_start_failures;
  starter.RefuseNext(1);
  ASSERT_TRUE(pool->Submit(gate.Task(), done.For(1)).ok());  // refused
  EXPECT_EQ(pool->Stats().workers, 1);
  EXPECT_EQ(pool->Stats().worker_start_failures, before + 1);
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
