// sleep: std::this_thread::sleep_for in slices on std::chrono::steady_clock
// (a wall-clock step cannot stretch or cut it), the token polled between.
#include "server/tasks/sleep.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "server/tasks/duration.h"

namespace compute::tasks {

absl::Status ValidateSleep(const compute::v1::SleepRequest& request) {
  return ValidateDuration("sleep.duration", request.duration(),
                          kMaxSleepDuration);
}

absl::StatusOr<absl::Duration> Sleep(absl::Duration duration,
                                     const CancelToken& cancel) {
  using Clock = std::chrono::steady_clock;
  const std::chrono::nanoseconds target = absl::ToChronoNanoseconds(duration);
  const std::chrono::nanoseconds slice = absl::ToChronoNanoseconds(kSleepSlice);
  const Clock::time_point start = Clock::now();
  for (Clock::duration elapsed{}; elapsed < target;
       elapsed = Clock::now() - start) {
    if (cancel.stop_requested()) {
      return absl::CancelledError(
          absl::StrCat("sleep stopped after ",
                       absl::FormatDuration(absl::FromChrono(elapsed))));
    }
    std::this_thread::sleep_for(std::min<std::chrono::nanoseconds>(
        slice, std::chrono::duration_cast<std::chrono::nanoseconds>(target -
                                                                    elapsed)));
  }
  return absl::FromChrono(Clock::now() - start);
}

absl::Status ValidateSleepTask(const compute::v1::RunRequest& request,
                               Payload /*payload*/) {
  return ValidateSleep(request.sleep());
}

absl::Status RunSleepTask(const compute::v1::RunRequest& request,
                          Payload /*payload*/, const CancelToken& cancel,
                          compute::v1::RunResponse* response) {
  // Re-validated so that no caller can drive the task past its limits.
  if (absl::Status status = ValidateSleep(request.sleep()); !status.ok()) {
    return status;
  }
  absl::StatusOr<absl::Duration> slept =
      Sleep(FromProto(request.sleep().duration()), cancel);
  if (!slept.ok()) return slept.status();
  ToProto(*slept, response->mutable_sleep()->mutable_slept());
  return absl::OkStatus();
}

double SleepCostUnits(const compute::v1::RunRequest& request) {
  const double seconds =
      absl::ToDoubleSeconds(FromProto(request.sleep().duration()));
  return std::max(seconds, 0.0) + kSleepFixedCostSeconds;
}

int64_t SleepResponseBytes(const compute::v1::RunRequest& /*request*/) {
  return kSleepResponseBytes;
}

}  // namespace compute::tasks
