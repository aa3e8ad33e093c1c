// Container-aware memory limit, and the byte sizes flags are written in.
//
// The pool's bytes budget (PoolOptions::max_inflight_bytes) should fit the
// memory the container may really use, not the host's: past the cgroup
// limit the kernel OOM-kills the process, with no chance to refuse work.
// Like cpu_count.h we read our cgroup from /proc/self/cgroup and take the
// tightest limit on its path (the cgroup itself, its ancestors, the mount
// root that a container sees as its own cgroup):
//   - cgroup v2 `memory.max` and `memory.high` ("max" = no limit; past
//     memory.high the kernel throttles the cgroup), else
//   - cgroup v1 `memory.limit_in_bytes` under the memory controller's mount
//     (no limit reads as a huge number, 9223372036854771712 with 4 KiB
//     pages: LONG_MAX rounded down to a page).
// Every path is read under a configurable root so tests can feed fake trees.
#ifndef COMPUTE_SERVER_POOL_MEMORY_LIMIT_H_
#define COMPUTE_SERVER_POOL_MEMORY_LIMIT_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace compute {

struct MemoryLimit {
  std::optional<int64_t> limit_bytes;  // unset: no cgroup memory limit found
  std::string explanation;             // one line for the start-up log
};

// `root` prefixes /proc/self/cgroup and /sys/fs/cgroup/... ("" = the real
// root), as CpuCountSources::root does.
MemoryLimit DetectMemoryLimit(std::string_view root = "");

// A byte size as flags take it: a non-negative integer, optionally followed
// (no space) by a suffix, which is case-sensitive:
//   Ki Mi Gi Ti  powers of 1024 (what memory is counted in), and
//   k K M G T    powers of 1000,
// the same spellings as Kubernetes resource quantities ("512Mi", "2Gi",
// "1G"), so a pod's memory limit can be pasted as is. Lowercase m and g are
// refused rather than guessed: in Kubernetes "m" means milli. Signs, spaces,
// fractions and values past INT64_MAX are refused; the error's message is a
// short phrase (no trailing period) for the caller to prefix with the flag.
absl::StatusOr<int64_t> ParseByteSize(std::string_view text);

// "512 MiB", "1.5 GiB", "1000 B": a size for humans, in powers of 1024, with
// at most two decimals (so it may be rounded).
std::string FormatByteSize(int64_t bytes);

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_MEMORY_LIMIT_H_
