// Where this process's cgroup limits live: the directories whose limit
// files (cpu.max, memory.max, cpu.cfs_quota_us, memory.limit_in_bytes)
// apply to it, for cpu_count.cc and memory_limit.cc, which read different
// files along the same paths.
//
// Our cgroup comes from /proc/self/cgroup. A limit anywhere on its path
// applies (the kernel charges every ancestor), and inside a container the
// mount root is the container's own cgroup; so each cgroup's directory is
// listed with its ancestors up to the mount root. The tightest limit wins.
// Every path is under `root` (empty: the real filesystem) so tests can feed
// fake trees.
#ifndef COMPUTE_SERVER_POOL_CGROUP_H_
#define COMPUTE_SERVER_POOL_CGROUP_H_

#include <string>
#include <string_view>
#include <vector>

namespace compute {

struct CgroupDirs {
  // cgroup v2 (the unified hierarchy under /sys/fs/cgroup).
  std::vector<std::string> v2;
  // cgroup v1: the hierarchies that have the controller, under each mount
  // given.
  std::vector<std::string> v1;
};

// `controller`: a v1 controller ("cpu", "memory"); `v1_mounts`: where its
// hierarchy may be mounted ("/sys/fs/cgroup/cpu,cpuacct", ...).
CgroupDirs FindCgroupDirs(const std::string& root, std::string_view controller,
                          const std::vector<std::string>& v1_mounts);

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_CGROUP_H_
