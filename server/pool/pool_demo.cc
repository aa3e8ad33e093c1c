// compute-pool-demo: the seed article's example on our WorkerPool.
//
// fib(40, 41, 42, 38, 39, 43, 37, 44) on 4 workers: the first four start at
// once, the rest wait in the FIFO queue and are picked up as workers free;
// results print in input order (each task writes its own slot, the same job
// the article's id map does), then the wall time. Last, a queue of capacity 2
// behind 4 busy workers refuses a seventh task at once.
#include <cstdint>
#include <cstdio>
#include <vector>

#include "absl/synchronization/blocking_counter.h"
#include "absl/time/clock.h"
#include "server/pool/worker_pool.h"

namespace {

// The seed's naive recursion; checks its token every call above n = 25 so a
// cancel stops it within milliseconds.
uint64_t Fib(uint32_t n, const compute::CancelToken& token, bool* stopped) {
  if (n < 2) return n;
  if (n > 25 && token.stop_requested()) {
    *stopped = true;
    return 0;
  }
  return Fib(n - 1, token, stopped) + Fib(n - 2, token, stopped);
}

}  // namespace

int main() {
  compute::PoolOptions options;
  options.max_workers = options.min_workers = 4;
  options.queue_capacity = 16;
  auto pool = compute::WorkerPool::Create(options);
  if (!pool.ok()) {
    std::fprintf(stderr, "%s\n", pool.status().ToString().c_str());
    return 1;
  }

  const std::vector<uint32_t> numbers = {40, 41, 42, 38, 39, 43, 37, 44};
  std::vector<uint64_t> results(numbers.size());
  absl::BlockingCounter pending(static_cast<int>(numbers.size()));
  absl::Time start = absl::Now();
  for (size_t i = 0; i < numbers.size(); ++i) {
    auto task = [&, i](const compute::CancelToken& token) {
      bool stopped = false;
      results[i] = Fib(numbers[i], token, &stopped);
      return stopped ? absl::CancelledError("stopped") : absl::OkStatus();
    };
    auto done = [&](const compute::TaskResult&) { pending.DecrementCount(); };
    if (!(*pool)->Submit(task, done).ok()) return 1;
  }
  pending.Wait();
  absl::Duration wall = absl::Now() - start;

  std::printf("results (input order):\n");
  for (size_t i = 0; i < numbers.size(); ++i) {
    std::printf("  fib(%u) = %llu\n", numbers[i],
                static_cast<unsigned long long>(results[i]));
  }
  std::printf("batch: %s on 4 workers\n\n", absl::FormatDuration(wall).c_str());

  // Backpressure: 4 busy workers + a queue of 2, and the next task is refused.
  options.queue_capacity = 2;
  auto small = compute::WorkerPool::Create(options);
  compute::Notification release;
  absl::BlockingCounter started(4);
  auto block = [&](const compute::CancelToken&) {
    started.DecrementCount();
    release.WaitForNotification();
    return absl::OkStatus();
  };
  auto noop = [](const compute::CancelToken&) { return absl::OkStatus(); };
  for (int i = 0; i < 4; ++i) (void)(*small)->Submit(block, nullptr);
  started.Wait();
  for (int i = 0; i < 2; ++i) (void)(*small)->Submit(noop, nullptr);
  compute::PoolStats stats = (*small)->Stats();
  std::printf("full pool: %d/%d workers busy, queue %zu/%zu\n", stats.busy,
              stats.workers, stats.queue_depth, stats.queue_capacity);
  auto refused = (*small)->Submit(noop, nullptr);
  std::printf("7th task: %s\n", refused.status().ToString().c_str());
  release.Notify();
  (*small)->Shutdown(absl::InfiniteFuture());
  (*pool)->Shutdown(absl::InfiniteFuture());
  return 0;
}
