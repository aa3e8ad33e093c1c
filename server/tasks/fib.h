// fib: the naive, exponential Fibonacci recursion, kept slow on purpose.
//
// It is the service's "CPU-heavy example": its cost grows by about 1.6x per
// step of n, so a client can dial the work from microseconds to a minute. The
// recursion is cancellable: only the calls with n above a small threshold poll
// the token, and a subtree below it costs well under a millisecond, so a stop
// is noticed within that time without slowing the hot leaves.
#ifndef COMPUTE_SERVER_TASKS_FIB_H_
#define COMPUTE_SERVER_TASKS_FIB_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"
#include "server/tasks/payload.h"

namespace compute::tasks {

inline constexpr uint32_t kMaxFibN = 50;

// fib.n <= kMaxFibN.
[[nodiscard]] absl::Status ValidateFib(const compute::v1::FibRequest& request);

// fib(0) = 0, fib(1) = 1, fib(n) = fib(n - 1) + fib(n - 2), computed by naive
// recursion. Returns CancelledError once `cancel` reports a stop. Requires
// n <= 93 (beyond, the value overflows uint64); the service allows <= 50.
absl::StatusOr<uint64_t> Fib(uint32_t n, const CancelToken& cancel);

// Cost model (TaskKind::cost_units): phi^n + kFibFixedCostUnits, phi the
// golden ratio. The recursion makes 2 fib(n + 1) - 1 calls, which tends to
// 1.447 phi^n (within 1% from n = 10, 0.05% from n = 15), so phi^n is
// proportional to the work; the constant is the measured fixed cost of a call
// (about 17 ns, the time of ~40 units), which keeps fib(0) and fib(1) above
// zero. Measured (release build): n = 25..40 within 2% of 4.7e-10 s per unit;
// n <= 20 ran 13-32% faster than that predicts (they take the non-polling
// recursion only).
inline constexpr double kFibFixedCostUnits = 40;
// The result's uint64 value, with room for its field's framing.
inline constexpr int64_t kFibResponseBytes = 16;

// Registry adapters: validate / run request.fib(), filling response->fib();
// the cost model's units and response size for request.fib().
[[nodiscard]] absl::Status ValidateFibTask(
    const compute::v1::RunRequest& request, Payload payload);
[[nodiscard]] absl::Status RunFibTask(const compute::v1::RunRequest& request,
                                      Payload payload,
                                      const CancelToken& cancel,
                                      compute::v1::RunResponse* response);
double FibCostUnits(const compute::v1::RunRequest& request);
int64_t FibResponseBytes(const compute::v1::RunRequest& request);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_FIB_H_
