// spin: a steady-clock busy loop. std::chrono::steady_clock (not absl::Now) so
// that a wall-clock step (NTP, a VM migration) cannot stretch or cut a spin.
#include "server/tasks/spin.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "server/tasks/duration.h"

namespace compute::tasks {

absl::Status ValidateSpin(const compute::v1::SpinRequest& request) {
  return ValidateDuration("spin.duration", request.duration(),
                          kMaxSpinDuration);
}

absl::StatusOr<absl::Duration> Spin(absl::Duration duration,
                                    const CancelToken& cancel) {
  using Clock = std::chrono::steady_clock;
  // Compared as elapsed time rather than as an end time point, so that even
  // absl::InfiniteDuration() (saturated to the largest count) cannot overflow.
  const std::chrono::nanoseconds target = absl::ToChronoNanoseconds(duration);
  const Clock::time_point start = Clock::now();
  Clock::time_point now = start;
  while (now - start < target) {
    if (cancel.stop_requested()) {
      return absl::CancelledError(
          absl::StrCat("spin stopped after ",
                       absl::FormatDuration(absl::FromChrono(now - start))));
    }
    now = Clock::now();
  }
  return absl::FromChrono(now - start);
}

absl::Status ValidateSpinTask(const compute::v1::RunRequest& request,
                              Payload /*payload*/) {
  return ValidateSpin(request.spin());
}

absl::Status RunSpinTask(const compute::v1::RunRequest& request,
                         Payload /*payload*/, const CancelToken& cancel,
                         compute::v1::RunResponse* response) {
  // Re-validated so that no caller can drive the kernel past its limits.
  if (absl::Status status = ValidateSpin(request.spin()); !status.ok()) {
    return status;
  }
  absl::StatusOr<absl::Duration> spun =
      Spin(FromProto(request.spin().duration()), cancel);
  if (!spun.ok()) return spun.status();
  ToProto(*spun, response->mutable_spin()->mutable_spun());
  return absl::OkStatus();
}

double SpinCostUnits(const compute::v1::RunRequest& request) {
  // Validity makes the duration >= 0; max() only guards a caller that skipped
  // validation, since a negative cost would break the scheduler's sums.
  const double seconds =
      absl::ToDoubleSeconds(FromProto(request.spin().duration()));
  return std::max(seconds, 0.0) + kSpinFixedCostSeconds;
}

int64_t SpinResponseBytes(const compute::v1::RunRequest& /*request*/) {
  return kSpinResponseBytes;
}

}  // namespace compute::tasks
