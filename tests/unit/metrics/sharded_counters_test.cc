#include "server/metrics/sharded_counters.h"

#include <atomic>
#include <limits>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/metrics/duration_histogram.h"
#include "server/pool/sync.h"

namespace compute::metrics {
namespace {

TEST(ShardedCountersTest, StartsAtZeroAndSums) {
  ShardedCounters c(20);
  EXPECT_EQ(c.Snapshot(), std::vector<uint64_t>(20, 0));
  c.Add(0);
  c.Add(19, 5);
  c.Local().Add(19);
  std::vector<uint64_t> s = c.Snapshot();
  EXPECT_EQ(s[0], 1u);
  EXPECT_EQ(s[19], 6u);
  EXPECT_EQ(s[1], 0u);
  EXPECT_EQ(c.stripes(), 2u) << "this thread's and the overflow stripe";
}

// Each thread its own stripe; the totals are exact while the threads add
// and scrapes read.
TEST(ShardedCountersTest, ConcurrentAddsAreExact) {
  ShardedCounters c(9);
  constexpr int kThreads = 6;
  constexpr int kAdds = 50000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&c, t] {
      for (int i = 0; i < kAdds; ++i) {
        c.Add(static_cast<size_t>(i % 9));
        c.Add(8, static_cast<uint64_t>(t));
      }
    });
  }
  std::vector<uint64_t> last(9, 0);
  for (int i = 0; i < 100; ++i) {
    std::vector<uint64_t> now = c.Snapshot();
    for (size_t k = 0; k < now.size(); ++k) EXPECT_GE(now[k], last[k]);
    last = now;
  }
  for (auto& t : threads) t.join();
  std::vector<uint64_t> s = c.Snapshot();
  uint64_t per_slot = kThreads * (kAdds / 9 + 1);  // 50000 % 9 = 5
  for (size_t i = 0; i < 5; ++i) EXPECT_EQ(s[i], per_slot) << i;
  for (size_t i = 5; i < 8; ++i) EXPECT_EQ(s[i], per_slot - kThreads) << i;
  EXPECT_EQ(s[8],
            (per_slot - kThreads) + uint64_t{kAdds} * (0 + 1 + 2 + 3 + 4 + 5));
}

// A thread that exits gives its slot, and its stripe with the counts in it,
// to the next new thread: stripes stay about as many as live threads, and
// no count is lost.
TEST(ShardedCountersTest, ExitedThreadsStripesAreReused) {
  ShardedCounters c(1);
  constexpr int kRounds = 50;
  for (int i = 0; i < kRounds; ++i) {
    std::thread([&c] { c.Add(0, 2); }).join();
  }
  EXPECT_EQ(c.Snapshot()[0], 2u * kRounds);
  EXPECT_LE(c.stripes(), 3u) << "one thread at a time: its slot is reused";
}

// Threads beyond kMaxSlots share the overflow stripe, with atomic adds.
TEST(ShardedCountersTest, MoreThreadsThanSlots) {
  ShardedCounters c(2);
  constexpr size_t kThreads = ShardedCounters::kMaxSlots + 40;
  std::vector<std::thread> threads;
  Notification go;
  std::atomic<size_t> ready{0};
  for (size_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      // Hold a slot until every thread has one.
      ShardedCounters::ThreadSlot();
      ready.fetch_add(1);
      go.WaitForNotification();
      for (int i = 0; i < 1000; ++i) c.Add(1);
    });
  }
  while (ready.load() < kThreads) std::this_thread::yield();
  go.Notify();
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.Snapshot()[1], kThreads * 1000);
  EXPECT_EQ(c.Snapshot()[0], 0u);
}

TEST(DurationHistogramTest, BucketBoundsAreInclusive) {
  DurationHistogram h({0.001, 0.01});
  EXPECT_EQ(h.slots(), 4u);
  EXPECT_EQ(h.BucketOf(absl::ZeroDuration()), 0u);
  EXPECT_EQ(h.BucketOf(-absl::Seconds(1)), 0u);
  EXPECT_EQ(h.BucketOf(absl::Milliseconds(1)), 0u);
  EXPECT_EQ(h.BucketOf(absl::Milliseconds(1) + absl::Nanoseconds(1)), 1u);
  EXPECT_EQ(h.BucketOf(absl::Milliseconds(10)), 1u);
  EXPECT_EQ(h.BucketOf(absl::Seconds(1)), 2u);
  EXPECT_EQ(h.BucketOf(absl::InfiniteDuration()), 2u);

  ShardedCounters c(1 + h.slots());
  h.Observe(c.Local(), 1, absl::Microseconds(500));
  h.Observe(c.Local(), 1, absl::Seconds(2));
  h.Observe(c.Local(), 1, absl::Milliseconds(5));
  auto out = h.ToHistogram(c.Snapshot(), 1);
  EXPECT_EQ(out.sample_count, 3u);
  EXPECT_DOUBLE_EQ(out.sample_sum, 2.0055);
  ASSERT_EQ(out.bucket.size(), 3u);
  EXPECT_EQ(out.bucket[0].cumulative_count, 1u);
  EXPECT_EQ(out.bucket[1].cumulative_count, 2u);
  EXPECT_EQ(out.bucket[2].cumulative_count, 3u);
  EXPECT_EQ(out.bucket[2].upper_bound, std::numeric_limits<double>::infinity());
}

}  // namespace
}  // namespace compute::metrics
