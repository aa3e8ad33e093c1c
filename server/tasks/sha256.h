// sha256: iterated SHA-256, the hashing task.
//
// digest = SHA256(data), then digest = SHA256(digest) for the remaining
// rounds: a key-stretching shape whose cost the client sets with `rounds`
// while the input stays small. OpenSSL does the hashing (it uses the CPU's
// SHA extensions where present); the token is polled every kPollRounds
// rounds, a few hundred microseconds of work at most.
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

// Registry adapters: validate / run request.sha256(), filling
// response->sha256() (digest and hex).
[[nodiscard]] absl::Status ValidateSha256Task(
    const compute::v1::RunRequest& request);
[[nodiscard]] absl::Status RunSha256Task(const compute::v1::RunRequest& request,
                                         const CancelToken& cancel,
                                         compute::v1::RunResponse* response);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_SHA256_H_
