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
// Thread-safety: immutable; Collect may be called concurrently.
#ifndef COMPUTE_SERVER_METRICS_PROCESS_COLLECTOR_H_
#define COMPUTE_SERVER_METRICS_PROCESS_COLLECTOR_H_

#include <string>
#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

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
  const Source source_;
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_PROCESS_COLLECTOR_H_
