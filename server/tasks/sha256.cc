// sha256: OpenSSL's one-shot SHA256() rather than a hand-written hash; it is
// not deprecated in OpenSSL 3 and picks the fastest implementation at run time.
// Rounds alternate between two fixed buffers (SHA256() does not document that
// its input and output may alias), so they allocate nothing. Data over
// 256 KiB goes through an EVP context instead, to poll between pieces.
#include "server/tasks/sha256.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <array>
#include <memory>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace compute::tasks {
namespace {

static_assert(kSha256DigestBytes == SHA256_DIGEST_LENGTH);

// Rounds between two polls of the token: ~1000 hashes of 32 bytes.
constexpr uint32_t kPollRounds = 1024;

// Bytes of the first round between two polls: 0.1-0.4 ms of hashing. One
// SHA256() over 4 MiB took 2.4-7.7 ms here, during which a stop waited.
constexpr size_t kPollBytes = 256 * 1024;

struct DigestContextFree {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};

// The first round: SHA256(data), polling the token between pieces. Data of
// one piece or less takes the one-shot call, which needs no context.
absl::Status HashData(absl::string_view data, const CancelToken& cancel,
                      unsigned char* digest) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(data.data());
  if (data.size() <= kPollBytes) {
    SHA256(bytes, data.size(), digest);
    return absl::OkStatus();
  }
  std::unique_ptr<EVP_MD_CTX, DigestContextFree> ctx(EVP_MD_CTX_new());
  if (ctx == nullptr ||
      EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1) {
    return absl::InternalError("sha256: OpenSSL could not start a digest");
  }
  for (size_t done = 0; done < data.size(); done += kPollBytes) {
    if (done > 0 && cancel.stop_requested()) {
      return absl::CancelledError(absl::StrCat(
          "sha256 stopped at byte ", done, " of ", data.size(), " in round 1"));
    }
    const size_t piece = std::min(kPollBytes, data.size() - done);
    if (EVP_DigestUpdate(ctx.get(), bytes + done, piece) != 1) {
      return absl::InternalError("sha256: OpenSSL could not hash");
    }
  }
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(ctx.get(), digest, &length) != 1 ||
      length != SHA256_DIGEST_LENGTH) {
    return absl::InternalError("sha256: OpenSSL could not finish a digest");
  }
  return absl::OkStatus();
}

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
  if (absl::Status status = HashData(data, cancel, digest.data());
      !status.ok()) {
    return status;
  }
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
