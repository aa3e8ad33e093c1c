#include "server/service/admission.h"

#include <algorithm>

namespace compute::service {

namespace {
constexpr double kAlpha = 1.0 / 8;
}

void RunTimeEstimator::Update(std::atomic<double>& mean, double sample) {
  double old = mean.load(std::memory_order_relaxed);
  double next = old == 0 ? sample : old + kAlpha * (sample - old);
  mean.store(next, std::memory_order_relaxed);
}

void RunTimeEstimator::Record(int kind, absl::Duration run_time) {
  double ns = absl::ToDoubleNanoseconds(run_time);
  if (ns <= 0) ns = 1;
  if (kind >= 0 && kind < tasks::kNumTaskKinds) Update(mean_ns_[kind], ns);
  Update(mean_all_ns_, ns);
}

absl::Duration RunTimeEstimator::MeanRunTime(int kind) const {
  if (kind < 0 || kind >= tasks::kNumTaskKinds) return absl::ZeroDuration();
  return absl::Nanoseconds(mean_ns_[kind].load(std::memory_order_relaxed));
}

absl::Duration RunTimeEstimator::MeanRunTimeAllKinds() const {
  return absl::Nanoseconds(mean_all_ns_.load(std::memory_order_relaxed));
}

absl::Duration RunTimeEstimator::ExpectedWait(const PoolStats& stats) const {
  int workers = std::max(1, stats.workers);
  long ahead = static_cast<long>(stats.queue_depth) + stats.busy - workers + 1;
  if (ahead <= 0) return absl::ZeroDuration();
  return MeanRunTimeAllKinds() * ahead / workers;
}

namespace {
absl::Duration ClampPushback(absl::Duration d) {
  return std::clamp(d, absl::Milliseconds(1), absl::Seconds(10));
}
}  // namespace

absl::Duration RunTimeEstimator::SlotPushback(const PoolStats& stats) const {
  return ClampPushback(MeanRunTimeAllKinds() / std::max(1, stats.workers));
}

absl::Duration RunTimeEstimator::WaitPushback(const PoolStats& stats) const {
  return ClampPushback(ExpectedWait(stats));
}

}  // namespace compute::service
