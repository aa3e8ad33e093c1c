// Container-aware CPU count: how many CPUs this process may really use.
//
// std::thread::hardware_concurrency() reports the host's CPUs, which in a
// container with a CPU limit oversizes the pool: the extra threads only
// share the quota and add context switches. Like Node's
// os.availableParallelism() we take the smaller of
//   - the affinity mask (sched_getaffinity: cpusets, taskset), and
//   - the CFS quota of our cgroup, rounded up: cgroup v2 `cpu.max`
//     ("<quota> <period>" or "max <period>"), or cgroup v1
//     `cpu.cfs_quota_us` / `cpu.cfs_period_us` (-1 = no quota),
// and never less than 1. The cgroup is found from /proc/self/cgroup; every
// path is read under a configurable root so tests can feed fake trees.
#ifndef COMPUTE_SERVER_POOL_CPU_COUNT_H_
#define COMPUTE_SERVER_POOL_CPU_COUNT_H_

#include <optional>
#include <string>

namespace compute {

struct CpuCount {
  int cpus = 1;             // what to size the pool by: >= 1
  int affinity_cpus = 0;    // CPUs in the affinity mask (0: unknown)
  double quota_cpus = 0;    // CFS quota / period (0: no quota found)
  std::string explanation;  // one line for the start-up log
};

struct CpuCountSources {
  // Prefix for /proc/self/cgroup and /sys/fs/cgroup/... ("" = the real root).
  std::string root;
  // Overrides sched_getaffinity (tests); unset = ask the kernel.
  std::optional<int> affinity_cpus;
};

CpuCount DetectCpuCount(const CpuCountSources& sources = {});

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_CPU_COUNT_H_
