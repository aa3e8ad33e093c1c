#include "server/pool/cpu_count.h"

#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/base/file.h"
#include "server/pool/cgroup.h"

namespace compute {
namespace {

// A set sized for the CPUs this machine may have: cpu_set_t holds 1024,
// and on a larger machine the call fails (EINVAL), which fell back to
// every online CPU, ignoring the affinity mask.
int KernelAffinityCpus() {
  const long configured = sysconf(_SC_NPROCESSORS_CONF);
  // The kernel's own count of possible CPUs may pass the configured one:
  // a set too small is refused (EINVAL), so double it and ask again.
  for (long size = std::max(1024L, configured); size <= (1L << 20); size *= 2) {
    cpu_set_t* set = CPU_ALLOC(size);
    if (set == nullptr) break;
    const size_t bytes = CPU_ALLOC_SIZE(size);
    CPU_ZERO_S(bytes, set);
    const bool read = sched_getaffinity(0, bytes, set) == 0;
    const bool too_small = !read && errno == EINVAL;
    const int count = read ? CPU_COUNT_S(bytes, set) : 0;
    CPU_FREE(set);
    if (read && count > 0) return count;
    if (!too_small) break;
  }
  return static_cast<int>(std::thread::hardware_concurrency());
}

// cgroup v2 cpu.max: "max 100000" or "50000 100000".
std::optional<double> ParseCpuMax(absl::string_view text) {
  std::vector<absl::string_view> f =
      absl::StrSplit(absl::StripAsciiWhitespace(text), ' ', absl::SkipEmpty());
  if (f.size() != 2 || f[0] == "max") return std::nullopt;
  double quota, period;
  if (!absl::SimpleAtod(f[0], &quota) || !absl::SimpleAtod(f[1], &period) ||
      quota <= 0 || period <= 0) {
    return std::nullopt;
  }
  return quota / period;
}

std::optional<double> ParseCfs(absl::string_view quota_text,
                               absl::string_view period_text) {
  double quota, period;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(quota_text), &quota) ||
      !absl::SimpleAtod(absl::StripAsciiWhitespace(period_text), &period) ||
      quota <= 0 || period <= 0) {
    return std::nullopt;  // -1 means no quota
  }
  return quota / period;
}

struct Quota {
  double cpus;
  std::string file;
};

void Tighten(std::optional<Quota>& best, double cpus, std::string file) {
  if (!best || cpus < best->cpus) best = Quota{cpus, std::move(file)};
}

std::optional<Quota> FindQuota(const std::string& root) {
  std::optional<Quota> best;
  CgroupDirs dirs = FindCgroupDirs(
      root, "cpu", {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"});
  for (const std::string& dir : dirs.v2) {
    std::string file = dir + "/cpu.max";
    if (absl::StatusOr<std::string> text = ReadFile(file); text.ok()) {
      if (auto cpus = ParseCpuMax(*text)) Tighten(best, *cpus, file);
    }
  }
  for (const std::string& dir : dirs.v1) {
    absl::StatusOr<std::string> quota = ReadFile(dir + "/cpu.cfs_quota_us");
    absl::StatusOr<std::string> period = ReadFile(dir + "/cpu.cfs_period_us");
    if (!quota.ok() || !period.ok()) continue;
    if (auto cpus = ParseCfs(*quota, *period)) {
      Tighten(best, *cpus, dir + "/cpu.cfs_quota_us");
    }
  }
  return best;
}

}  // namespace

CpuCount DetectCpuCount(const CpuCountSources& sources) {
  CpuCount result;
  result.affinity_cpus = sources.affinity_cpus.has_value()
                             ? *sources.affinity_cpus
                             : KernelAffinityCpus();
  int cpus = std::max(1, result.affinity_cpus);
  std::optional<Quota> quota = FindQuota(sources.root);
  if (quota) {
    result.quota_cpus = quota->cpus;
    // Capped at the affinity count before the conversion: the kernel
    // allows quotas of millions of CPUs, past what an int holds.
    int quota_cpus = std::max(
        1, static_cast<int>(std::ceil(
               std::min(quota->cpus, static_cast<double>(cpus)) - 1e-9)));
    if (quota_cpus < cpus) {
      cpus = quota_cpus;
      result.explanation =
          absl::StrCat("cgroup CPU quota ", quota->cpus, " (", quota->file,
                       ") rounded up, below affinity ", result.affinity_cpus);
    } else {
      result.explanation =
          absl::StrCat("affinity mask ", result.affinity_cpus,
                       " CPUs, at or below cgroup CPU quota ", quota->cpus);
    }
  } else {
    result.explanation = absl::StrCat("affinity mask ", result.affinity_cpus,
                                      " CPUs, no cgroup CPU quota");
  }
  result.cpus = cpus;
  return result;
}

}  // namespace compute
