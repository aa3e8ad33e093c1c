// ProcessCollector: the standard process_* series that Prometheus clients in
// other languages export and prometheus-cpp lacks, read from /proc at scrape
// time (Linux only), with the Go client's names and help texts:
//   process_cpu_seconds_total, process_resident_memory_bytes,
//   process_virtual_memory_bytes, process_open_fds, process_max_fds,
//   process_start_time_seconds, and process_threads.
//
// A file that cannot be read or parsed drops only the series that need it.
// The paths and the two sysconf values are injectable so that tests can feed
// a fake /proc.
//
// process_start_time_seconds is read once and kept: the kernel's boot time
// (btime in /proc/stat) is the wall clock less the time since boot, so an
// NTP step or a slewed clock moves it, and a start time that moved at each
// scrape read as restarts to `changes(process_start_time_seconds[30m])`
// (the ComputeRestarting alert), the false page prometheus/client_golang's
// issue 289 describes.
//
// Thread-safety: Collect may be called concurrently; the kept start time is
// guarded by a mutex.
#ifndef COMPUTE_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define COMPUTE_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"
#include "server/pool/sync.h"

namespace compute::metrics {

class ProcessCollector final : public prometheus::Collectable {
 public:
  struct Source {
    std::string self = "/proc/self";  // stat, limits, fd/
    std::string stat = "/proc/stat";  // btime
    long ticks_per_second = 0;        // 0: sysconf(_SC_CLK_TCK)
    long page_size = 0;               // 0: sysconf(_SC_PAGESIZE)
  };

  ProcessCollector() : ProcessCollector(Source()) {}
  explicit ProcessCollector(Source source);

  std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  // The start time from the process's start ticks since boot: computed at
  // the first call that can read the boot time, then kept.
  std::optional<double> StartTime(double start_ticks) const;

  const Source source_;
  mutable Mutex mu_;
  // Unix seconds, from the first scrape that could read it.
  mutable std::optional<double> start_time_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_PROCESS_COLLECTOR_H_
