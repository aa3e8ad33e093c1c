#include "server/pool/clock.h"

#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/wait_until.h"

namespace compute {
namespace {

using ::compute::testing::WaitUntil;

TEST(SimulatedClockTest, StandsStillUntilAdvanced) {
  SimulatedClock clock;
  absl::Time t0 = clock.Now();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(clock.Now(), t0 + absl::Seconds(3));
}

// A waiter blocked in WaitWithDeadline is woken by the Advance that passes
// its deadline (returns before it may be spurious: callers re-check).
TEST(SimulatedClockTest, AdvancePastDeadlineWakesWaiter) {
  SimulatedClock clock;
  Mutex mu;
  CondVar cv;
  const absl::Time deadline = clock.Now() + absl::Seconds(5);
  int waits = 0;  // guarded by mu: WaitWithDeadline calls begun
  Notification woke;
  std::thread waiter([&] {
    MutexLock lock(&mu);
    while (clock.Now() < deadline) {
      ++waits;
      clock.WaitWithDeadline(cv, mu, deadline);
    }
    woke.Notify();
  });
  // The waiter holds mu until its wait releases it: once waits is 1 here,
  // it is blocked (or about to re-check), not yet to start.
  ASSERT_TRUE(WaitUntil([&] {
    MutexLock lock(&mu);
    return waits >= 1;
  }));
  EXPECT_EQ(clock.waiter_deadlines(), std::vector<absl::Time>{deadline});
  clock.Advance(absl::Seconds(4));
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(woke.WaitForNotificationWithTimeout(absl::Seconds(20)))
      << "the Advance past its deadline did not wake it";
  cv.SignalAll();  // so that a failure above ends instead of hanging here
  waiter.join();
}

}  // namespace
}  // namespace compute
