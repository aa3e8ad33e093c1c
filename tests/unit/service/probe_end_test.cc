// How a cost-model probe's end is read (ProbeEndOf): whether it ran in
// time decides how soon the next probe of its kind comes (cost_model.h).
#include "gtest/gtest.h"
#include "server/service/compute_service.h"

namespace compute::service {
namespace {

using End = CostModel::ProbeEnd;

TEST(ProbeEndTest, InTimeByTheClockNotTheOutcomeAlone) {
  const absl::Time deadline = absl::UnixEpoch() + absl::Seconds(10);
  const absl::Duration ms = absl::Milliseconds(1);
  EXPECT_EQ(ProbeEndOf(TaskOutcome::kOk, true, deadline - ms, deadline),
            End::kInTime);
  EXPECT_EQ(ProbeEndOf(TaskOutcome::kOk, true, deadline, deadline),
            End::kInTime);
  // A kernel that did not look, and finished past its deadline.
  EXPECT_EQ(ProbeEndOf(TaskOutcome::kOk, true, deadline + ms, deadline),
            End::kLate);
  EXPECT_EQ(
      ProbeEndOf(TaskOutcome::kDeadlineExceeded, true, deadline, deadline),
      End::kLate);
  // Expired in the queue: never ran, no sample.
  EXPECT_EQ(
      ProbeEndOf(TaskOutcome::kDeadlineExceeded, false, deadline, deadline),
      End::kNoSample);
}

// The client cancels when its own copy of the deadline passes, and the
// server's copy passes up to 1% (gRPC's rounding of the time left) and a
// few milliseconds later: such a cancel is the deadline, and ends the task
// kDeadlineExceeded (before 2026-12-06, `cancelled`). A probe stopped that
// way ran out of time (late); one cancelled earlier, or before it ran,
// says nothing.
TEST(ProbeEndTest, ACancelAtTheClientsDeadlineIsTheDeadlineAndLate) {
  const absl::Time deadline = absl::UnixEpoch() + absl::Seconds(10);
  const absl::Duration ms = absl::Milliseconds(1);
  // 10 s left on arrival: 5 ms + 100 ms.
  const absl::Duration timeout = absl::Seconds(10);
  EXPECT_EQ(ClientDeadlineSlack(timeout), absl::Milliseconds(105));
  EXPECT_EQ(
      CancelOutcome(deadline - absl::Milliseconds(105), deadline, timeout),
      TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(CancelOutcome(deadline + ms, deadline, timeout),
            TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(
      CancelOutcome(deadline - absl::Milliseconds(106), deadline, timeout),
      TaskOutcome::kCancelled);
  // 300 ms left: 8 ms.
  EXPECT_EQ(CancelOutcome(deadline - absl::Milliseconds(8), deadline,
                          absl::Milliseconds(300)),
            TaskOutcome::kDeadlineExceeded);
  EXPECT_EQ(CancelOutcome(deadline - absl::Milliseconds(9), deadline,
                          absl::Milliseconds(300)),
            TaskOutcome::kCancelled);
  // The rounding's part is at most 1 s: 1% of an hour would be 36 s.
  EXPECT_EQ(ClientDeadlineSlack(absl::Hours(1)), absl::Milliseconds(1005));
  EXPECT_EQ(CancelOutcome(deadline - absl::Milliseconds(1006), deadline,
                          absl::Hours(1)),
            TaskOutcome::kCancelled);
  // No deadline: always the client's doing.
  EXPECT_EQ(CancelOutcome(absl::InfiniteFuture(), absl::InfiniteFuture(),
                          absl::InfiniteDuration()),
            TaskOutcome::kCancelled);

  EXPECT_EQ(
      ProbeEndOf(TaskOutcome::kDeadlineExceeded, true, deadline - ms, deadline),
      End::kLate);
  EXPECT_EQ(ProbeEndOf(TaskOutcome::kCancelled, true, deadline - ms, deadline),
            End::kNoSample);
  EXPECT_EQ(ProbeEndOf(TaskOutcome::kDeadlineExceeded, false, deadline - ms,
                       deadline),
            End::kNoSample);
  for (TaskOutcome other : {TaskOutcome::kFailed, TaskOutcome::kShutDown,
                            TaskOutcome::kPreempted}) {
    EXPECT_EQ(ProbeEndOf(other, true, deadline + absl::Seconds(1), deadline),
              End::kNoSample);
  }
}

}  // namespace
}  // namespace compute::service
