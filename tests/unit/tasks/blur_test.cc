#include "server/tasks/blur.h"

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/tasks/reference_kernels.h"

namespace compute::tasks {
namespace {

using ::testing::HasSubstr;

std::string Bytes(std::initializer_list<int> values) {
  std::string out;
  for (int v : values) out.push_back(static_cast<char>(v));
  return out;
}

std::vector<int> Ints(const std::string& bytes) {
  std::vector<int> out;
  for (char c : bytes) out.push_back(static_cast<uint8_t>(c));
  return out;
}

std::string Blur(const std::string& pixels, uint32_t width, uint32_t height,
                 uint32_t radius) {
  absl::StatusOr<std::string> out =
      BoxBlur(pixels, width, height, radius, CancelToken());
  EXPECT_TRUE(out.ok()) << out.status();
  return out.value_or("");
}

// The definition, directly: the mean of the clamped 2D window, rounded.
std::string ReferenceBlur(const std::string& pixels, int width, int height,
                          int radius) {
  std::string out(pixels.size(), '\0');
  const int area = (2 * radius + 1) * (2 * radius + 1);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      int sum = 0;
      for (int dy = -radius; dy <= radius; ++dy) {
        for (int dx = -radius; dx <= radius; ++dx) {
          const int sy = std::clamp(y + dy, 0, height - 1);
          const int sx = std::clamp(x + dx, 0, width - 1);
          sum += static_cast<uint8_t>(pixels[sy * width + sx]);
        }
      }
      out[y * width + x] = static_cast<char>((2 * sum + area) / (2 * area));
    }
  }
  return out;
}

