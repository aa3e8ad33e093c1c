// sleep: holds a worker for a given time without using a CPU; the
// latency-injection task for tests and demos.
//
// spin occupies a core, which is what a load test of one server wants; a
// fleet test on a small machine wants the opposite: replicas that differ in
// capacity (1 worker against 4) without the cores they would burn deciding
// the result. sleep waits in slices of at most kSleepSlice, polling the
// token between them, so a cancel, a deadline or a shutdown stops it within
// a slice (the scheduler's promise for running tasks is 1 ms).
#ifndef COMPUTE_SERVER_TASKS_SLEEP_H_
#define COMPUTE_SERVER_TASKS_SLEEP_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"
#include "server/tasks/payload.h"

namespace compute::tasks {

inline constexpr absl::Duration kMaxSleepDuration = absl::Seconds(60);
inline constexpr absl::Duration kSleepSlice = absl::Milliseconds(1);

// sleep.duration is a well-formed Duration within [0, kMaxSleepDuration].
[[nodiscard]] absl::Status ValidateSleep(
    const compute::v1::SleepRequest& request);

// Waits until `duration` has elapsed on a steady clock and returns how long
// it actually waited (>= duration). Returns CancelledError once `cancel`
// reports a stop.
absl::StatusOr<absl::Duration> Sleep(absl::Duration duration,
                                     const CancelToken& cancel);

// Cost model: seconds, as spin's (one unit is one second of a worker's time,
// which is what admission budgets, whether or not the CPU is used), plus
// what any sleep takes beyond its duration: the timer's slack (50 us by
// default on Linux) and the wake-up. A 1 ns sleep takes 55-65 us here;
// estimated at 1 us, sleeps of under 10 us each taught the rate ~60x. A
// zero duration does not sleep: a few microseconds (~6 measured), no slack.
inline constexpr double kSleepFixedCostSeconds = 60e-6;
inline constexpr double kZeroSleepCostSeconds = 5e-6;
inline constexpr int64_t kSleepResponseBytes = 16;

// Registry adapters, as spin's.
[[nodiscard]] absl::Status ValidateSleepTask(
    const compute::v1::RunRequest& request, Payload payload);
[[nodiscard]] absl::Status RunSleepTask(const compute::v1::RunRequest& request,
                                        Payload payload,
                                        const CancelToken& cancel,
                                        compute::v1::RunResponse* response);
double SleepCostUnits(const compute::v1::RunRequest& request);
int64_t SleepResponseBytes(const compute::v1::RunRequest& request);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_SLEEP_H_
