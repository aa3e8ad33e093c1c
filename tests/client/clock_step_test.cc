// A step of the wall clock (NTP, `date -s`, a VM resumed) during a bench run
// must not change the time a call's later attempts get: the client keeps a
// call's deadline on the monotonic clock and hands gRPC what is left of it
// as each attempt is sent (client/deadline.h). Before, it was a wall-clock
// time fixed at the first attempt: an hour's step forward left the retries
// no time at all, a step back gave each an hour more than the deadline.
//
// The wall clock is stepped for this process alone (tests/realtime_step.h),
// so the functions that compute an attempt's time left are tested, not a
// bench against an in-process server: gRPC's timer threads wait (absl, on
// futexes) until an absolute CLOCK_REALTIME time taken from the stepped
// clock, which the kernel's unstepped one reaches an hour late, so after a
// step forward the retry's alarm would not ring for an hour.
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/deadline.h"
#include "grpc/support/time.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "tests/realtime_step.h"

namespace compute::testing {
namespace {

using client::DeadlineAfter;
using client::TimeLeft;
using client::ToGrpcDeadline;

constexpr int64_t kHourNs = int64_t{3600} * 1000000000;
constexpr absl::Duration kDeadline = absl::Seconds(10);

// Steps the wall clock for its scope, and checks that the step is seen.
class WallClockStep {
 public:
  explicit WallClockStep(int64_t step_ns) {
    const absl::Time before = absl::Now();
    g_realtime_step_ns.store(step_ns);
    EXPECT_GT(absl::AbsDuration(absl::Now() - before), absl::Minutes(59))
        << "the step is not seen";
  }
  ~WallClockStep() { g_realtime_step_ns.store(0); }
  WallClockStep(const WallClockStep&) = delete;
  WallClockStep& operator=(const WallClockStep&) = delete;
};

absl::Duration FromGpr(gpr_timespec t) {
  return absl::Seconds(t.tv_sec) + absl::Nanoseconds(t.tv_nsec);
}

// What gRPC makes of a deadline as the call starts: the time left until it,
// read on `clock` (gRPC converts a deadline given in another clock).
absl::Duration GrpcTimeLeft(gpr_timespec deadline, gpr_clock_type clock) {
  return FromGpr(
      gpr_time_sub(gpr_convert_clock_type(deadline, clock), gpr_now(clock)));
}

// A call's deadline set at its first attempt, then the step, then the time
// left to a later attempt: what the client computes, and what gRPC is
// handed. Some of the 10 s may have passed, not an hour more or less.
void ExpectAnAttemptAfterAStepHasItsTimeLeft(int64_t step_ns) {
  const absl::Time deadline = DeadlineAfter(kDeadline);
  WallClockStep step(step_ns);
  const absl::Duration left = TimeLeft(deadline);
  EXPECT_GT(left, absl::ZeroDuration());
  EXPECT_LE(left, kDeadline);
  const gpr_timespec grpc_deadline = ToGrpcDeadline(deadline);
  for (gpr_clock_type clock : {GPR_CLOCK_MONOTONIC, GPR_CLOCK_REALTIME}) {
    const absl::Duration grpc_left = GrpcTimeLeft(grpc_deadline, clock);
    EXPECT_GT(grpc_left, absl::ZeroDuration()) << "clock " << clock;
    EXPECT_LE(grpc_left, kDeadline) << "clock " << clock;
  }
}

// Before: no time left (the attempt was not made, or sent expired).
TEST(ClockStepTest, AnAttemptAfterAStepForwardHasItsTimeLeft) {
  ExpectAnAttemptAfterAStepHasItsTimeLeft(kHourNs);
}

// Before: an hour and 10 s left.
TEST(ClockStepTest, AnAttemptAfterAStepBackHasItsTimeLeft) {
  ExpectAnAttemptAfterAStepHasItsTimeLeft(-kHourNs);
}

TEST(ClockStepTest, AnInfiniteDeadlineStaysInfinite) {
  const absl::Time deadline = DeadlineAfter(absl::InfiniteDuration());
  EXPECT_EQ(deadline, absl::InfiniteFuture());
  EXPECT_EQ(TimeLeft(deadline), absl::InfiniteDuration());
  EXPECT_EQ(gpr_time_cmp(ToGrpcDeadline(deadline),
                         gpr_inf_future(GPR_CLOCK_MONOTONIC)),
            0);
}

TEST(ClockStepTest, APastDeadlineIsHandedToGrpcAsNow) {
  const absl::Time deadline = MonotonicNow() - absl::Seconds(1);
  EXPECT_LT(TimeLeft(deadline), absl::ZeroDuration());
  EXPECT_LE(GrpcTimeLeft(ToGrpcDeadline(deadline), GPR_CLOCK_MONOTONIC),
            absl::ZeroDuration());
}

}  // namespace
}  // namespace compute::testing
