#include "server/pool/clock.h"

#include <thread>

#include "gtest/gtest.h"

namespace compute {
namespace {

TEST(SimulatedClockTest, StandsStillUntilAdvanced) {
  SimulatedClock clock;
  absl::Time t0 = clock.Now();
  EXPECT_EQ(clock.Now(), t0);
  clock.Advance(absl::Seconds(3));
  EXPECT_EQ(clock.Now(), t0 + absl::Seconds(3));
}

TEST(SimulatedClockTest, AdvancePastDeadlineWakesWaiter) {
  SimulatedClock clock;
  Mutex mu;
  CondVar cv;
  absl::Time deadline = clock.Now() + absl::Seconds(5);
  Notification woke;
  std::thread waiter([&] {
    MutexLock lock(&mu);
    while (clock.Now() < deadline) clock.WaitWithDeadline(cv, mu, deadline);
    woke.Notify();
  });
  // Advancing short of the deadline does not end the wait; past it does.
  clock.Advance(absl::Seconds(4));
  EXPECT_FALSE(woke.HasBeenNotified());
  clock.Advance(absl::Seconds(1));
  EXPECT_TRUE(woke.WaitForNotificationWithTimeout(absl::Seconds(20)));
  waiter.join();
}

}  // namespace
}  // namespace compute
