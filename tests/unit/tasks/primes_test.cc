#include "server/tasks/primes.h"

#include <cstdint>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tasks/reference_kernels.h"

namespace compute::tasks {
namespace {

using ::testing::HasSubstr;

uint64_t Count(uint64_t limit) {
  absl::StatusOr<uint64_t> count = CountPrimes(limit, CancelToken());
  EXPECT_TRUE(count.ok()) << count.status();
  return count.value_or(0);
}

// pi(n) for every n <= max, by the plainest sieve: the reference.
std::vector<uint32_t> ReferencePi(uint32_t max) {
  std::vector<bool> composite(max + 1, false);
  std::vector<uint32_t> pi(max + 1, 0);
  uint32_t count = 0;
  for (uint32_t n = 2; n <= max; ++n) {
    if (!composite[n]) {
      ++count;
      for (uint64_t m = uint64_t{n} * n; m <= max; m += n) composite[m] = true;
    }
    pi[n] = count;
  }
  return pi;
}

TEST(PrimesTest, KnownCounts) {
  EXPECT_EQ(Count(0), 0u);
  EXPECT_EQ(Count(1), 0u);
  EXPECT_EQ(Count(2), 1u);
  EXPECT_EQ(Count(3), 2u);
  EXPECT_EQ(Count(4), 2u);
  EXPECT_EQ(Count(10), 4u);
  EXPECT_EQ(Count(100), 25u);
  EXPECT_EQ(Count(1000), 168u);
  EXPECT_EQ(Count(1'000'000), 78498u);
  EXPECT_EQ(Count(10'000'000), 664579u);
  EXPECT_EQ(Count(100'000'000), 5761455u);
}

TEST(PrimesTest, MatchesReferenceForSmallLimits) {
  const std::vector<uint32_t> pi = ReferencePi(2000);
  for (uint32_t n = 0; n <= 2000; ++n) EXPECT_EQ(Count(n), pi[n]) << n;
}

TEST(PrimesTest, MatchesReferenceAroundSegmentEdges) {
  // A segment holds 2^18 odd numbers, so segments end near multiples of 2^19.
  const std::vector<uint32_t> pi = ReferencePi(3'200'000);
  for (uint32_t edge : {1u << 19, 2u << 19, 3u << 19, 6u << 19}) {
    for (uint32_t n = edge - 5; n <= edge + 5; ++n) {
      EXPECT_EQ(Count(n), pi[n]) << n;
    }
  }
  // Squares of primes (the first number a base prime strikes) and neighbours.
  for (uint32_t p : {2u, 3u, 1021u, 1031u, 1597u, 1787u}) {
    for (uint32_t n = p * p - 1; n <= p * p + 1; ++n) {
      EXPECT_EQ(Count(n), pi[n]) << n;
    }
  }
}

TEST(PrimesTest, MatchesReferenceAroundThePresievePeriod) {
  // The pre-sieve's pattern repeats every 15015 odd numbers (30030 numbers);
  // a segment starts at a different place in it each time.
  const std::vector<uint32_t> pi = ReferencePi(3'200'000);
  for (uint32_t edge : {30030u, 2 * 30030u, 17 * 30030u, 100 * 30030u}) {
    for (uint32_t n = edge - 3; n <= edge + 3; ++n) {
      EXPECT_EQ(Count(n), pi[n]) << n;
    }
  }
  // The pre-sieved primes themselves and the first struck one (17, 289).
  for (uint32_t n : {3u, 5u, 7u, 11u, 13u, 14u, 16u, 17u, 288u, 289u, 290u}) {
    EXPECT_EQ(Count(n), pi[n]) << n;
  }
}

TEST(PrimesTest, MatchesOldKernelAtRandomLimits) {
  // The old sieve (reference_kernels.h) as the reference where the plain
  // one would need too much memory: random limits up to 2e7, and a few
  // fixed ones across segments.
  std::mt19937_64 rng(17);
  std::vector<uint64_t> limits = {262'143,   524'287,   524'288,
                                  1'048'577, 9'999'991, 30'000'001};
  for (int i = 0; i < 30; ++i) limits.push_back(rng() % 20'000'000);
  for (uint64_t limit : limits) {
    absl::StatusOr<uint64_t> old = reference::CountPrimes(limit, CancelToken());
    ASSERT_TRUE(old.ok()) << old.status();
    EXPECT_EQ(Count(limit), *old) << limit;
  }
}

TEST(PrimesTest, CountsUpToTheLimit) {
  // pi(2e9), the largest request the service accepts (well known; the old
  // sieve gave the same).
  EXPECT_EQ(Count(kMaxPrimesLimit), 98'222'287u);
}

TEST(PrimesTest, ValidateAcceptsTheLimit) {
  compute::v1::PrimesRequest request;
  EXPECT_TRUE(ValidatePrimes(request).ok());
  request.set_limit(kMaxPrimesLimit);
  EXPECT_TRUE(ValidatePrimes(request).ok());
}

TEST(PrimesTest, ValidateRejectsPastTheLimit) {
  compute::v1::PrimesRequest request;
  request.set_limit(kMaxPrimesLimit + 1);
  const absl::Status status = ValidatePrimes(request);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(),
            "primes.limit must be <= 2000000000 (got 2000000001)");
  request.set_limit(UINT64_MAX);
  EXPECT_THAT(ValidatePrimes(request).message(), HasSubstr("primes.limit"));
}

TEST(PrimesTest, RunFillsResult) {
  compute::v1::RunRequest request;
  request.mutable_primes()->set_limit(100);
  compute::v1::RunResponse response;
  ASSERT_TRUE(RunPrimesTask(request, {}, CancelToken(), &response).ok());
  ASSERT_EQ(response.result_case(), compute::v1::RunResponse::kPrimes);
  EXPECT_EQ(response.primes().count(), 25u);
}

}  // namespace
}  // namespace compute::tasks
