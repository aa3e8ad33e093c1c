#include "client/pgm.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute::client {
namespace {

using ::testing::HasSubstr;

TEST(PgmTest, RoundTrip) {
  GrayImage image;
  image.width = 3;
  image.height = 2;
  image.pixels = std::string("\x00\x10\x20\x30\x40\xff", 6);
  auto parsed = ParsePgm(EncodePgm(image));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->width, 3u);
  EXPECT_EQ(parsed->height, 2u);
  EXPECT_EQ(parsed->maxval, 255u);
  EXPECT_EQ(parsed->pixels, image.pixels);
}

TEST(PgmTest, CommentsAndWhitespaceInTheHeader) {
  auto parsed = ParsePgm(std::string("P5 # made by hand\n2\t1\n# max\n15\n") +
                         std::string("\x01\x0f", 2));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->width, 2u);
  EXPECT_EQ(parsed->maxval, 15u);
  EXPECT_EQ(parsed->pixels, std::string("\x01\x0f", 2));
}

TEST(PgmTest, BadImagesAreNamed) {
  EXPECT_THAT(std::string(ParsePgm("P2\n1 1\n255\n0").status().message()),
              HasSubstr("P5"));
  EXPECT_THAT(std::string(ParsePgm("P5\n0 1\n255\n").status().message()),
              HasSubstr("width"));
  EXPECT_THAT(std::string(ParsePgm("P5\n1 1\n65535\n").status().message()),
              HasSubstr("maxval"));
  EXPECT_THAT(std::string(ParsePgm("P5\n4 4\n255\nab").status().message()),
              HasSubstr("needs 16 bytes"));
}

}  // namespace
}  // namespace compute::client
