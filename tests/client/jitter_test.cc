#include "client/jitter.h"

#include <algorithm>
#include <vector>

#include "gtest/gtest.h"

namespace compute::client {
namespace {

// Waits that were the same come out spread over a fifth of themselves, and
// never shorter than asked (a pushback is the server's minimum).
TEST(JitterTest, SpreadsAWaitButNeverShortensIt) {
  const absl::Duration wait = absl::Milliseconds(500);
  std::vector<absl::Duration> waits;
  for (int i = 0; i < 1000; ++i) waits.push_back(Jittered(wait));
  const auto [low, high] = std::minmax_element(waits.begin(), waits.end());
  EXPECT_GE(*low, wait);
  EXPECT_LT(*high, wait * (1 + kMaxJitter));
  // 1000 draws of a uniform stretch: the range covers most of the fifth.
  EXPECT_GT(*high - *low, wait * kMaxJitter / 2);
  EXPECT_EQ(Jittered(absl::ZeroDuration()), absl::ZeroDuration());
}

}  // namespace
}  // namespace compute::client
