// FakeCgroupRoot: a temporary directory that stands for `/` in the cgroup
// tests: write /proc/self/cgroup and the cgroup files under it, then point
// the code under test at root(). Removed with everything in it when the
// object goes.
#ifndef COMPUTE_TESTS_UNIT_POOL_FAKE_CGROUP_ROOT_H_
#define COMPUTE_TESTS_UNIT_POOL_FAKE_CGROUP_ROOT_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace compute::pool_test {

class FakeCgroupRoot {
 public:
  FakeCgroupRoot() {
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "cgroupXXXXXX").string();
    root_ = mkdtemp(tmpl.data());
  }
  ~FakeCgroupRoot() { std::filesystem::remove_all(root_); }
  FakeCgroupRoot(const FakeCgroupRoot&) = delete;
  FakeCgroupRoot& operator=(const FakeCgroupRoot&) = delete;

  // `path` is absolute, as on the real machine: "/proc/self/cgroup".
  void Write(const std::string& path, const std::string& text) {
    std::filesystem::path p = std::filesystem::path(root_) / path.substr(1);
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

}  // namespace compute::pool_test

#endif  // COMPUTE_TESTS_UNIT_POOL_FAKE_CGROUP_ROOT_H_
