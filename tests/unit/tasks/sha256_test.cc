#include "server/tasks/sha256.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/time/clock.h"
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

// The first round goes in 256 KiB pieces past that size: the same digest
// as OpenSSL's one-shot call on either side of every piece boundary.
TEST(Sha256Test, LargeDataHashesAsOneShot) {
  std::string data(kMaxSha256DataBytes, '\0');
  for (size_t i = 0; i < data.size(); ++i) {
    data[i] = static_cast<char>((i * 2654435761u) >> 13);
  }
  const size_t piece = 256 * 1024;
  for (size_t size :
       {piece - 1, piece, piece + 1, 3 * piece + 7, kMaxSha256DataBytes}) {
    unsigned char expected[SHA256_DIGEST_LENGTH];
    SHA256(reinterpret_cast<const unsigned char*>(data.data()), size, expected);
    absl::StatusOr<std::string> digest =
        Sha256(absl::string_view(data).substr(0, size), 1, CancelToken());
    ASSERT_TRUE(digest.ok()) << digest.status();
    EXPECT_EQ(*digest, std::string(reinterpret_cast<const char*>(expected),
                                   SHA256_DIGEST_LENGTH))
        << size;
  }
}

// This thread's CPU time, or another's through its CPU clock.
absl::Duration CpuTime(clockid_t clock) {
  timespec used{};
  clock_gettime(clock, &used);
  return absl::DurationFromTimespec(used);
}

// A stop requested during the first round (the data) ends it there, not
// after: over 64 MiB (larger than a request may be; the kernel takes any
// size), a round of 40-150 ms, so the stopper thread gets a core while it
// runs even beside busy ones (over 4 MiB, 2-8 ms, it did not in 5 of 50
// runs beside two compilers). The stop comes once the hashing thread has
// used 1 ms of CPU (its CPU clock: a condition, not a sleep, so the stop
// cannot overtake a hash that has not begun); a run that finished first
// is retried.
TEST(Sha256Test, StopsDuringTheFirstRound) {
  const std::string data(64 << 20, 'x');
  clockid_t hash_clock;
  ASSERT_EQ(pthread_getcpuclockid(pthread_self(), &hash_clock), 0);
  bool stopped = false;
  for (int attempt = 0; attempt < 20 && !stopped; ++attempt) {
    CancelSource source;
    std::atomic<bool> hashing = false;
    std::atomic<bool> finished = false;
    std::thread stopper([&] {
      const absl::Time give_up = absl::Now() + absl::Seconds(10);
      while (!hashing.load() && absl::Now() < give_up) {
        std::this_thread::yield();
      }
      // From when the hash begins: the thread's start-up, which costs this
      // thread CPU too (much of it under ThreadSanitizer), came first, and
      // counted from before it the stop could arrive before round 1.
      const absl::Duration cpu_at_start = CpuTime(hash_clock);
      while (!finished.load() && absl::Now() < give_up &&
             CpuTime(hash_clock) - cpu_at_start < absl::Milliseconds(1)) {
        std::this_thread::yield();
      }
      source.request_stop();
    });
    hashing.store(true);
    const absl::Status status = Sha256(data, 1, source.token()).status();
    finished.store(true);
    stopper.join();
    if (status.ok()) continue;
    stopped = true;
    EXPECT_TRUE(absl::IsCancelled(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr("in round 1")) << status;
  }
  EXPECT_TRUE(stopped) << "every run finished before its stop";
}

}  // namespace
}  // namespace compute::tasks
