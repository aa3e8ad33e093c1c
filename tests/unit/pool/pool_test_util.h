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
class Completions {
 public:
  DoneFn For(int id) {
    return [this, id](const TaskResult& r) {
      MutexLock lock(&mu_);
      results_.push_back({id, r});
      ++count_[id];
      cv_.SignalAll();
    };
  }
  bool WaitForCount(size_t n, absl::Duration timeout = kWait) {
    absl::Time deadline = MonotonicNow() + timeout;
    MutexLock lock(&mu_);
    while (results_.size() < n) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) return results_.size() >= n;
    }
    return true;
  }
  std::optional<TaskResult> Get(int id) {
    MutexLock lock(&mu_);
    for (auto& [i, r] : results_) {
      if (i == id) return r;
    }
    return std::nullopt;
  }
  int CountOf(int id) {
    MutexLock lock(&mu_);
    return count_[id];
  }
  size_t size() {
    MutexLock lock(&mu_);
    return results_.size();
  }
  std::vector<int> Order() {
    MutexLock lock(&mu_);
    std::vector<int> order;
    for (auto& [i, r] : results_) order.push_back(i);
    return order;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  std::vector<std::pair<int, TaskResult>> results_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> count_ ABSL_GUARDED_BY(mu_);
};

// A task that blocks until released or stopped, and reports that it started.
class Gate {
 public:
  TaskFn Task() {
    return [this](const CancelToken& token) -> absl::Status {
      started_.fetch_add(1);
      while (!release_.HasBeenNotified()) {
        if (token.stop_requested()) {
          saw_stop_.fetch_add(1);
          return absl::CancelledError("stopped");
        }
        release_.WaitForNotificationWithTimeout(absl::Milliseconds(1));
      }
      return absl::OkStatus();
    };
  }
  bool WaitStarted(int n) {
    return WaitUntil([&] { return started_.load() >= n; });
  }
  void Release() { release_.Notify(); }
  int started() const { return started_.load(); }
  int saw_stop() const { return saw_stop_.load(); }

 private:
  Notification release_;
  std::atomic<int> started_{0};
  std::atomic<int> saw_stop_{0};
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
