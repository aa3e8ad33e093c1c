#include "server/tasks/sleep.h"

#include <chrono>
#include <cstdint>
#include <ctime>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute::tasks {
namespace {

using ::testing::HasSubstr;

compute::v1::RunRequest Request(int64_t seconds, int32_t nanos) {
  compute::v1::RunRequest request;
  request.mutable_sleep()->mutable_duration()->set_seconds(seconds);
  request.mutable_sleep()->mutable_duration()->set_nanos(nanos);
  return request;
}

// The thread's CPU time: sleep must leave the core to others.
absl::Duration ThreadCpuTime() {
  timespec used{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &used);
  return absl::DurationFromTimespec(used);
}

TEST(SleepTest, WaitsAtLeastTheDurationWithoutBurningACpu) {
  const absl::Duration cpu_before = ThreadCpuTime();
  absl::StatusOr<absl::Duration> slept =
      Sleep(absl::Milliseconds(50), CancelToken());
  const absl::Duration cpu = ThreadCpuTime() - cpu_before;
  ASSERT_TRUE(slept.ok()) << slept.status();
  EXPECT_GE(*slept, absl::Milliseconds(50));
  EXPECT_LT(*slept, absl::Seconds(5));
  // 50 slices of 1 ms: a few hundred microseconds of CPU at most; a busy
  // loop would use ~50 ms.
  EXPECT_LT(cpu, absl::Milliseconds(25)) << "sleep burnt a CPU";
}

TEST(SleepTest, RunFillsTheResult) {
  compute::v1::RunResponse response;
  ASSERT_TRUE(
      RunSleepTask(Request(0, 2'000'000), {}, CancelToken(), &response).ok());
  ASSERT_TRUE(response.has_sleep());
  EXPECT_GE(response.sleep().slept().nanos(), 2'000'000);
}

TEST(SleepTest, ValidateNamesTheFieldAndTheLimit) {
  EXPECT_TRUE(ValidateSleepTask(Request(60, 0), {}).ok());
  EXPECT_TRUE(ValidateSleepTask(compute::v1::RunRequest(), {}).ok());  // 0
  EXPECT_EQ(ValidateSleepTask(Request(60, 1), {}).message(),
            "sleep.duration must be <= 60s (got 60.000000001s)");
  EXPECT_EQ(ValidateSleepTask(Request(-1, -500'000'000), {}).message(),
            "sleep.duration must be >= 0s (got -1.5s)");
  EXPECT_THAT(ValidateSleepTask(Request(0, 1'000'000'000), {}).message(),
              HasSubstr("sleep.duration.nanos"));
}

// Seconds of a worker: the duration, plus what any sleep takes beyond it,
// at least Linux's default timer slack (50 us), so that sleeps of a few us
// do not teach the cost model a rate many times the true one.
TEST(SleepTest, CostIsSecondsOfAWorker) {
  EXPECT_NEAR(SleepCostUnits(Request(0, 20'000'000)), 0.02006, 1e-9);
  EXPECT_GE(SleepCostUnits(Request(0, 1)), 50e-6);
  // No sleep at all: a few microseconds, no slack.
  EXPECT_EQ(SleepCostUnits(Request(0, 0)), 5e-6);
}

}  // namespace
}  // namespace compute::tasks
