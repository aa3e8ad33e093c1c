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

// Completed tasks, and the calls that failed or were refused.
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

std::shared_ptr<const LoadReporter::Report> LoadReporter::Current() {
  const absl::Time now = pool_.clock().Now();
  MutexLock lock(&mu_);
  if (report_ != nullptr && now - made_ < max_age_) return report_;
  Snapshot current{now, pool_.Stats(), ProcessCpuSeconds()};
  if (report_ == nullptr) older_ = newer_ = current;
  report_ = std::make_shared<const Report>(
      Make(current.stats, older_.stats, now - older_.at,
           current.cpu_seconds - older_.cpu_seconds, cpus_,
           current.stats.target_queue_wait));
  made_ = now;
  if (now - newer_.at >= kRateWindow) {
    older_ = std::move(newer_);
    newer_ = std::move(current);
  }
  return report_;
}

LoadReporter::Report LoadReporter::Make(const PoolStats& stats,
                                        const PoolStats& before,
                                        absl::Duration elapsed,
                                        double cpu_seconds, double cpus,
                                        absl::Duration target_queue_wait) {
  const double seconds = absl::ToDoubleSeconds(elapsed);
  auto per_second = [seconds](uint64_t now, uint64_t then) {
    return seconds > 0 && now >= then
               ? static_cast<double>(now - then) / seconds
               : 0.0;
  };
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
  orca.set_rps_fractional(
      per_second(stats.completed_total(), before.completed_total()));
  orca.set_eps(per_second(Errors(stats), Errors(before)));
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
