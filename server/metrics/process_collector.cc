#include "server/metrics/process_collector.h"

#include <unistd.h>

#include <filesystem>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/base/file.h"
#include "server/metrics/families.h"

namespace compute::metrics {
namespace {

using prometheus::MetricType;

// The file's text, or nullopt: a file that cannot be read drops only the
// series that need it.
std::optional<std::string> ReadProcFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return std::nullopt;
  return *std::move(text);
}

// The fields of /proc/<pid>/stat that we use. The second field, the command
// name, is in parentheses and may itself hold spaces and parentheses, so
// fields are counted from the last ')'.
struct Stat {
  double utime_ticks = 0;
  double stime_ticks = 0;
  double threads = 0;
  double start_ticks = 0;  // since boot
  double vsize_bytes = 0;
  double rss_pages = 0;
};

std::optional<Stat> ParseStat(const std::string& text) {
  size_t paren = text.rfind(')');
  if (paren == std::string::npos) return std::nullopt;
  std::vector<absl::string_view> f = absl::StrSplit(
      absl::string_view(text).substr(paren + 1), ' ', absl::SkipWhitespace());
  // f[0] is field 3 (state); man 5 proc numbers fields from 1.
  auto field = [&](int number, double* out) {
    size_t i = static_cast<size_t>(number - 3);
    return i < f.size() && absl::SimpleAtod(f[i], out);
  };
  Stat s;
  if (!field(14, &s.utime_ticks) || !field(15, &s.stime_ticks) ||
      !field(20, &s.threads) || !field(22, &s.start_ticks) ||
      !field(23, &s.vsize_bytes) || !field(24, &s.rss_pages)) {
    return std::nullopt;
  }
  return s;
}

// "btime <seconds since the epoch>" in /proc/stat.
std::optional<double> ParseBootTime(const std::string& text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      double seconds;
      if (absl::SimpleAtod(line, &seconds)) return seconds;
    }
  }
  return std::nullopt;
}

// The soft limit on the "Max open files" line of /proc/<pid>/limits.
std::optional<double> ParseMaxFds(const std::string& text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, "Max open files")) continue;
    std::vector<absl::string_view> f =
        absl::StrSplit(line, ' ', absl::SkipWhitespace());
    double soft;
    if (!f.empty() && absl::SimpleAtod(f[0], &soft)) return soft;
  }
  return std::nullopt;
}

std::optional<double> CountOpenFds(const std::string& dir) {
  std::error_code error;
  std::filesystem::directory_iterator it(dir, error);
  if (error) return std::nullopt;
  double count = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(error)) {
    if (error) return std::nullopt;
    ++count;
  }
  // The iterator's own descriptor is among them while it is open.
  return count;
}

void Add(std::vector<prometheus::MetricFamily>& families, std::string name,
         std::string help, MetricType type, double value) {
  auto family = MakeFamily(std::move(name), std::move(help), type);
  AddValue(family, {}, value);
  families.push_back(std::move(family));
}

}  // namespace

ProcessCollector::ProcessCollector(Source source)
    : source_([&] {
        if (source.ticks_per_second <= 0) {
          source.ticks_per_second = sysconf(_SC_CLK_TCK);
        }
        if (source.page_size <= 0) source.page_size = sysconf(_SC_PAGESIZE);
        return std::move(source);
      }()) {}

std::optional<double> ProcessCollector::StartTime(double start_ticks) const {
  MutexLock lock(&mu_);
  if (start_time_) return start_time_;
  std::optional<std::string> proc_stat = ReadProcFile(source_.stat);
  std::optional<double> boot =
      proc_stat ? ParseBootTime(*proc_stat) : std::nullopt;
  if (boot) {
    start_time_ =
        *boot + start_ticks / static_cast<double>(source_.ticks_per_second);
  }
  return start_time_;
}

std::vector<prometheus::MetricFamily> ProcessCollector::Collect() const {
  std::vector<prometheus::MetricFamily> families;
  const double ticks = static_cast<double>(source_.ticks_per_second);
  std::optional<std::string> stat_text = ReadProcFile(source_.self + "/stat");
  std::optional<Stat> stat = stat_text ? ParseStat(*stat_text) : std::nullopt;
  if (stat) {
    Add(families, "process_cpu_seconds_total",
        "Total user and system CPU time spent in seconds.", MetricType::Counter,
        (stat->utime_ticks + stat->stime_ticks) / ticks);
  }
  if (std::optional<double> fds = CountOpenFds(source_.self + "/fd")) {
    Add(families, "process_open_fds", "Number of open file descriptors.",
        MetricType::Gauge, *fds);
  }
  std::optional<std::string> limits = ReadProcFile(source_.self + "/limits");
  if (std::optional<double> max =
          limits ? ParseMaxFds(*limits) : std::nullopt) {
    Add(families, "process_max_fds", "Maximum number of open file descriptors.",
        MetricType::Gauge, *max);
  }
  if (stat) {
    Add(families, "process_virtual_memory_bytes",
        "Virtual memory size in bytes.", MetricType::Gauge, stat->vsize_bytes);
    Add(families, "process_resident_memory_bytes",
        "Resident memory size in bytes.", MetricType::Gauge,
        stat->rss_pages * static_cast<double>(source_.page_size));
  }
  if (std::optional<double> start =
          stat ? StartTime(stat->start_ticks) : std::nullopt) {
    Add(families, "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        MetricType::Gauge, *start);
  }
  if (stat) {
    Add(families, "process_threads", "Number of OS threads in the process.",
        MetricType::Gauge, stat->threads);
  }
  return families;
}

}  // namespace compute::metrics
