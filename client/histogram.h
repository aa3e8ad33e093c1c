// Latency histograms with HdrHistogram's log-linear bucket layout.
//
// Values (nanoseconds here, but any non-negative int64) below 2^7 have a
// bucket each; above, every power-of-two range is split into 2^7 equal
// buckets, so a bucket is never wider than 1/128 of its values (< 0.8%
// error) and the whole int64 range fits in 7296 counters. Recording is an
// index computation and one increment, so a load generator can record every
// call on its completion thread instead of keeping all latencies and sorting
// them at the end; percentiles are read by one walk over the counters.
//
// Histogram is a plain value (not thread-safe). ConcurrentHistogram is the
// recording side shared by many threads: relaxed atomic counters, no lock;
// Snapshot() copies it into a Histogram for reading while writers go on.
#ifndef COMPUTE_CLIENT_HISTOGRAM_H_
#define COMPUTE_CLIENT_HISTOGRAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace compute::client {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;
  static constexpr int kNumBuckets = (64 - kSubBucketBits) * kSubBuckets;

  // The bucket of `value` (negative counts as 0), and its value range.
  static int BucketOf(int64_t value);
  static int64_t BucketLow(int bucket);
  static int64_t BucketHigh(int bucket);  // inclusive

  Histogram() : counts_(kNumBuckets, 0) {}

  void Record(int64_t value);
  void Merge(const Histogram& other);
  // This minus an earlier snapshot of the same recorder: what was recorded
  // in between. min/max become the bounds of the non-empty buckets.
  Histogram Since(const Histogram& earlier) const;

  uint64_t count() const { return count_; }
  int64_t min() const { return count_ == 0 ? 0 : min_; }
  int64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0 : sum_ / count_; }
  uint64_t count_at(int bucket) const { return counts_[bucket]; }

  // The value at quantile q (0..1): the upper bound of the bucket holding
  // that rank, within [min, max]. 0 when empty.
  int64_t Percentile(double q) const;

 private:
  friend class ConcurrentHistogram;
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  int64_t min_ = INT64_MAX;
  int64_t max_ = 0;
  double sum_ = 0;
};

class ConcurrentHistogram {
 public:
  ConcurrentHistogram();
  void Record(int64_t value);
  // Each counter is read atomically; the set is as consistent as the
  // moment allows (a concurrent Record may be half-visible).
  Histogram Snapshot() const;

 private:
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<int64_t> min_{INT64_MAX};
  std::atomic<int64_t> max_{0};
  std::atomic<int64_t> sum_{0};
};

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_HISTOGRAM_H_
