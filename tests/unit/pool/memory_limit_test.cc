#include "server/pool/memory_limit.h"

#include <initializer_list>
#include <limits>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/pool/fake_cgroup_root.h"

namespace compute {
namespace {

using ::testing::HasSubstr;

using FakeRoot = pool_test::FakeCgroupRoot;

constexpr int64_t kGi = int64_t{1} << 30;

TEST(MemoryLimitTest, CgroupV2Limit) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/kubepods/pod1/ctr\n");
  fake.Write("/sys/fs/cgroup/kubepods/pod1/ctr/memory.max", "2147483648\n");
  MemoryLimit m = DetectMemoryLimit(fake.root());
  EXPECT_EQ(m.limit_bytes, 2 * kGi);
  EXPECT_THAT(m.explanation, HasSubstr("2 GiB"));
  EXPECT_THAT(m.explanation,
              HasSubstr("/sys/fs/cgroup/kubepods/pod1/ctr/memory.max"));
  EXPECT_THAT(m.explanation, ::testing::Not(HasSubstr(fake.root())))
      << "the log shows the real path, not the test's prefix";
}

TEST(MemoryLimitTest, CgroupV2MaxMeansNoLimit) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/\n");
  fake.Write("/sys/fs/cgroup/memory.max", "max\n");
  MemoryLimit m = DetectMemoryLimit(fake.root());
  EXPECT_EQ(m.limit_bytes, std::nullopt);
  EXPECT_EQ(m.explanation, "no cgroup memory limit");
}

TEST(MemoryLimitTest, CgroupV2TightestOnThePathWins) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/a/b\n");
  fake.Write("/sys/fs/cgroup/a/b/memory.max", "max\n");
  fake.Write("/sys/fs/cgroup/a/memory.max", "1073741824\n");
  fake.Write("/sys/fs/cgroup/memory.max", "4294967296\n");
  EXPECT_EQ(DetectMemoryLimit(fake.root()).limit_bytes, kGi);
}

// /proc/self/cgroup lines the kernel would not write for a group that
// limits this process: a relative path (the walk to the root never ended:
// the server hung at start-up, growing without bound) and one outside the
// cgroup namespace ("/.." , read from beside the mount). Ignored: no limit
// from them; a good line beside them still counts.
TEST(MemoryLimitTest, ACgroupPathThatIsNotAbsoluteOrLeavesTheMountIsIgnored) {
  FakeRoot fake;
  fake.Write("/sys/fs/cgroup/memory.max", "1073741824\n");
  fake.Write("/sys/fs/cgroup/docker/abc/memory.max", "1073741824\n");
  fake.Write("/sys/fs/memory.max", "1073741824\n");
  for (const char* lines : {"0::docker/abc\n", "0::/../sibling\n",
                            "4:memory:abc\n", "0::/a/../..\n"}) {
    fake.Write("/proc/self/cgroup", lines);
    EXPECT_EQ(DetectMemoryLimit(fake.root()).limit_bytes, std::nullopt)
        << lines;
  }
  fake.Write("/proc/self/cgroup", "0::docker/abc\n0::/\n");
  EXPECT_EQ(DetectMemoryLimit(fake.root()).limit_bytes, kGi);
  // A name that only starts with dots is a name.
  fake.Write("/sys/fs/cgroup/..b/memory.max", "2147483648\n");
  fake.Write("/sys/fs/cgroup/memory.max", "max\n");
  fake.Write("/proc/self/cgroup", "0::/..b\n");
  EXPECT_EQ(DetectMemoryLimit(fake.root()).limit_bytes, 2 * kGi);
}

// systemd's MemoryHigh= without MemoryMax=: past memory.high the cgroup is
// throttled. Before, only memory.max was read: 512 MiB without a limit.
TEST(MemoryLimitTest, CgroupV2HighCountsAsALimit) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/system.slice/compute.service\n");
  fake.Write("/sys/fs/cgroup/system.slice/compute.service/memory.max", "max\n");
  fake.Write("/sys/fs/cgroup/system.slice/compute.service/memory.high",
             "1073741824\n");
  MemoryLimit m = DetectMemoryLimit(fake.root());
  EXPECT_EQ(m.limit_bytes, kGi);
  EXPECT_THAT(m.explanation,
              HasSubstr("/system.slice/compute.service/memory.high"));
  // The lower of the two wins, and "max" is no limit.
  fake.Write("/sys/fs/cgroup/system.slice/compute.service/memory.max",
             "536870912\n");
  EXPECT_EQ(DetectMemoryLimit(fake.root()).limit_bytes, kGi / 2);
  fake.Write("/sys/fs/cgroup/system.slice/compute.service/memory.max", "max\n");
  fake.Write("/sys/fs/cgroup/system.slice/compute.service/memory.high",
             "max\n");
  EXPECT_EQ(DetectMemoryLimit(fake.root()).limit_bytes, std::nullopt);
}

TEST(MemoryLimitTest, CgroupV1Limit) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup",
             "5:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n");
  fake.Write("/sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes",
             "536870912\n");
  MemoryLimit m = DetectMemoryLimit(fake.root());
  EXPECT_EQ(m.limit_bytes, 512 << 20);
  EXPECT_THAT(m.explanation, HasSubstr("512 MiB"));
  EXPECT_THAT(m.explanation, HasSubstr("memory.limit_in_bytes"));
}

