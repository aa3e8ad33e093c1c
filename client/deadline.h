// Call deadlines on the monotonic clock.
//
// A deadline that spans time (a bench call's across its --retry attempts and
// the waits between them, a pause, the connection wait) is kept as
// MonotonicNow() time (server/pool/sync.h), which a step of the wall clock
// (NTP, `date -s`, a VM resumed) does not move, and is turned into gRPC's
// deadline only as it is handed over: what is left of it at that moment,
// as a GPR_CLOCK_MONOTONIC time. Before, the client kept them as wall-clock
// time (std::chrono::system_clock), fixed at the first attempt: after a step
// forward of an hour a call's later attempts were judged out of time (the
// retry not made), after a step back each was sent with an hour more than
// its deadline allowed.
#ifndef COMPUTE_CLIENT_DEADLINE_H_
#define COMPUTE_CLIENT_DEADLINE_H_

#include "absl/time/time.h"
#include "grpc/support/time.h"

namespace compute::client {

// `timeout` from now, as MonotonicNow() time; InfiniteFuture for an
// infinite timeout.
absl::Time DeadlineAfter(absl::Duration timeout);

// What is left now of `deadline` (MonotonicNow() time): negative once it
// has passed; InfiniteDuration for InfiniteFuture.
absl::Duration TimeLeft(absl::Time deadline);

// `deadline` (MonotonicNow() time) as gRPC takes it (ClientContext::
// set_deadline, Alarm::Set, Channel::WaitForConnected): gRPC's monotonic
// now plus what is left of it now, at least 0 (gRPC's monotonic clock has
// an origin of its own, so the time left is carried over, not the time);
// gRPC's infinite future for InfiniteFuture.
gpr_timespec ToGrpcDeadline(absl::Time deadline);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_DEADLINE_H_
