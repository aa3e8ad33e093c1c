#include "client/format.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace compute::client {
namespace {

TEST(FormatNanosTest, ThreeSignificantDigitsInTheUnitThatFits) {
  EXPECT_EQ(FormatNanos(0), "0.00ns");
  EXPECT_EQ(FormatNanos(999), "999ns");
  EXPECT_EQ(FormatNanos(1'500), "1.50us");
  EXPECT_EQ(FormatNanos(25'000'000), "25.0ms");
  EXPECT_EQ(FormatNanos(1'000'000'000), "1.00s");
}

// `batch spin -1s` sends the duration for the server to refuse, and shows
// it as sent: it was "-1000000000.00ns".
TEST(FormatNanosTest, ANegativeDurationKeepsItsUnit) {
  EXPECT_EQ(FormatNanos(-1'000'000'000), "-1.00s");
  EXPECT_EQ(FormatNanos(-1'500), "-1.50us");
  EXPECT_EQ(FormatNanos(std::numeric_limits<int64_t>::min()), "-9223372037s");
}

}  // namespace
}  // namespace compute::client
