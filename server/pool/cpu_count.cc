#include "server/pool/cpu_count.h"

#include <sched.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace compute {
namespace {

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

int KernelAffinityCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::thread::hardware_concurrency());
}

// One line of /proc/self/cgroup: "hierarchy-id:controllers:path".
struct CgroupLine {
  std::string controllers;
  std::string path;
};

std::vector<CgroupLine> ReadSelfCgroup(const std::string& root) {
  std::vector<CgroupLine> lines;
  auto text = ReadFile(root + "/proc/self/cgroup");
  if (!text) return lines;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    std::vector<std::string> parts =
        absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (parts.size() == 3) lines.push_back({parts[1], parts[2]});
  }
  return lines;
}

// Candidate directories for a cgroup path: the path itself (host view) and
// its ancestors, plus the mount root (inside a container the namespace root
// is the container's own cgroup). The tightest quota found wins.
std::vector<std::string> CandidateDirs(const std::string& mount,
                                       std::string path) {
  std::vector<std::string> dirs;
  while (true) {
    dirs.push_back(mount + (path == "/" ? "" : path));
    if (path.empty() || path == "/") break;
    auto slash = path.rfind('/');
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
  return dirs;
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
  for (const CgroupLine& line : ReadSelfCgroup(root)) {
    if (line.controllers.empty()) {  // cgroup v2 unified hierarchy: "0::/path"
      for (const std::string& dir :
           CandidateDirs(root + "/sys/fs/cgroup", line.path)) {
        std::string file = dir + "/cpu.max";
        if (auto text = ReadFile(file)) {
          if (auto cpus = ParseCpuMax(*text)) Tighten(best, *cpus, file);
        }
      }
      continue;
    }
    bool has_cpu = false;
    for (absl::string_view c : absl::StrSplit(line.controllers, ',')) {
      has_cpu |= c == "cpu";
    }
    if (!has_cpu) continue;
    for (const char* mount :
         {"/sys/fs/cgroup/cpu,cpuacct", "/sys/fs/cgroup/cpu"}) {
      for (const std::string& dir : CandidateDirs(root + mount, line.path)) {
        auto quota = ReadFile(dir + "/cpu.cfs_quota_us");
        auto period = ReadFile(dir + "/cpu.cfs_period_us");
        if (!quota || !period) continue;
        if (auto cpus = ParseCfs(*quota, *period)) {
          Tighten(best, *cpus, dir + "/cpu.cfs_quota_us");
        }
      }
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
    int quota_cpus =
        std::max(1, static_cast<int>(std::ceil(quota->cpus - 1e-9)));
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
