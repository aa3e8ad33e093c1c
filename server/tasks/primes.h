// primes: counts the primes <= limit with a segmented sieve of Eratosthenes.
//
// A plain sieve to 2e9 would need 1-2 GB; the segmented sieve needs the base
// primes up to sqrt(limit) (about 4,700 of them for 2e9) plus one segment that
// fits in the CPU's L2 cache: O(sqrt(limit)) memory, under 1 MiB up to
// kMaxPrimesLimit, and the sieve runs at cache speed. Only odd numbers are
// stored, halving both memory and work, and the multiples of 3, 5, 7, 11 and
// 13 come from a precomputed pattern (primes.cc). The token is polled between
// segments, each a fraction of a millisecond of work.
#ifndef COMPUTE_SERVER_TASKS_PRIMES_H_
#define COMPUTE_SERVER_TASKS_PRIMES_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"
#include "server/tasks/payload.h"

namespace compute::tasks {

inline constexpr uint64_t kMaxPrimesLimit = 2'000'000'000;

// primes.limit <= kMaxPrimesLimit.
[[nodiscard]] absl::Status ValidatePrimes(
    const compute::v1::PrimesRequest& request);

// The number of primes p with p <= limit (pi(limit)). Returns CancelledError
// once `cancel` reports a stop. Correct for any limit < 2^62 (time about
// linear, memory O(sqrt(limit))); the service allows <= kMaxPrimesLimit.
absl::StatusOr<uint64_t> CountPrimes(uint64_t limit, const CancelToken& cancel);

// Cost model (TaskKind::cost_units): n ln n + kPrimesFixedCostUnits, with
// n = max(limit, 2). The sieve is not quite linear: its time per number grows
// 1.6x from limit 1e6 to 2e9 (kernel_bench: 0.33 to 0.54 ns), as the
// striking work grows like ln ln n and the larger base primes' strikes miss
// the cache more often. n ln n tracks that growth: measured times are within
// 8% of 2.6e-11 s per unit at every limit from 1e6 to 2e9 (limit alone would
// be off by 25% across the range). The constant is the fixed cost of
// allocating and filling the 256 KiB segment (~4 us at limit 2), which keeps
// limit 0 above zero (a limit below 2 returns at once: over-estimated by
// those 4 us).
inline constexpr double kPrimesFixedCostUnits = 1e5;
// The result's uint64 count, with framing.
inline constexpr int64_t kPrimesResponseBytes = 16;

// Registry adapters: validate / run request.primes(), filling
// response->primes(); the cost model's units and response size for
// request.primes().
[[nodiscard]] absl::Status ValidatePrimesTask(
    const compute::v1::RunRequest& request, Payload payload);
[[nodiscard]] absl::Status RunPrimesTask(const compute::v1::RunRequest& request,
                                         Payload payload,
                                         const CancelToken& cancel,
                                         compute::v1::RunResponse* response);
double PrimesCostUnits(const compute::v1::RunRequest& request);
int64_t PrimesResponseBytes(const compute::v1::RunRequest& request);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_PRIMES_H_
