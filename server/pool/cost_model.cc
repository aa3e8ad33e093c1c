#include "server/pool/cost_model.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace compute {

CostModel::CostModel(absl::Span<const double> prior_seconds_per_unit)
    : kinds_(prior_seconds_per_unit.size()),
      log_coef_(new std::atomic<double>[prior_seconds_per_unit.size()]),
      log_prior_(new double[prior_seconds_per_unit.size()]),
      next_probe_ns_(new std::atomic<int64_t>[prior_seconds_per_unit.size()]),
      best_log_coef_(new std::atomic<double>[prior_seconds_per_unit.size()]),
      probe_interval_ns_(
          new std::atomic<int64_t>[prior_seconds_per_unit.size()]),
      probes_ended_(new std::atomic<uint64_t>[prior_seconds_per_unit.size() *
                                              kProbeEnds]()) {
  for (size_t i = 0; i < kinds_; ++i) {
    double prior = prior_seconds_per_unit[i] > 0 &&
                           std::isfinite(prior_seconds_per_unit[i])
                       ? prior_seconds_per_unit[i]
                       : 1e-9;
    log_prior_[i] = std::log(prior);
    log_coef_[i].store(log_prior_[i], std::memory_order_relaxed);
    best_log_coef_[i].store(log_prior_[i], std::memory_order_relaxed);
    next_probe_ns_[i].store(std::numeric_limits<int64_t>::min(),
                            std::memory_order_relaxed);
    probe_interval_ns_[i].store(absl::ToInt64Nanoseconds(kMinProbeInterval),
                                std::memory_order_relaxed);
  }
}

bool CostModel::TakeProbe(int kind, double units, absl::Duration time_left,
                          absl::Time now) {
  if (kind < 0 || static_cast<size_t>(kind) >= kinds_ || !(units > 0) ||
      !std::isfinite(units)) {
    return false;
  }
  // Would not fit at the best rate the kind has shown either (NaN units
  // fail the test above).
  if (ProbeEstimate(kind, units) > time_left) return false;
  const int64_t now_ns = absl::ToUnixNanos(now);
  int64_t due = next_probe_ns_[kind].load(std::memory_order_relaxed);
  if (now_ns < due) return false;
  // Not due again until ProbeEnded, or, should it never come, until this
  // probe's deadline has passed (at least kMaxProbeInterval): one call at a
  // time takes it, and probes with long deadlines do not pile up.
  return next_probe_ns_[kind].compare_exchange_strong(
      due,
      absl::ToUnixNanos(
          now + std::max(kMaxProbeInterval, time_left + kMinProbeInterval)),
      std::memory_order_relaxed);
}

void CostModel::ProbeEnded(int kind, ProbeEnd end, absl::Time now) {
  if (kind < 0 || static_cast<size_t>(kind) >= kinds_) return;
  probes_ended_[kind * kProbeEnds + static_cast<int>(end)].fetch_add(
      1, std::memory_order_relaxed);
  std::atomic<int64_t>& interval = probe_interval_ns_[kind];
  int64_t ns = interval.load(std::memory_order_relaxed);
  if (end == ProbeEnd::kInTime) {
    ns = absl::ToInt64Nanoseconds(kMinProbeInterval);
  } else {
    ns = std::min(2 * ns, absl::ToInt64Nanoseconds(kMaxProbeInterval));
  }
  interval.store(ns, std::memory_order_relaxed);
  next_probe_ns_[kind].store(absl::ToUnixNanos(now + absl::Nanoseconds(ns)),
                             std::memory_order_relaxed);
}

void CostModel::ProbeRefused(int kind, absl::Time now) {
  if (kind < 0 || static_cast<size_t>(kind) >= kinds_) return;
  probes_ended_[kind * kProbeEnds + static_cast<int>(ProbeEnd::kNoSample)]
      .fetch_add(1, std::memory_order_relaxed);
  const int64_t ns = probe_interval_ns_[kind].load(std::memory_order_relaxed);
  next_probe_ns_[kind].store(absl::ToUnixNanos(now + absl::Nanoseconds(ns)),
                             std::memory_order_relaxed);
}

uint64_t CostModel::ProbesEnded(int kind, ProbeEnd end) const {
  if (kind < 0 || static_cast<size_t>(kind) >= kinds_) return 0;
  return probes_ended_[kind * kProbeEnds + static_cast<int>(end)].load(
      std::memory_order_relaxed);
}

absl::Duration CostModel::ProbeEstimate(int kind, double units) const {
  if (kind < 0 || static_cast<size_t>(kind) >= kinds_) {
    return absl::ZeroDuration();
  }
  const double seconds =
      std::exp(best_log_coef_[kind].load(std::memory_order_relaxed)) *
      std::max(0.0, units);
  return absl::Seconds(std::min(seconds, 86400.0));
}

double CostModel::SecondsPerUnit(int kind) const {
  if (kind < 0 || static_cast<size_t>(kind) >= kinds_) return 0;
  return std::exp(log_coef_[kind].load(std::memory_order_relaxed));
}

absl::Duration CostModel::Estimate(int kind, double units) const {
  double seconds = SecondsPerUnit(kind) * std::max(0.0, units);
  // Past a day is "longer than any deadline": keep the Duration finite.
  return absl::Seconds(std::min(seconds, 86400.0));
}

void CostModel::Record(int kind, double units, absl::Duration run_time,
                       bool lower_bound) {
  // A NaN would stay in the running mean for good, and an infinite size
  // says nothing about speed (scheduler_fuzzer found both).
  if (kind < 0 || static_cast<size_t>(kind) >= kinds_ || !(units > 0) ||
      !std::isfinite(units)) {
    return;
  }
  double seconds = absl::ToDoubleSeconds(run_time);
  if (!(seconds > 0)) return;  // too fast to measure, or no time at all
  std::atomic<double>& slot = log_coef_[kind];
  double current = slot.load(std::memory_order_relaxed);
  // Too small a task to say anything about the rate (see the header). By
  // its estimate, not its run time: among tiny tasks, those that happened
  // to run long (descheduled) would teach alone. At the lower of the prior
  // and the current rate: at the current one alone, a rate raised by small
  // tasks let smaller ones teach, and they raised it further.
  if (units * std::exp(std::min(current, log_prior_[kind])) <
      kMinSampleSeconds) {
    return;
  }
  double error = std::log(seconds / units) - current;
  if (lower_bound && error <= 0) return;
  const double max_step = std::log(kMaxStepFactor);
  const double next = current + kAlpha * std::clamp(error, -max_step, max_step);
  slot.store(next, std::memory_order_relaxed);
  if (next < best_log_coef_[kind].load(std::memory_order_relaxed)) {
    best_log_coef_[kind].store(next, std::memory_order_relaxed);
  }
}

}  // namespace compute
