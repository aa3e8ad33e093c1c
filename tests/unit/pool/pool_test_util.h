// Helpers shared by the pool's tests: completion collectors, a gated task,
// and the condition wait of every test (tests/wait_until.h).
#ifndef COMPUTE_TESTS_UNIT_POOL_POOL_TEST_UTIL_H_
#define COMPUTE_TESTS_UNIT_POOL_POOL_TEST_UTIL_H_

#include <atomic>
#include <map>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "server/pool/worker_pool.h"
#include "tests/wait_until.h"

namespace compute::pool_test {

// Generous: the bound only fails a test that is stuck, never a slow machine.
constexpr absl::Duration kWait = absl::Seconds(20);

// Waits until `pred` holds (the pool's stats, say); false on timeout.
using ::compute::testing::WaitUntil;

// Collects completions; each task id must complete exactly once.
//
// A test must wait for every completion it caused before it ends: the pool
// outlives `Completions` in most tests (it is made first), and its shutdown
// delivers what is still queued or running. Such a late completion fails the
// test that is still ending (the pool's destructor joins its workers inside
// it) instead of writing into freed memory, which ASan saw only when the
// worker lost the race.
class Completions {
 public:
  Completions() = default;
  Completions(const Completions&) = delete;
  Completions& operator=(const Completions&) = delete;
  ~Completions() {
    MutexLock lock(&state_->mu);
    state_->closed = true;
  }

  DoneFn For(int id) {
    return [state = state_, id](const TaskResult& r) {
      MutexLock lock(&state->mu);
      if (state->closed) {
        ADD_FAILURE() << "task " << id
                      << " completed after the test stopped waiting for it ("
                      << r.status << ")";
        return;
      }
      state->results.push_back({id, r});
      ++state->count[id];
      state->cv.SignalAll();
    };
  }
  bool WaitForCount(size_t n, absl::Duration timeout = kWait) {
    absl::Time deadline = MonotonicNow() + timeout;
    MutexLock lock(&state_->mu);
    while (state_->results.size() < n) {
      if (state_->cv.WaitWithDeadline(&state_->mu, deadline)) {
        return state_->results.size() >= n;
      }
    }
    return true;
  }
  std::optional<TaskResult> Get(int id) {
    MutexLock lock(&state_->mu);
    for (auto& [i, r] : state_->results) {
      if (i == id) return r;
    }
    return std::nullopt;
  }
  int CountOf(int id) {
    MutexLock lock(&state_->mu);
    return state_->count[id];
  }
  size_t size() {
    MutexLock lock(&state_->mu);
    return state_->results.size();
  }
  std::vector<int> Order() {
    MutexLock lock(&state_->mu);
    std::vector<int> order;
    for (auto& [i, r] : state_->results) order.push_back(i);
    return order;
  }

 private:
  struct State {
    Mutex mu;
    CondVar cv;
    bool closed ABSL_GUARDED_BY(mu) = false;
    std::vector<std::pair<int, TaskResult>> results ABSL_GUARDED_BY(mu);
    std::map<int, int> count ABSL_GUARDED_BY(mu);
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

// A task that blocks until released or stopped, and reports that it started.
// Its state is shared with the tasks it made, so that one still running when
// the test ends (a failed assertion returned early) stops with the pool
// instead of reading freed memory.
class Gate {
 public:
  TaskFn Task() {
    return [state = state_](const CancelToken& token) -> absl::Status {
      state->started.fetch_add(1);
      while (!state->release.HasBeenNotified()) {
        if (token.stop_requested()) {
          state->saw_stop.fetch_add(1);
          return absl::CancelledError("stopped");
        }
        state->release.WaitForNotificationWithTimeout(absl::Milliseconds(1));
      }
      return absl::OkStatus();
    };
  }
  bool WaitStarted(int n) {
    return WaitUntil([&] { return state_->started.load() >= n; });
  }
  void Release() { state_->release.Notify(); }
  int started() const { return state_->started.load(); }
  int saw_stop() const { return state_->saw_stop.load(); }

 private:
  struct State {
    Notification release;
    std::atomic<int> started{0};
    std::atomic<int> saw_stop{0};
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
};

inline std::unique_ptr<WorkerPool> MakePool(int workers, size_t capacity,
                                            Clock* clock = nullptr,
                                            PoolObserver* observer = nullptr) {
  PoolOptions options;
  options.max_workers = workers;
  options.min_workers = workers;
  options.queue_capacity = capacity;
  options.clock = clock;
  options.observer = observer;
  auto pool = WorkerPool::Create(options);
  EXPECT_TRUE(pool.ok()) << pool.status();
  return std::move(*pool);
}

inline TaskFn Noop() {
  return [](const CancelToken&) { return absl::OkStatus(); };
}

}  // namespace compute::pool_test

#endif  // COMPUTE_TESTS_UNIT_POOL_POOL_TEST_UTIL_H_
