#include "server/tasks/blur.h"

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sanitized.h"
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

// An image split into pieces, each in its own allocation of exactly its size
// (so that no two pieces are adjacent in memory, and a read past a piece's
// end is a different piece's bytes or, under ASan, an error). A size of 0 is
// an empty piece: every other one a default (null) string_view, every other
// one an empty view of a real buffer.
class SplitImage {
 public:
  SplitImage(const std::string& pixels, const std::vector<size_t>& sizes) {
    size_t offset = 0;
    for (size_t size : sizes) {
      if (size == 0 && views_.size() % 2 == 0) {
        views_.emplace_back();
        continue;
      }
      buffers_.push_back(std::make_unique<char[]>(std::max<size_t>(size, 1)));
      std::memcpy(buffers_.back().get(), pixels.data() + offset, size);
      views_.emplace_back(buffers_.back().get(), size);
      offset += size;
    }
    EXPECT_EQ(offset, pixels.size()) << "the sizes must cover the image";
  }

  absl::Span<const absl::string_view> pieces() const { return views_; }

 private:
  std::vector<std::unique_ptr<char[]>> buffers_;
  std::vector<absl::string_view> views_;
};

// Ways to cut a width x height image into pieces (sizes in order).
enum class Cut {
  kOnePiece,
  kRowHalves,      // every row split in the middle
  kRandom,         // random sizes 1 .. 3 * width
  kBytes,          // 1-byte pieces
  kEmptyBetween,   // random sizes 1 .. 2 * width, empty pieces around each
  kRowBoundaries,  // one piece per row
  kTwoRandom,      // two pieces, split at a random byte
};

std::string CutName(Cut cut) {
  switch (cut) {
    case Cut::kOnePiece:
      return "one piece";
    case Cut::kRowHalves:
      return "row halves";
    case Cut::kRandom:
      return "random";
    case Cut::kBytes:
      return "bytes";
    case Cut::kEmptyBetween:
      return "empty between";
    case Cut::kRowBoundaries:
      return "row boundaries";
    case Cut::kTwoRandom:
      return "two random";
  }
  return "?";
}

std::vector<size_t> PieceSizes(Cut cut, size_t width, size_t height,
                               uint32_t seed) {
  const size_t total = width * height;
  std::mt19937 rng(seed);
  std::vector<size_t> sizes;
  switch (cut) {
    case Cut::kOnePiece:
      sizes.push_back(total);
      break;
    case Cut::kRowHalves:
      for (size_t y = 0; y < height; ++y) {
        sizes.push_back(width / 2);
        sizes.push_back(width - width / 2);
      }
      break;
    case Cut::kRandom:
      for (size_t left = total; left > 0;) {
        const size_t size = std::min(left, 1 + rng() % (3 * width));
        sizes.push_back(size);
        left -= size;
      }
      break;
    case Cut::kBytes:
      sizes.assign(total, 1);
      break;
    case Cut::kEmptyBetween:
      sizes.push_back(0);
      for (size_t left = total; left > 0;) {
        const size_t size = std::min(left, 1 + rng() % (2 * width));
        sizes.push_back(size);
        sizes.push_back(0);
        if (rng() % 2 == 0) sizes.push_back(0);
        left -= size;
      }
      break;
    case Cut::kRowBoundaries:
      sizes.assign(height, width);
      break;
    case Cut::kTwoRandom: {
      const size_t first = rng() % (total + 1);
      sizes = {first, total - first};
      break;
    }
  }
  return sizes;
}

std::string Concatenation(absl::Span<const absl::string_view> pieces) {
  std::string out;
  for (absl::string_view piece : pieces) out.append(piece.data(), piece.size());
  return out;
}

