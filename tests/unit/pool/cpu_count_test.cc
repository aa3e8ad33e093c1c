#include "server/pool/cpu_count.h"

#include <string>

#include "gtest/gtest.h"
#include "tests/unit/pool/fake_cgroup_root.h"

namespace compute {
namespace {

// A fake root with /proc/self/cgroup and cgroup files under it.
class FakeRoot : public pool_test::FakeCgroupRoot {
 public:
  CpuCountSources Sources(int affinity) const {
    CpuCountSources s;
    s.root = root();
    s.affinity_cpus = affinity;
    return s;
  }
};

TEST(CpuCountTest, CgroupV2QuotaRoundsUp) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  fake.Write("/sys/fs/cgroup/kubepods/pod1/ctr/cpu.max", "150000 100000\n");
  CpuCount c = DetectCpuCount(fake.Sources(8));
  EXPECT_EQ(c.cpus, 2);
  EXPECT_DOUBLE_EQ(c.quota_cpus, 1.5);
  EXPECT_NE(c.explanation.find("quota"), std::string::npos);
}

TEST(CpuCountTest, CgroupV2MaxMeansNoQuota) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/\n");
  fake.Write("/sys/fs/cgroup/cpu.max", "max 100000\n");
  CpuCount c = DetectCpuCount(fake.Sources(8));
  EXPECT_EQ(c.cpus, 8);
  EXPECT_EQ(c.quota_cpus, 0);
}

TEST(CpuCountTest, CgroupV2ParentQuotaLimitsChild) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/a/b\n");
  fake.Write("/sys/fs/cgroup/a/b/cpu.max", "max 100000\n");
  fake.Write("/sys/fs/cgroup/a/cpu.max", "300000 100000\n");
  EXPECT_EQ(DetectCpuCount(fake.Sources(16)).cpus, 3);
}

TEST(CpuCountTest, CgroupV1Quota) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup",
             "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
  fake.Write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us",
             "50000\n");
  fake.Write("/sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us",
             "100000\n");
  CpuCount c = DetectCpuCount(fake.Sources(4));
  EXPECT_EQ(c.cpus, 1) << "half a CPU rounds up to one";
  EXPECT_DOUBLE_EQ(c.quota_cpus, 0.5);
}

TEST(CpuCountTest, CgroupV1MinusOneMeansNoQuota) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "4:cpu,cpuacct:/\n");
  fake.Write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us", "-1\n");
  fake.Write("/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us", "100000\n");
  EXPECT_EQ(DetectCpuCount(fake.Sources(6)).cpus, 6);
}

TEST(CpuCountTest, AffinitySmallerThanQuotaWins) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/\n");
  fake.Write("/sys/fs/cgroup/cpu.max", "400000 100000\n");
  CpuCount c = DetectCpuCount(fake.Sources(2));
  EXPECT_EQ(c.cpus, 2);
  EXPECT_NE(c.explanation.find("affinity"), std::string::npos);
}

// cgroup v2 takes a quota of up to 2^63 - 1 us per period: far more CPUs
// than an int holds. Such a quota limits nothing.
TEST(CpuCountTest, AHugeQuotaIsNoLimit) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/\n");
  fake.Write("/sys/fs/cgroup/cpu.max", "17000000000000 1000\n");
  CpuCount c = DetectCpuCount(fake.Sources(8));
  EXPECT_EQ(c.cpus, 8);
  EXPECT_NE(c.explanation.find("affinity"), std::string::npos);
}

TEST(CpuCountTest, NoCgroupFilesFallsBackToAffinity) {
  FakeRoot fake;
  EXPECT_EQ(DetectCpuCount(fake.Sources(3)).cpus, 3);
}

TEST(CpuCountTest, RealMachineReportsAtLeastOne) {
  EXPECT_GE(DetectCpuCount().cpus, 1);
}

}  // namespace
}  // namespace compute
