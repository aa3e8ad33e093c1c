#include "server/base/fd_limit.h"

#include <sys/resource.h>

#include <cstdint>

#include "gtest/gtest.h"

namespace compute {
namespace {

// A server started with a low soft limit under a high hard one (systemd's
// 1,024 under 524,288) runs with the hard one.
TEST(FdLimitTest, TheSoftLimitIsRaisedToTheHardOne) {
  rlimit before{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &before), 0);
  if (before.rlim_max != RLIM_INFINITY && before.rlim_max < 64) {
    GTEST_SKIP() << "hard limit " << before.rlim_max << " too low to lower";
  }
  rlimit lowered = before;
  lowered.rlim_cur = 32;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &lowered), 0);

  const int64_t now = RaiseOpenFileLimit();

  rlimit after{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &after), 0);
  EXPECT_EQ(after.rlim_cur, before.rlim_max);
  EXPECT_EQ(now, before.rlim_max == RLIM_INFINITY
                     ? INT64_MAX
                     : static_cast<int64_t>(before.rlim_max));
  // Raised already: nothing changes.
  EXPECT_EQ(RaiseOpenFileLimit(), now);
}

}  // namespace
}  // namespace compute
