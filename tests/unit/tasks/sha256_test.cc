#include "server/tasks/sha256.h"

#include <string>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute::tasks {
namespace {

using ::testing::HasSubstr;

std::string HexSha256(absl::string_view data, uint32_t rounds) {
  absl::StatusOr<std::string> digest = Sha256(data, rounds, CancelToken());
  EXPECT_TRUE(digest.ok()) << digest.status();
  if (!digest.ok()) return "";
  EXPECT_EQ(digest->size(), kSha256DigestBytes);
  return ToLowerHex(*digest);
}

TEST(Sha256Test, KnownAnswers) {
  EXPECT_EQ(HexSha256("abc", 1),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexSha256("", 1),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256Test, ZeroRoundsMeansOne) {
  EXPECT_EQ(HexSha256("abc", 0), HexSha256("abc", 1));
}

TEST(Sha256Test, RoundsHashTheDigest) {
  // Round k hashes the raw 32-byte digest of round k - 1 (not its hex).
  std::string manual = "abc";
  for (uint32_t rounds = 1; rounds <= 3000; ++rounds) {
    manual = *Sha256(manual, 1, CancelToken());
    if (rounds == 2 || rounds == 3 || rounds == 1023 || rounds == 1024 ||
        rounds == 1025 || rounds == 3000) {
      EXPECT_EQ(*Sha256("abc", rounds, CancelToken()), manual) << rounds;
    }
  }
}

TEST(Sha256Test, LowerHex) {
  EXPECT_EQ(ToLowerHex(std::string("\x00\xab\xFF\x10", 4)), "00abff10");
  EXPECT_EQ(ToLowerHex(""), "");
}

TEST(Sha256Test, ValidateAcceptsTheLimits) {
  compute::v1::Sha256Request request;
  EXPECT_TRUE(ValidateSha256(request).ok());  // empty data, rounds 0
  request.set_data(std::string(kMaxSha256DataBytes, 'x'));
  request.set_rounds(kMaxSha256Rounds);
  EXPECT_TRUE(ValidateSha256(request).ok());
}

TEST(Sha256Test, ValidateRejectsTooMuchData) {
  compute::v1::Sha256Request request;
  request.set_data(std::string(kMaxSha256DataBytes + 1, 'x'));
  const absl::Status status = ValidateSha256(request);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("sha256.data"));
  EXPECT_THAT(status.message(), HasSubstr("4194304"));
  EXPECT_THAT(status.message(), HasSubstr("got 4194305"));
}

TEST(Sha256Test, ValidateRejectsTooManyRounds) {
  compute::v1::Sha256Request request;
  request.set_rounds(kMaxSha256Rounds + 1);
  const absl::Status status = ValidateSha256(request);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(), "sha256.rounds must be <= 1000000 (got 1000001)");
}

TEST(Sha256Test, RunFillsDigestAndHex) {
  compute::v1::RunRequest request;
  request.mutable_sha256()->set_data("abc");
  compute::v1::RunResponse response;
  ASSERT_TRUE(RunSha256Task(request, {}, CancelToken(), &response).ok());
  ASSERT_EQ(response.result_case(), compute::v1::RunResponse::kSha256);
  EXPECT_EQ(response.sha256().hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(response.sha256().digest(),
            absl::HexStringToBytes(response.sha256().hex()));
}

}  // namespace
}  // namespace compute::tasks
