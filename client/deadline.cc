#include "client/deadline.h"

#include <algorithm>

#include "server/pool/sync.h"

namespace compute::client {

absl::Time DeadlineAfter(absl::Duration timeout) {
  if (timeout == absl::InfiniteDuration()) return absl::InfiniteFuture();
  return MonotonicNow() + timeout;
}

absl::Duration TimeLeft(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) return absl::InfiniteDuration();
  return deadline - MonotonicNow();
}

gpr_timespec ToGrpcDeadline(absl::Time deadline) {
  if (deadline == absl::InfiniteFuture()) {
    return gpr_inf_future(GPR_CLOCK_MONOTONIC);
  }
  const absl::Duration left =
      std::max(TimeLeft(deadline), absl::ZeroDuration());
  return gpr_time_add(
      gpr_now(GPR_CLOCK_MONOTONIC),
      gpr_time_from_nanos(absl::ToInt64Nanoseconds(left), GPR_TIMESPAN));
}

}  // namespace compute::client