std::string RandomPixels(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string out(count, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

compute::v1::BlurRequest Request(uint32_t width, uint32_t height,
                                 size_t pixel_bytes, uint32_t radius) {
  compute::v1::BlurRequest request;
  request.set_width(width);
  request.set_height(height);
  request.set_pixels(std::string(pixel_bytes, '\x7f'));
  request.set_radius(radius);
  return request;
}

TEST(BlurTest, RadiusZeroIsIdentity) {
  const std::string pixels = RandomPixels(7 * 5, 1);
  EXPECT_EQ(Blur(pixels, 7, 5, 0), pixels);
}

TEST(BlurTest, ConstantImageStaysConstant) {
  const std::string pixels(37 * 23, '\xc8');
  for (uint32_t radius : {1u, 5u, 30u, kMaxBlurRadius}) {
    EXPECT_EQ(Blur(pixels, 37, 23, radius), pixels) << radius;
  }
}

TEST(BlurTest, OneRowHandComputed) {
  // Height 1: the vertical window repeats the row, so this is the 1D mean of
  // a clamped 3-pixel window: [0 0 30] [0 30 60] [30 60 60].
  EXPECT_THAT(Ints(Blur(Bytes({0, 30, 60}), 3, 1, 1)),
              ::testing::ElementsAre(10, 30, 50));
}

TEST(BlurTest, RoundsToNearest) {
  // Clamped windows [0 0 1] [0 1 1] [1 1 1]: means 1/3, 2/3 and 1.
  EXPECT_THAT(Ints(Blur(Bytes({0, 1, 1}), 3, 1, 1)),
              ::testing::ElementsAre(0, 1, 1));
  // Clamped windows [0 0 0] [0 0 1] [0 1 1]: means 0, 1/3 and 2/3.
  EXPECT_THAT(Ints(Blur(Bytes({0, 0, 1}), 3, 1, 1)),
              ::testing::ElementsAre(0, 0, 1));
}

TEST(BlurTest, TwoByTwoHandComputed) {
  // With radius 1 the clamped window of (0,0) holds the 90 at (0,1) twice,
  // of (0,1) four times, of (1,0) once and of (1,1) twice: 90 * k / 9.
  EXPECT_THAT(Ints(Blur(Bytes({0, 90, 0, 0}), 2, 2, 1)),
              ::testing::ElementsAre(20, 40, 10, 20));
}

TEST(BlurTest, CenterImpulseSpreadsEvenly) {
  // Every clamped 3x3 window of a 3x3 image holds the centre exactly once.
  EXPECT_EQ(Blur(Bytes({0, 0, 0, 0, 90, 0, 0, 0, 0}), 3, 3, 1),
            std::string(9, '\x0a'));
}

TEST(BlurTest, MatchesReferenceOnOddShapes) {
  struct Shape {
    uint32_t width, height, radius;
  };
  // Lines, a radius beyond the image, and widths across the column strips.
  const Shape shapes[] = {{1, 1, 3},    {1, 40, 2},   {40, 1, 2},  {7, 5, 1},
                          {7, 5, 2},    {7, 5, 9},    {64, 3, 64}, {33, 17, 4},
                          {4097, 2, 1}, {9000, 3, 2}, {4100, 5, 3}};
  uint32_t seed = 0;
  for (const Shape& s : shapes) {
    const std::string pixels = RandomPixels(size_t{s.width} * s.height, ++seed);
    EXPECT_EQ(
        Blur(pixels, s.width, s.height, s.radius),
        ReferenceBlur(pixels, static_cast<int>(s.width),
                      static_cast<int>(s.height), static_cast<int>(s.radius)))
        << s.width << "x" << s.height << " r=" << s.radius;
  }
}

TEST(BlurTest, MeanIsExactForEverySum) {
  // Every sum a window can hold, at every radius, against integer rounding:
  // the argument in blur.h, checked (at radius 64 the bound alone is short).
  for (uint32_t radius = 1; radius <= kMaxBlurRadius; ++radius) {
    const uint32_t area = (2 * radius + 1) * (2 * radius + 1);
    const float scale = BlurMeanScale(area);
    uint64_t wrong = 0;
    for (uint32_t sum = 0; sum <= 255 * area; ++sum) {
      wrong += BlurMean(sum, area, scale) != (sum + area / 2) / area;
    }
    EXPECT_EQ(wrong, 0u) << "radius " << radius;
  }
}

// The old kernel, BoxBlur before the fused one (reference_kernels.h).
std::string OldBlur(const std::string& pixels, uint32_t width, uint32_t height,
                    uint32_t radius) {
  absl::StatusOr<std::string> out =
      reference::BoxBlur(pixels, width, height, radius, CancelToken());
  EXPECT_TRUE(out.ok()) << out.status();
  return out.value_or("");
}

TEST(BlurTest, MatchesOldKernelOnRandomImages) {
  // Random shapes, mostly small (where edges and radii beyond the image
  // meet), random radii over the whole range, random pixels.
  std::mt19937 rng(17);
  for (int i = 0; i < 600; ++i) {
    const uint32_t limit = i % 3 == 0 ? 8 : i % 3 == 1 ? 70 : 400;
    const uint32_t width = 1 + rng() % limit;
    const uint32_t height = 1 + rng() % limit;
    const uint32_t radius = rng() % (kMaxBlurRadius + 1);
    const std::string pixels = RandomPixels(size_t{width} * height, rng());
    ASSERT_EQ(Blur(pixels, width, height, radius),
              OldBlur(pixels, width, height, radius))
        << width << "x" << height << " r=" << radius;
  }
}

TEST(BlurTest, MatchesOldKernelOnEdgeShapes) {
  struct Shape {
    uint32_t width, height;
  };
  // One pixel, one row, one column; widths around the kernel's strips of
  // 2048 columns; heights around the ring of 2r + 2 rows.
  const Shape shapes[] = {{1, 1},    {1, 5000},  {5000, 1}, {2047, 3},
                          {2048, 3}, {2049, 3},  {4096, 2}, {4097, 2},
                          {6143, 1}, {130, 130}, {3, 129},  {3, 130},
                          {3, 131},  {129, 3},   {2, 260}};
  uint32_t seed = 100;
  for (const Shape& s : shapes) {
    const std::string pixels = RandomPixels(size_t{s.width} * s.height, ++seed);
    for (uint32_t radius : {1u, 2u, 3u, 63u, kMaxBlurRadius}) {
      ASSERT_EQ(Blur(pixels, s.width, s.height, radius),
                OldBlur(pixels, s.width, s.height, radius))
          << s.width << "x" << s.height << " r=" << radius;
    }
  }
}

TEST(BlurTest, MatchesOldKernelOnExtremes) {
  // All 255s make the largest sums the reciprocal divides; the largest
  // image, at both ends of the radius range.
  const std::string white(4096 * 4096, '\xff');
  EXPECT_EQ(Blur(white, 4096, 4096, kMaxBlurRadius), white);
  const std::string pixels = RandomPixels(kMaxBlurPixels, 7);
  for (uint32_t radius : {1u, kMaxBlurRadius}) {
    EXPECT_EQ(Blur(pixels, 4096, 4096, radius),
              OldBlur(pixels, 4096, 4096, radius))
        << "r=" << radius;
  }
}

TEST(BlurTest, KernelRejectsBadInput) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      BoxBlur(std::string(11, 'x'), 3, 4, 1, CancelToken()).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      BoxBlur(std::string(12, 'x'), 3, 4, kMaxBlurRadius + 1, CancelToken())
          .status()));
}