TEST(BlurPiecesTest, PieceSizesCoverTheImage) {
  // The cuts themselves: they add up, and the awkward ones are what they say.
  for (Cut cut : {Cut::kOnePiece, Cut::kRowHalves, Cut::kRandom, Cut::kBytes,
                  Cut::kEmptyBetween, Cut::kRowBoundaries, Cut::kTwoRandom}) {
    const std::vector<size_t> sizes = PieceSizes(cut, 7, 5, 3);
    size_t total = 0;
    for (size_t size : sizes) total += size;
    EXPECT_EQ(total, 35u) << CutName(cut);
  }
  EXPECT_EQ(PieceSizes(Cut::kBytes, 7, 5, 3).size(), 35u);
  EXPECT_EQ(PieceSizes(Cut::kRowHalves, 7, 5, 3).size(), 10u);
  const std::vector<size_t> between = PieceSizes(Cut::kEmptyBetween, 7, 5, 3);
  EXPECT_EQ(between.front(), 0u);
  EXPECT_EQ(between.back(), 0u);
  // The pieces hold the image's bytes, in order.
  const std::string pixels = RandomPixels(35, 4);
  const SplitImage split(pixels, between);
  EXPECT_EQ(Concatenation(split.pieces()), pixels);
}

TEST(BlurPiecesTest, MatchesBoxBlurForEveryCut) {
  struct Shape {
    uint32_t width, height;
  };
  // One pixel; narrow and tall (blurred transposed); wide and short; odd
  // sizes; one row per strip of 2048 and more; 16 wide (the narrowest not
  // transposed) and 15 x 15 (narrow but not taller than wide).
  const Shape shapes[] = {{1, 1},    {7, 300}, {300, 7}, {257, 129}, {1000, 3},
                          {1, 1000}, {16, 90}, {15, 15}, {4100, 3},  {5, 1}};
  uint32_t seed = 200;
  for (const Shape& s : shapes) {
    const std::string pixels = RandomPixels(size_t{s.width} * s.height, ++seed);
    for (Cut cut : {Cut::kOnePiece, Cut::kRowHalves, Cut::kRandom, Cut::kBytes,
                    Cut::kEmptyBetween, Cut::kRowBoundaries, Cut::kTwoRandom}) {
      const SplitImage split(pixels,
                             PieceSizes(cut, s.width, s.height, ++seed));
      for (uint32_t radius : {0u, 1u, 5u, kMaxBlurRadius}) {
        absl::StatusOr<std::string> out = BoxBlurPieces(
            split.pieces(), s.width, s.height, radius, CancelToken());
        ASSERT_TRUE(out.ok()) << out.status();
        ASSERT_EQ(*out, Blur(pixels, s.width, s.height, radius))
            << s.width << "x" << s.height << " r=" << radius << ", "
            << CutName(cut) << ", " << split.pieces().size() << " pieces";
      }
    }
  }
}

TEST(BlurPiecesTest, MatchesReferenceInPieces) {
  // Not only BoxBlur's output: the definition's, on an image in 1-byte
  // pieces and in random ones.
  const std::string pixels = RandomPixels(33 * 17, 31);
  for (Cut cut : {Cut::kBytes, Cut::kRandom, Cut::kRowHalves}) {
    const SplitImage split(pixels, PieceSizes(cut, 33, 17, 32));
    for (uint32_t radius : {1u, 4u, 20u}) {
      absl::StatusOr<std::string> out =
          BoxBlurPieces(split.pieces(), 33, 17, radius, CancelToken());
      ASSERT_TRUE(out.ok()) << out.status();
      EXPECT_EQ(*out, ReferenceBlur(pixels, 33, 17, static_cast<int>(radius)))
          << CutName(cut) << " r=" << radius;
    }
  }
}

