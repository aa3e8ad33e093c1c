#include "client/histogram.h"

#include <random>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace compute::client {
namespace {

TEST(HistogramTest, BucketsAreContiguousAndNarrow) {
  for (int b = 1; b < Histogram::kNumBuckets; ++b) {
    ASSERT_EQ(Histogram::BucketLow(b), Histogram::BucketHigh(b - 1) + 1) << b;
  }
  EXPECT_EQ(Histogram::BucketHigh(Histogram::kNumBuckets - 1), INT64_MAX);
  for (int64_t v : {int64_t{0}, int64_t{1}, int64_t{127}, int64_t{128},
                    int64_t{1000}, int64_t{123456789}, INT64_MAX}) {
    int b = Histogram::BucketOf(v);
    EXPECT_LE(Histogram::BucketLow(b), v);
    EXPECT_GE(Histogram::BucketHigh(b), v);
    double width = Histogram::BucketHigh(b) - Histogram::BucketLow(b) + 1.0;
    if (v < Histogram::kSubBuckets) {
      EXPECT_EQ(width, 1) << v;  // small values are exact
    } else {
      EXPECT_LE(width / Histogram::BucketLow(b), 1 / 128.0) << v;
    }
  }
}

TEST(HistogramTest, PercentilesWithinOnePercent) {
  Histogram h;
  for (int64_t v = 1; v <= 100000; ++v) h.Record(v * 1000);  // 1us..100ms
  EXPECT_EQ(h.count(), 100000u);
  EXPECT_EQ(h.min(), 1000);
  EXPECT_EQ(h.max(), 100000000);
  for (double q : {0.5, 0.9, 0.99, 0.999}) {
    double exact = q * 100000 * 1000;
    EXPECT_NEAR(h.Percentile(q), exact, exact * 0.01) << q;
  }
  EXPECT_EQ(h.Percentile(1.0), h.max());
  EXPECT_NEAR(h.mean(), 50000.5 * 1000, 1);
}

TEST(HistogramTest, EmptyAndSingle) {
  Histogram h;
  EXPECT_EQ(h.Percentile(0.99), 0);
  h.Record(777);
  EXPECT_EQ(h.Percentile(0.5), 777);
  EXPECT_EQ(h.Percentile(0.999), 777);
}

TEST(HistogramTest, SinceIsTheInterval) {
  Histogram a;
  a.Record(10);
  Histogram b = a;
  b.Record(5000);
  b.Record(6000);
  Histogram d = b.Since(a);
  EXPECT_EQ(d.count(), 2u);
  EXPECT_GE(d.Percentile(0.01), 4900);
}

TEST(ConcurrentHistogramTest, ManyWritersLoseNothing) {
  ConcurrentHistogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i) h.Record(i + t);
    });
  }
  for (auto& t : threads) t.join();
  Histogram s = h.Snapshot();
  EXPECT_EQ(s.count(), 40000u);
  EXPECT_EQ(s.min(), 0);
  EXPECT_EQ(s.max(), 10002);
}

}  // namespace
}  // namespace compute::client
