// DurationHistogram: a Prometheus histogram of durations laid out in
// ShardedCounters, so that an observation is two adds to the observing
// thread's own stripe: no lock, no locked instruction.
//
// Layout, from a base index: one counter per bucket (not cumulative; the
// bucket is the first upper bound >= the value, Prometheus's `le`), one for
// +Inf, then the sum in nanoseconds (integral, so exact and lock-free; it
// wraps after 584 years of summed time). The count is the sum of the
// buckets, so `_count` always equals the +Inf bucket in the exposition.
//
// Thread-safety: immutable after construction; Observe is as thread-safe as
// ShardedCounters::Add.
#ifndef COMPUTE_SERVER_METRICS_DURATION_HISTOGRAM_H_
#define COMPUTE_SERVER_METRICS_DURATION_HISTOGRAM_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "prometheus/client_metric.h"
#include "server/metrics/sharded_counters.h"

namespace compute::metrics {

class DurationHistogram {
 public:
  // Upper bounds in seconds, ascending, > 0.
  explicit DurationHistogram(std::vector<double> bounds_seconds);

  // 10 us to 60 s in 1-2.5-5 steps: every latency this service has, from a
  // refusal or a no-op task's queue wait (tens of microseconds) to the
  // longest spin. (Prometheus shows the smallest as le="1e-05".)
  static const DurationHistogram& Latency();

  const std::vector<double>& bounds() const { return bounds_; }
  // Counters one histogram takes.
  size_t slots() const { return bounds_.size() + 2; }

  // Index (from base) of the bucket counter for `ns` nanoseconds: the first
  // bound >= ns (bounds().size() is +Inf). A scan from the smallest bound:
  // most observations are short, so it usually stops in a step or two, and
  // a steady workload keeps the branch predicted.
  size_t BucketOf(int64_t ns) const {
    size_t bucket = 0;
    while (bucket < bounds_ns_.size() && ns > bounds_ns_[bucket]) ++bucket;
    return bucket;
  }
  size_t BucketOf(absl::Duration d) const {
    return BucketOf(absl::ToInt64Nanoseconds(d));
  }

  // Records `d` in the histogram whose counters start at `base`.
  void Observe(ShardedCounters::Stripe& stripe, size_t base,
               absl::Duration d) const {
    const int64_t ns = absl::ToInt64Nanoseconds(d);
    stripe.Add(base + BucketOf(ns));
    if (ns > 0) {
      stripe.Add(base + bounds_.size() + 1, static_cast<uint64_t>(ns));
    }
  }

  // The histogram whose counters start at `snapshot[base]`.
  prometheus::ClientMetric::Histogram ToHistogram(
      const std::vector<uint64_t>& snapshot, size_t base) const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> bounds_ns_;
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_DURATION_HISTOGRAM_H_
