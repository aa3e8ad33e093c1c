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
  // A zero sleep does not sleep (Sleep's loop never runs): it takes a few
  // microseconds, not the timer's slack. Charged the slack, each one taught
  // the model a rate 1/10 of its own (the clamp's step), so a client
  // sending them drove sleep's rate down ~7x, and doomed sleeps were then
  // admitted (a review's run). At its own few microseconds, under the
  // model's 10 us, it teaches nothing.
  if (!(seconds > 0)) return kZeroSleepCostSeconds;
  return seconds + kSleepFixedCostSeconds;
}

int64_t SleepResponseBytes(const compute::v1::RunRequest& /*request*/) {
  return kSleepResponseBytes;
}

}  // namespace compute::tasks
