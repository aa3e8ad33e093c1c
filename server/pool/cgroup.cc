#include "server/pool/cgroup.h"

#include <cassert>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "server/base/file.h"

namespace compute {
namespace {

// One line of /proc/self/cgroup: "hierarchy-id:controllers:path".
struct CgroupLine {
  std::string controllers;  // empty: cgroup v2
  std::string path;
};

std::vector<CgroupLine> ReadSelfCgroup(const std::string& root) {
  std::vector<CgroupLine> lines;
  absl::StatusOr<std::string> text = ReadFile(root + "/proc/self/cgroup");
  if (!text.ok()) return lines;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    std::vector<std::string> parts =
        absl::StrSplit(line, absl::MaxSplits(':', 2));
    // The kernel writes an absolute path, and one outside the cgroup
    // namespace as "/../x": neither a relative path (the walk to the root
    // would never end) nor one that leaves the mount names a group that
    // limits this process, so neither is read.
    if (parts.size() != 3 || !absl::StartsWith(parts[2], "/")) continue;
    bool leaves = false;
    for (absl::string_view part : absl::StrSplit(parts[2], '/')) {
      leaves |= part == "..";
    }
    if (leaves) continue;
    lines.push_back({parts[1], parts[2]});
  }
  return lines;
}

// `path`'s directory under `mount`, then its ancestors' up to the mount.
void AddWithAncestors(const std::string& mount, std::string path,
                      std::vector<std::string>* dirs) {
  while (true) {
    dirs->push_back(mount + (path == "/" ? "" : path));
    if (path.empty() || path == "/") break;
    auto slash = path.rfind('/');
    assert(slash != std::string::npos);  // ReadSelfCgroup: absolute paths
    path = slash == 0 ? "/" : path.substr(0, slash);
  }
}

}  // namespace

CgroupDirs FindCgroupDirs(const std::string& root, std::string_view controller,
                          const std::vector<std::string>& v1_mounts) {
  CgroupDirs dirs;
  for (const CgroupLine& line : ReadSelfCgroup(root)) {
    if (line.controllers.empty()) {  // cgroup v2 unified hierarchy: "0::/path"
      AddWithAncestors(root + "/sys/fs/cgroup", line.path, &dirs.v2);
      continue;
    }
    bool has_controller = false;
    for (absl::string_view c : absl::StrSplit(line.controllers, ',')) {
      has_controller |= std::string_view(c.data(), c.size()) == controller;
    }
    if (!has_controller) continue;
    for (const std::string& mount : v1_mounts) {
      AddWithAncestors(root + mount, line.path, &dirs.v1);
    }
  }
  return dirs;
}

}  // namespace compute
