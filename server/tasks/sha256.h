// sha256: iterated SHA-256, the hashing task.
//
// digest = SHA256(data), then digest = SHA256(digest) for the remaining
// rounds: a key-stretching shape whose cost the client sets with `rounds`
// while the input stays small. OpenSSL does the hashing (it uses the CPU's
// SHA extensions where present); the token is polled every 256 KiB of the
// data and every 1024 rounds, a few hundred microseconds of work at most.
#ifndef COMPUTE_SERVER_TASKS_SHA256_H_
#define COMPUTE_SERVER_TASKS_SHA256_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"
#include "server/tasks/payload.h"

namespace compute::tasks {

inline constexpr size_t kMaxSha256DataBytes = 4 * 1024 * 1024;
inline constexpr uint32_t kMaxSha256Rounds = 1'000'000;
inline constexpr size_t kSha256DigestBytes = 32;

// sha256.data is at most kMaxSha256DataBytes; sha256.rounds <=
// kMaxSha256Rounds.
[[nodiscard]] absl::Status ValidateSha256(
    const compute::v1::Sha256Request& request);

// Returns the 32-byte digest after `rounds` rounds (0 counts as 1). Returns
// CancelledError once `cancel` reports a stop.
absl::StatusOr<std::string> Sha256(absl::string_view data, uint32_t rounds,
                                   const CancelToken& cancel);

// Lower-case hex of `bytes` (64 characters for a digest).
std::string ToLowerHex(absl::string_view bytes);

// Cost model (TaskKind::cost_units): data.size() + kSha256RoundCostBytes x
// max(rounds, 1), in bytes-hashed equivalents. The data is hashed once; each
// round, the first included, is one call of the one-shot SHA256(), whose
// fixed cost (in OpenSSL 3 it is EVP_Q_digest, which fetches the algorithm by
// name and builds a context per call: ~280 ns) outweighs the one 64-byte
// block a 32-byte digest needs: a round
// costs as much as hashing 576 bytes of data (9 blocks) on the development
// machine (SHA extensions, 0.49 ns per byte), and every measured shape, 0 to
// 4 MiB by 1 to 1e6 rounds, came within 5% of this model. (Without SHA
// extensions a byte costs more and a round's share is smaller; the learned
// seconds per unit absorbs the average.)
inline constexpr double kSha256RoundCostBytes = 576;
// The result as it is serialized: the digest and its hex, 32 + 64 bytes,
// each after a one-byte tag and a one-byte length.
inline constexpr int64_t kSha256ResponseBytes = 3 * kSha256DigestBytes + 4;

// Registry adapters: validate / run request.sha256(), filling
// response->sha256() (digest and hex); the cost model's units and response
// size for request.sha256().
[[nodiscard]] absl::Status ValidateSha256Task(
    const compute::v1::RunRequest& request, Payload payload);
[[nodiscard]] absl::Status RunSha256Task(const compute::v1::RunRequest& request,
                                         Payload payload,
                                         const CancelToken& cancel,
                                         compute::v1::RunResponse* response);
double Sha256CostUnits(const compute::v1::RunRequest& request);
int64_t Sha256ResponseBytes(const compute::v1::RunRequest& request);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_SHA256_H_
