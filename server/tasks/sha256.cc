// sha256: OpenSSL's one-shot SHA256() rather than a hand-written hash; it is
// not deprecated in OpenSSL 3 and picks the fastest implementation at run time.
// Rounds alternate between two fixed buffers (SHA256() does not document that
// its input and output may alias), so they allocate nothing.
#include "server/tasks/sha256.h"

#include <openssl/sha.h>

#include <algorithm>
#include <array>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace compute::tasks {
namespace {

static_assert(kSha256DigestBytes == SHA256_DIGEST_LENGTH);

// Rounds between two polls of the token: ~1000 hashes of 32 bytes.
constexpr uint32_t kPollRounds = 1024;

}  // namespace

absl::Status ValidateSha256(const compute::v1::Sha256Request& request) {
  if (request.data().size() > kMaxSha256DataBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("sha256.data must be at most ", kMaxSha256DataBytes,
                     " bytes (4 MiB) (got ", request.data().size(), " bytes)"));
  }
  if (request.rounds() > kMaxSha256Rounds) {
    return absl::InvalidArgumentError(
        absl::StrCat("sha256.rounds must be <= ", kMaxSha256Rounds, " (got ",
                     request.rounds(), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Sha256(absl::string_view data, uint32_t rounds,
                                   const CancelToken& cancel) {
  if (rounds == 0) rounds = 1;
  if (cancel.stop_requested()) {
    return absl::CancelledError("sha256 stopped before round 1");
  }
  std::array<unsigned char, SHA256_DIGEST_LENGTH> digest;
  std::array<unsigned char, SHA256_DIGEST_LENGTH> next;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(),
         digest.data());
  for (uint32_t round = 2; round <= rounds; ++round) {
    if (round % kPollRounds == 0 && cancel.stop_requested()) {
      return absl::CancelledError(
          absl::StrCat("sha256 stopped at round ", round, " of ", rounds));
    }
    SHA256(digest.data(), digest.size(), next.data());
    digest.swap(next);
  }
  return std::string(reinterpret_cast<const char*>(digest.data()),
                     digest.size());
}

std::string ToLowerHex(absl::string_view bytes) {
  return absl::BytesToHexString(bytes);
}

absl::Status ValidateSha256Task(const compute::v1::RunRequest& request,
                                Payload /*payload*/) {
  return ValidateSha256(request.sha256());
}

absl::Status RunSha256Task(const compute::v1::RunRequest& request,
                           Payload /*payload*/, const CancelToken& cancel,
                           compute::v1::RunResponse* response) {
  // Re-validated so that no caller can drive the kernel past its limits.
  if (absl::Status status = ValidateSha256(request.sha256()); !status.ok()) {
    return status;
  }
  absl::StatusOr<std::string> digest =
      Sha256(request.sha256().data(), request.sha256().rounds(), cancel);
  if (!digest.ok()) return digest.status();
  compute::v1::Sha256Result* result = response->mutable_sha256();
  result->set_hex(ToLowerHex(*digest));
  result->set_digest(*std::move(digest));
  return absl::OkStatus();
}

double Sha256CostUnits(const compute::v1::RunRequest& request) {
  const compute::v1::Sha256Request& sha256 = request.sha256();
  // Sha256() runs 0 rounds as 1.
  const uint32_t rounds = std::max<uint32_t>(sha256.rounds(), 1);
  return static_cast<double>(sha256.data().size()) +
         kSha256RoundCostBytes * rounds;
}

int64_t Sha256ResponseBytes(const compute::v1::RunRequest& /*request*/) {
  return kSha256ResponseBytes;
}

}  // namespace compute::tasks
