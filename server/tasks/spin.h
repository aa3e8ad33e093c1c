// spin: burns one CPU for a given time; the controllable load for load and
// overload tests.
//
// It busy-loops on a steady clock instead of sleeping, because its purpose is
// to occupy a worker's CPU exactly as a real kernel would (a sleeping task
// would hide pool saturation from CPU metrics and from the autoscaler). Each
// iteration reads the clock and polls the token, so a stop is seen within
// about a microsecond.
#ifndef COMPUTE_SERVER_TASKS_SPIN_H_
#define COMPUTE_SERVER_TASKS_SPIN_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"
#include "server/tasks/payload.h"

namespace compute::tasks {

inline constexpr absl::Duration kMaxSpinDuration = absl::Seconds(60);

// spin.duration is a well-formed Duration (|nanos| < 1e9, seconds and nanos
// of one sign) within [0, kMaxSpinDuration]. An unset duration means 0.
[[nodiscard]] absl::Status ValidateSpin(
    const compute::v1::SpinRequest& request);

// Busy-loops until `duration` has elapsed on a steady clock, and returns how
// long it actually spun (>= duration). Returns CancelledError once `cancel`
// reports a stop. A duration <= 0 returns at once.
absl::StatusOr<absl::Duration> Spin(absl::Duration duration,
                                    const CancelToken& cancel);

// Cost model (TaskKind::cost_units): the requested seconds plus
// kSpinFixedCostSeconds, so one unit is one second of run time by design
// (measured: 0.5 s requested ran 0.5000005 s). The constant, the measured cost
// of a zero spin (~50 ns) rounded up, keeps a zero spin above zero.
inline constexpr double kSpinFixedCostSeconds = 1e-7;
// The result's Duration (int64 seconds and int32 nanos), with framing.
inline constexpr int64_t kSpinResponseBytes = 16;

// Registry adapters: validate / run request.spin(), filling response->spin();
// the cost model's units and response size for request.spin().
[[nodiscard]] absl::Status ValidateSpinTask(
    const compute::v1::RunRequest& request, Payload payload);
[[nodiscard]] absl::Status RunSpinTask(const compute::v1::RunRequest& request,
                                       Payload payload,
                                       const CancelToken& cancel,
                                       compute::v1::RunResponse* response);
double SpinCostUnits(const compute::v1::RunRequest& request);
int64_t SpinResponseBytes(const compute::v1::RunRequest& request);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_SPIN_H_