TEST(BlurPiecesTest, MatchesBoxBlurOnLargeImageInSlices) {
  // What the service sees: 16 megapixels in gRPC-sized slices of 64 KiB and
  // a little less, unaligned to the rows.
  const std::string pixels = RandomPixels(kMaxBlurPixels, 41);
  std::vector<size_t> sizes;
  std::mt19937 rng(42);
  for (size_t left = pixels.size(); left > 0;) {
    const size_t size = std::min<size_t>(left, 65536 - rng() % 64);
    sizes.push_back(size);
    left -= size;
  }
  const SplitImage split(pixels, sizes);
  for (uint32_t radius : {1u, kMaxBlurRadius}) {
    absl::StatusOr<std::string> out =
        BoxBlurPieces(split.pieces(), 4096, 4096, radius, CancelToken());
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_TRUE(*out == Blur(pixels, 4096, 4096, radius)) << "r=" << radius;
  }
}

TEST(BlurPiecesTest, RejectsWrongTotal) {
  const std::string pixels = RandomPixels(12, 51);
  for (const std::vector<size_t>& sizes :
       std::vector<std::vector<size_t>>{{11}, {5, 0, 6}, {1, 1, 1}, {}}) {
    size_t total = 0;
    for (size_t size : sizes) total += size;
    const SplitImage split(pixels.substr(0, total), sizes);
    const absl::Status status =
        BoxBlurPieces(split.pieces(), 3, 4, 1, CancelToken()).status();
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_THAT(status.message(),
                HasSubstr("width * height = 12 bytes (got " +
                          std::to_string(total) + ", the total of "));
  }
  // Too many bytes, spread over the pieces.
  const std::string more = RandomPixels(13, 52);
  const SplitImage split(more, {4, 4, 5});
  const absl::Status status =
      BoxBlurPieces(split.pieces(), 3, 4, 1, CancelToken()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("(got 13, the total of 3 pieces)"));
}

TEST(BlurPiecesTest, RejectsLargeRadius) {
  const std::string pixels = RandomPixels(12, 53);
  const SplitImage split(pixels, {5, 7});
  const absl::Status status =
      BoxBlurPieces(split.pieces(), 3, 4, kMaxBlurRadius + 1, CancelToken())
          .status();
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("radius must be <= 64 (got 65)"));
}

TEST(BlurPiecesTest, StoppedTokenIsCancelled) {
  // As stop_test checks of the blur task: a token already stopped returns
  // CancelledError, for every path (copy, strips, transposed).
  CancelSource source;
  source.request_stop();
  const std::string pixels = RandomPixels(7 * 300, 61);
  for (const auto& [width, height] :
       {std::pair<uint32_t, uint32_t>{7, 300}, {300, 7}}) {
    const SplitImage split(pixels, PieceSizes(Cut::kRandom, width, height, 62));
    for (uint32_t radius : {0u, 1u, kMaxBlurRadius}) {
      const absl::Status status =
          BoxBlurPieces(split.pieces(), width, height, radius, source.token())
              .status();
      EXPECT_TRUE(absl::IsCancelled(status)) << status;
      EXPECT_THAT(status.message(), HasSubstr("stopped"));
    }
  }
}

// This thread's CPU time, or another's through its CPU clock.
absl::Duration CpuTime(clockid_t clock) {
  timespec used{};
  clock_gettime(clock, &used);
  return absl::DurationFromTimespec(used);
}

