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

// The client cancels when its own copy of the deadline passes, which
// reaches the server about when the server's copy does: a probe stopped
// that way ran out of time too (before, it was no sample and the wait for
// the next probe did not double). One cancelled earlier, or before it ran,
// says nothing.
TEST(ProbeEndTest, ACancelAtTheDeadlineIsLate) {
  const absl::Time deadline = absl::UnixEpoch() + absl::Seconds(10);
  EXPECT_EQ(ProbeEndOf(TaskOutcome::kCancelled, true,
                       deadline - absl::Milliseconds(1), deadline),
            End::kLate);
  EXPECT_EQ(
      ProbeEndOf(TaskOutcome::kCancelled, true,
                 deadline - kLateCancelSlack - absl::Milliseconds(1), deadline),
      End::kNoSample);
  EXPECT_EQ(ProbeEndOf(TaskOutcome::kCancelled, false,
                       deadline - absl::Milliseconds(1), deadline),
            End::kNoSample);
  for (TaskOutcome other : {TaskOutcome::kFailed, TaskOutcome::kShutDown,
                            TaskOutcome::kPreempted}) {
    EXPECT_EQ(ProbeEndOf(other, true, deadline + absl::Seconds(1), deadline),
              End::kNoSample);
  }
}

}  // namespace
}  // namespace compute::service
