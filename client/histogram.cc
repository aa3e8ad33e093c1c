#include "client/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace compute::client {

int Histogram::BucketOf(int64_t value) {
  if (value < kSubBuckets) return value < 0 ? 0 : static_cast<int>(value);
  uint64_t v = static_cast<uint64_t>(value);
  int msb = 63 - std::countl_zero(v);
  int group = msb - kSubBucketBits + 1;  // >= 1
  int sub = static_cast<int>(v >> (msb - kSubBucketBits)) - kSubBuckets;
  return group * kSubBuckets + sub;
}

int64_t Histogram::BucketLow(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  int group = bucket >> kSubBucketBits;
  int64_t sub = bucket & (kSubBuckets - 1);
  return (kSubBuckets + sub) << (group - 1);
}

int64_t Histogram::BucketHigh(int bucket) {
  if (bucket < kSubBuckets) return bucket;
  int group = bucket >> kSubBucketBits;
  return BucketLow(bucket) + ((int64_t{1} << (group - 1)) - 1);
}

void Histogram::Record(int64_t value) {
  value = std::max<int64_t>(value, 0);
  ++counts_[BucketOf(value)];
  ++count_;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
  sum_ += static_cast<double>(value);
}

void Histogram::Merge(const Histogram& other) {
  for (int i = 0; i < kNumBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
  sum_ += other.sum_;
}

Histogram Histogram::Since(const Histogram& earlier) const {
  Histogram d;
  for (int i = 0; i < kNumBuckets; ++i) {
    uint64_t n =
        counts_[i] >= earlier.counts_[i] ? counts_[i] - earlier.counts_[i] : 0;
    if (n == 0) continue;
    d.counts_[i] = n;
    d.count_ += n;
    d.min_ = std::min(d.min_, BucketLow(i));
    d.max_ = std::max(d.max_, std::min(BucketHigh(i), max_));
  }
  d.sum_ = std::max(0.0, sum_ - earlier.sum_);
  return d;
}

int64_t Histogram::Percentile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = std::max<uint64_t>(
      1, static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_))));
  uint64_t seen = 0;
  for (int i = 0; i < kNumBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) {
      // A snapshot taken during a Record may lag in min/max: clamp softly.
      int64_t v = std::min(BucketHigh(i), max_);
      return min_ <= max_ ? std::max(v, min_) : v;
    }
  }
  return max_;
}

ConcurrentHistogram::ConcurrentHistogram()
    : counts_(new std::atomic<uint64_t>[Histogram::kNumBuckets]) {
  for (int i = 0; i < Histogram::kNumBuckets; ++i) {
    counts_[i].store(0, std::memory_order_relaxed);
  }
}

void ConcurrentHistogram::Record(int64_t value) {
  value = std::max<int64_t>(value, 0);
  counts_[Histogram::BucketOf(value)].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
  int64_t seen = min_.load(std::memory_order_relaxed);
  while (value < seen &&
         !min_.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
  seen = max_.load(std::memory_order_relaxed);
  while (value > seen &&
         !max_.compare_exchange_weak(seen, value, std::memory_order_relaxed)) {
  }
}

Histogram ConcurrentHistogram::Snapshot() const {
  Histogram h;
  for (int i = 0; i < Histogram::kNumBuckets; ++i) {
    h.counts_[i] = counts_[i].load(std::memory_order_relaxed);
    h.count_ += h.counts_[i];
  }
  h.min_ = min_.load(std::memory_order_relaxed);
  h.max_ = max_.load(std::memory_order_relaxed);
  h.sum_ = static_cast<double>(sum_.load(std::memory_order_relaxed));
  return h;
}

}  // namespace compute::client