TEST(BlurTest, ValidateAcceptsTheLimits) {
  EXPECT_TRUE(ValidateBlur(Request(1, 1, 1, 0)).ok());
  EXPECT_TRUE(ValidateBlur(Request(3, 4, 12, kMaxBlurRadius)).ok());
  EXPECT_TRUE(ValidateBlur(Request(4096, 4096, kMaxBlurPixels, 1)).ok());
  EXPECT_TRUE(ValidateBlur(Request(kMaxBlurPixels, 1, kMaxBlurPixels, 1)).ok());
}

TEST(BlurTest, ValidateRejectsZeroSize) {
  absl::Status status = ValidateBlur(Request(0, 4, 0, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(), "blur.width must be >= 1 (got 0)");
  status = ValidateBlur(Request(4, 0, 0, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(), "blur.height must be >= 1 (got 0)");
}

TEST(BlurTest, ValidateRejectsTooManyPixels) {
  for (const auto& [w, h] : {std::pair<uint32_t, uint32_t>{4096, 4097},
                             {kMaxBlurPixels + 1, 1},
                             {UINT32_MAX, UINT32_MAX}}) {
    const absl::Status status = ValidateBlur(Request(w, h, 0, 1));
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr("blur.width * blur.height"));
    EXPECT_THAT(status.message(), HasSubstr("16777216"));
  }
}

TEST(BlurTest, ValidateRejectsWrongPixelCount) {
  absl::Status status = ValidateBlur(Request(3, 4, 11, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(),
            "blur.pixels must hold width * height = 12 bytes (got 11)");
  status = ValidateBlur(Request(3, 4, 13, 1));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("blur.pixels"));
}

TEST(BlurTest, ValidateRejectsLargeRadius) {
  const absl::Status status = ValidateBlur(Request(3, 4, 12, 65));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(), "blur.radius must be <= 64 (got 65)");
}

TEST(BlurTest, RunFillsResult) {
  compute::v1::RunRequest request;
  request.mutable_blur()->set_width(3);
  request.mutable_blur()->set_height(1);
  request.mutable_blur()->set_pixels(Bytes({0, 30, 60}));
  request.mutable_blur()->set_radius(1);
  compute::v1::RunResponse response;
  ASSERT_TRUE(RunBlurTask(request, CancelToken(), &response).ok());
  ASSERT_EQ(response.result_case(), compute::v1::RunResponse::kBlur);
  EXPECT_EQ(response.blur().width(), 3u);
  EXPECT_EQ(response.blur().height(), 1u);
  EXPECT_THAT(Ints(response.blur().pixels()),
              ::testing::ElementsAre(10, 30, 50));
}

}  // namespace
}  // namespace compute::tasks