TEST(MemoryLimitTest, CgroupV1HugeValueMeansNoLimit) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "5:memory:/\n");
  fake.Write("/sys/fs/cgroup/memory/memory.limit_in_bytes",
             "9223372036854771712\n");
  EXPECT_EQ(DetectMemoryLimit(fake.root()).limit_bytes, std::nullopt);
  // With 64 KiB pages the unlimited value is rounded down further.
  fake.Write("/sys/fs/cgroup/memory/memory.limit_in_bytes",
             "9223372036854710272\n");
  EXPECT_EQ(DetectMemoryLimit(fake.root()).limit_bytes, std::nullopt);
}

TEST(MemoryLimitTest, UnreadableValuesAreIgnored) {
  FakeRoot fake;
  fake.Write("/proc/self/cgroup", "0::/a\n");
  fake.Write("/sys/fs/cgroup/a/memory.max", "garbage\n");
  fake.Write("/sys/fs/cgroup/memory.max", "0\n");
  EXPECT_EQ(DetectMemoryLimit(fake.root()).limit_bytes, std::nullopt);
}

TEST(MemoryLimitTest, NothingThereMeansNoLimit) {
  FakeRoot fake;
  MemoryLimit m = DetectMemoryLimit(fake.root());
  EXPECT_EQ(m.limit_bytes, std::nullopt);
  EXPECT_EQ(m.explanation, "no cgroup memory limit");
}

TEST(MemoryLimitTest, RealMachineGivesAnAnswer) {
  MemoryLimit m = DetectMemoryLimit();
  if (m.limit_bytes) {
    EXPECT_GT(*m.limit_bytes, 0);
  }
  EXPECT_FALSE(m.explanation.empty());
}

TEST(ParseByteSizeTest, PlainNumbersAndSuffixes) {
  struct Case {
    std::string text;
    int64_t bytes;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"0", 0},
           {"1048576", 1048576},
           {"007", 7},
           {"1Ki", 1024},
           {"512Mi", int64_t{512} << 20},
           {"2Gi", 2 * kGi},
           {"3Ti", int64_t{3} << 40},
           {"1k", 1000},
           {"1K", 1000},
           {"5M", 5'000'000},
           {"2G", 2'000'000'000},
           {"1T", 1'000'000'000'000},
           {"9223372036854775807", std::numeric_limits<int64_t>::max()},
           {"8388607Ti", int64_t{8388607} << 40},
       }) {
    absl::StatusOr<int64_t> got = ParseByteSize(c.text);
    ASSERT_TRUE(got.ok()) << c.text << ": " << got.status();
    EXPECT_EQ(*got, c.bytes) << c.text;
  }
}

TEST(ParseByteSizeTest, RefusesWithAClearMessage) {
  struct Case {
    std::string text;
    std::string expect;
  };
  for (const Case& c : std::initializer_list<Case>{
           {"", "expected a whole number of bytes"},
           {"-1", "must not be negative"},
           {"-512Mi", "must not be negative"},
           {"+5", "expected a whole number"},
           {" 5", "expected a whole number"},
           {"5 ", "expected a whole number"},
           {"5 Mi", "expected a whole number"},
           {"1.5Gi", "expected a whole number"},
           {"Mi", "expected a whole number"},
           {"12mi", "expected a whole number"},
           {"12m", "expected a whole number"},
           {"12g", "expected a whole number"},
           {"12KiB", "expected a whole number"},
           {"lots", "expected a whole number"},
           {"9223372036854775808", "too large"},
           {"99999999999999999999999", "too large"},
           {"8388608Ti", "too large"},
           {"9223372036854776K", "too large"},
       }) {
    absl::StatusOr<int64_t> got = ParseByteSize(c.text);
    ASSERT_FALSE(got.ok()) << "'" << c.text << "' gave " << *got;
    EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(got.status().message(), HasSubstr(c.expect)) << c.text;
    EXPECT_EQ(std::string(got.status().message()).find('\n'),
              std::string::npos);
  }
}

TEST(FormatByteSizeTest, PicksTheLargestWholeUnit) {
  EXPECT_EQ(FormatByteSize(0), "0 B");
  EXPECT_EQ(FormatByteSize(1000), "1000 B");
  EXPECT_EQ(FormatByteSize(1024), "1 KiB");
  // Rounded to 1024 of a unit: one of the next (was "1024 KiB").
  EXPECT_EQ(FormatByteSize((1 << 20) - 1), "1 MiB");
  EXPECT_EQ(FormatByteSize((int64_t{1} << 30) - 4096), "1 GiB");
  EXPECT_EQ(FormatByteSize((1 << 20) - 6000), "1018.14 KiB");
  EXPECT_EQ(FormatByteSize(512 << 20), "512 MiB");
  EXPECT_EQ(FormatByteSize(3 * kGi / 2), "1.5 GiB");
  EXPECT_EQ(FormatByteSize(2 * kGi), "2 GiB");
  EXPECT_EQ(FormatByteSize(kGi + kGi / 100 + 1), "1.01 GiB");
  EXPECT_EQ(FormatByteSize(1'000'000'000), "953.67 MiB");
  EXPECT_EQ(FormatByteSize(std::numeric_limits<int64_t>::max()), "8 EiB")
      << "rounded";
}

}  // namespace
}  // namespace compute
