#include "server/service/load_report.h"

#include <sys/resource.h>

#include <algorithm>

#include "absl/strings/str_format.h"
#include "xds/data/orca/v3/orca_load_report.pb.h"

namespace compute::service {
namespace {

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// The calls that failed or were refused.
uint64_t Errors(const PoolStats& s) {
  uint64_t errors = 0;
  for (int o = 0; o < kNumTaskOutcomes; ++o) {
    auto outcome = static_cast<TaskOutcome>(o);
    if (outcome != TaskOutcome::kOk && outcome != TaskOutcome::kCancelled) {
      errors += s.completed[o];
    }
  }
  for (uint64_t r : s.rejected_by) errors += r;
  return errors;
}

}  // namespace

LoadReporter::LoadReporter(const WorkerPool& pool, double cpus,
                           absl::Duration attach_interval,
                           absl::Duration max_age)
    : pool_(pool),
      cpus_(cpus > 0 ? cpus : 1.0),
      attach_interval_(attach_interval),
      max_age_(max_age) {}

bool LoadReporter::Due() {
  if (attach_interval_ <= absl::ZeroDuration()) return true;
  // Per thread (shared by the reporters of one process, which is one in a
  // server): no lock, one clock read.
  static thread_local int64_t last_ticks = 0;
  static thread_local bool attached = false;
  const Clock& clock = pool_.clock();
  const int64_t now = clock.Ticks();
  if (attached && clock.TicksToDuration(now - last_ticks) < attach_interval_) {
    return false;
  }
  attached = true;
  last_ticks = now;
  return true;
}

LoadReporter::Counts LoadReporter::CountsOf(const PoolStats& stats,
                                            absl::Time at, double cpu_seconds) {
  return {at, static_cast<double>(stats.completed_total()),
          static_cast<double>(Errors(stats)), cpu_seconds};
}

LoadReporter::Counts LoadReporter::Between(const Counts& a, const Counts& b,
                                           absl::Time at) {
  if (b.at <= a.at) return b;  // no time between them to spread over
  const double f = absl::FDivDuration(at - a.at, b.at - a.at);
  return {at, a.completed + f * (b.completed - a.completed),
          a.errors + f * (b.errors - a.errors),
          a.cpu_seconds + f * (b.cpu_seconds - a.cpu_seconds)};
}

std::shared_ptr<const LoadReporter::Report> LoadReporter::Current() {
  const absl::Time now = pool_.clock().Now();
  MutexLock lock(&mu_);
  if (report_ != nullptr && now - latest_.at < max_age_) return report_;
  const PoolStats stats = pool_.Stats();
  Counts current = CountsOf(stats, now, ProcessCpuSeconds());
  if (report_ == nullptr) {
    older_ = newer_ = current;
  } else if (now - latest_.at > kRateWindow) {
    // No report for over a window: the window would span the whole quiet
    // spell (after 12 s idle, 32 calls/s read 2.6-4.2 for a second). It
    // starts kRateWindow ago instead, what happened since the last report
    // spread evenly over the spell (all that is known of it).
    older_ = Between(latest_, current, now - kRateWindow);
    newer_ = current;
  }
  report_ = std::make_shared<const Report>(
      MakeFrom(stats, current, older_, cpus_, stats.target_queue_wait));
  latest_ = current;
  if (now - newer_.at >= kRateWindow) {
    older_ = newer_;
    newer_ = current;
  }
  return report_;
}

LoadReporter::Report LoadReporter::Make(const PoolStats& stats,
                                        const PoolStats& before,
                                        absl::Duration elapsed,
                                        double cpu_seconds, double cpus,
                                        absl::Duration target_queue_wait) {
  const absl::Time at = absl::UnixEpoch() + elapsed;
  return MakeFrom(stats, CountsOf(stats, at, cpu_seconds),
                  CountsOf(before, absl::UnixEpoch(), 0), cpus,
                  target_queue_wait);
}

LoadReporter::Report LoadReporter::MakeFrom(const PoolStats& stats,
                                            const Counts& now,
                                            const Counts& before, double cpus,
                                            absl::Duration target_queue_wait) {
  const double seconds = absl::ToDoubleSeconds(now.at - before.at);
  auto per_second = [seconds](double to, double from) {
    return seconds > 0 ? std::max(0.0, to - from) / seconds : 0.0;
  };
  const double cpu_seconds = now.cpu_seconds - before.cpu_seconds;
  const absl::Duration target = target_queue_wait == absl::InfiniteDuration()
                                    ? absl::Milliseconds(100)
                                    : target_queue_wait;
  xds::data::orca::v3::OrcaLoadReport orca;
  orca.set_application_utilization(
      static_cast<double>(stats.busy) / std::max(1, stats.max_workers) +
      absl::FDivDuration(stats.expected_wait, target));
  orca.set_cpu_utilization(seconds > 0 ? std::max(0.0, cpu_seconds) /
                                             (seconds * (cpus > 0 ? cpus : 1.0))
                                       : 0.0);
  orca.set_rps_fractional(per_second(now.completed, before.completed));
  orca.set_eps(per_second(now.errors, before.errors));
  const double expected_wait_ms =
      absl::ToDoubleMilliseconds(stats.expected_wait);
  (*orca.mutable_named_metrics())["queue_depth"] =
      static_cast<double>(stats.queue_depth);
  (*orca.mutable_named_metrics())["expected_wait_ms"] = expected_wait_ms;
  (*orca.mutable_named_metrics())["workers"] =
      static_cast<double>(stats.max_workers);
  Report report;
  orca.SerializeToString(&report.orca);
  report.text = absl::StrFormat(
      "application_utilization=%.3f,cpu_utilization=%.3f,rps_fractional=%.1f,"
      "eps=%.1f,queue_depth=%d,expected_wait_ms=%.1f,workers=%d",
      orca.application_utilization(), orca.cpu_utilization(),
      orca.rps_fractional(), orca.eps(), stats.queue_depth, expected_wait_ms,
      stats.max_workers);
  return report;
}

}  // namespace compute::service