TEST(BlurPiecesTest, StopsWhileRunning) {
  // As stop_test checks of the blur task, on the largest image in 64 KiB
  // pieces (most rows straddle none, 256 straddle two): a stop requested
  // mid-run ends it promptly with CancelledError. The stop comes once the
  // blur has used 2 ms of CPU (its thread's CPU clock: a condition, not a
  // sleep); a run that finished first (a very fast machine, or the stopper
  // descheduled) is retried. Promptly is in the CPU time the blur uses
  // after the stop, which does not grow while a loaded machine deschedules
  // it: the wall time, bounded at 500 ms until 2026-12-05, passed it 3 times
  // in 345 runs beside busy loops.
  const std::string pixels = RandomPixels(kMaxBlurPixels, 71);
  const SplitImage split(pixels, std::vector<size_t>(256, 65536));
  clockid_t blur_clock;
  ASSERT_EQ(pthread_getcpuclockid(pthread_self(), &blur_clock), 0);
  bool stopped = false;
  for (int attempt = 0; attempt < 20 && !stopped; ++attempt) {
    CancelSource source;
    std::atomic<bool> finished = false;
    absl::Duration cpu_at_stop;
    absl::Time stop_time;
    const absl::Duration cpu_at_start = CpuTime(blur_clock);
    std::thread stopper([&] {
      const absl::Time give_up = absl::Now() + absl::Seconds(10);
      while (!finished.load() && absl::Now() < give_up &&
             CpuTime(blur_clock) - cpu_at_start < absl::Milliseconds(2)) {
        std::this_thread::yield();
      }
      cpu_at_stop = CpuTime(blur_clock);
      stop_time = absl::Now();
      source.request_stop();
    });
    const absl::Status status = BoxBlurPieces(split.pieces(), 4096, 4096,
                                              kMaxBlurRadius, source.token())
                                    .status();
    const absl::Duration cpu_at_end = CpuTime(CLOCK_THREAD_CPUTIME_ID);
    const absl::Time end = absl::Now();
    finished.store(true);
    stopper.join();
    if (status.ok()) continue;
    stopped = true;
    EXPECT_TRUE(absl::IsCancelled(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr("stopped at row"));
    // As stop_test's kStopBound: the result's zero fill, before the first
    // look at the stop, took 500-800 ms of CPU under ThreadSanitizer.
    EXPECT_LT(cpu_at_end - cpu_at_stop, COMPUTE_TEST_SANITIZED
                                            ? absl::Seconds(2)
                                            : absl::Milliseconds(500));
    EXPECT_LT(end - stop_time, absl::Seconds(10));
  }
  EXPECT_TRUE(stopped) << "every run finished before its stop";
}

// What the memory budget must count besides request and response: the
// allocations that grow with the image (blur.h).
TEST(BlurTest, WorkingBytesAreWhatTheKernelAllocatesPerImage) {
  auto working = [](uint32_t w, uint32_t h, uint32_t radius,
                    std::vector<absl::string_view> pieces) {
    compute::v1::RunRequest request;
    *request.mutable_blur() = Request(w, h, 0, radius);
    return BlurWorkingBytes(request, pieces);
  };
  // Narrow and tall: blurred as its transpose, a copy of every pixel.
  EXPECT_EQ(working(8, 1000, 1, {}), 8000);
  EXPECT_EQ(working(1, kMaxBlurPixels, 64, {}), int64_t{kMaxBlurPixels});
  // Wide, or in one piece: read in place.
  EXPECT_EQ(working(4096, 4096, 1, {}), 0);
  const std::string pixels(100 * 10, 'x');
  const absl::string_view all(pixels);
  EXPECT_EQ(working(100, 10, 1, {all}), 0);
  EXPECT_EQ(working(100, 10, 1, {all.substr(0, 0), all}), 0);
  // In pieces: a row start per row, and each straddling row copied (the
  // cuts at 150 and 620 split rows 1 and 6; the one at 300 splits none).
  EXPECT_EQ(working(100, 10, 1,
                    {all.substr(0, 150), all.substr(150, 150),
                     all.substr(300, 320), all.substr(620)}),
            10 * 8 + 2 * 100);
  // Radius 0 is a copy into the result.
  EXPECT_EQ(working(8, 1000, 0, {}), 0);
  EXPECT_EQ(working(100, 10, 0, {all.substr(0, 150), all.substr(150)}), 0);
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
  ASSERT_TRUE(RunBlurTask(request, {}, CancelToken(), &response).ok());
  ASSERT_EQ(response.result_case(), compute::v1::RunResponse::kBlur);
  EXPECT_EQ(response.blur().width(), 3u);
  EXPECT_EQ(response.blur().height(), 1u);
  EXPECT_THAT(Ints(response.blur().pixels()),
              ::testing::ElementsAre(10, 30, 50));
}

}  // namespace
}  // namespace compute::tasks
