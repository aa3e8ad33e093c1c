// primes: counts the primes <= limit with a segmented sieve of Eratosthenes.
//
// A plain sieve to 2e9 would need 1-2 GB; the segmented sieve needs the base
// primes up to sqrt(limit) (about 4,700 of them for 2e9) plus one segment that
// fits in the CPU's L2 cache: O(sqrt(limit)) memory, under 1 MiB up to
// kMaxPrimesLimit, and the sieve runs at cache speed. Only odd numbers are
// stored, halving both memory and work. The token is polled between segments,
// each a fraction of a millisecond of work.
#ifndef COMPUTE_SERVER_TASKS_PRIMES_H_
#define COMPUTE_SERVER_TASKS_PRIMES_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"

namespace compute::tasks {

inline constexpr uint64_t kMaxPrimesLimit = 2'000'000'000;

// primes.limit <= kMaxPrimesLimit.
[[nodiscard]] absl::Status ValidatePrimes(
    const compute::v1::PrimesRequest& request);

// The number of primes p with p <= limit (pi(limit)). Returns CancelledError
// once `cancel` reports a stop. Correct for any limit < 2^62 (time about
// linear, memory O(sqrt(limit))); the service allows <= kMaxPrimesLimit.
absl::StatusOr<uint64_t> CountPrimes(uint64_t limit, const CancelToken& cancel);

// Registry adapters: validate / run request.primes(), filling
// response->primes().
[[nodiscard]] absl::Status ValidatePrimesTask(
    const compute::v1::RunRequest& request);
[[nodiscard]] absl::Status RunPrimesTask(const compute::v1::RunRequest& request,
                                         const CancelToken& cancel,
                                         compute::v1::RunResponse* response);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_PRIMES_H_
