// blur: the vertical pass walks the image in strips of kStripColumns columns,
// so that its per-column running sums stay in L1 cache and its memory is
// bounded, while every row access is still a contiguous run of memory.
#include "server/tasks/blur.h"

#include <algorithm>
#include <cstddef>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"

namespace compute::tasks {
namespace {

// Work between two polls of the token (tens of microseconds).
constexpr size_t kPollPixels = 64 * 1024;
// Columns per vertical strip: 16 KiB of uint32 running sums.
constexpr size_t kStripColumns = 4096;

static_assert(255 * (2 * kMaxBlurRadius + 1) <= UINT16_MAX,
              "horizontal sums must fit in uint16_t");

// Polls the token once per kPollPixels pixels of work, so that neither one
// 16M-pixel row nor 16M one-pixel rows delay a stop or slow the loop.
class Poller {
 public:
  explicit Poller(const CancelToken& cancel) : cancel_(cancel) {}

  // Call before doing `pixels` of work; true when a stop was requested.
  bool Stopped(size_t pixels) {
    pending_ += pixels;
    if (pending_ < kPollPixels) return false;
    pending_ = 0;
    return cancel_.stop_requested();
  }

 private:
  const CancelToken& cancel_;
  size_t pending_ = 0;
};

absl::Status Stopped(size_t row, size_t height) {
  return absl::CancelledError(
      absl::StrCat("blur stopped at row ", row, " of ", height));
}

}  // namespace

absl::Status ValidateBlur(const compute::v1::BlurRequest& request) {
  if (request.width() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.width must be >= 1 (got ", request.width(), ")"));
  }
  if (request.height() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.height must be >= 1 (got ", request.height(), ")"));
  }
  const uint64_t count = uint64_t{request.width()} * request.height();
  if (count > kMaxBlurPixels) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.width * blur.height must be <= ", kMaxBlurPixels,
                     " (16 megapixels) (got ", request.width(), " * ",
                     request.height(), " = ", count, ")"));
  }
  if (request.pixels().size() != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.pixels must hold width * height = ", count,
                     " bytes (got ", request.pixels().size(), ")"));
  }
  if (request.radius() > kMaxBlurRadius) {
    return absl::InvalidArgumentError(
        absl::StrCat("blur.radius must be <= ", kMaxBlurRadius, " (got ",
                     request.radius(), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> BoxBlur(absl::string_view pixels, uint32_t width,
                                    uint32_t height, uint32_t radius,
                                    const CancelToken& cancel) {
  const uint64_t count = uint64_t{width} * height;
  if (pixels.size() != count) {
    return absl::InvalidArgumentError(
        absl::StrCat("BoxBlur: pixels must hold width * height = ", count,
                     " bytes (got ", pixels.size(), ")"));
  }
  if (radius > kMaxBlurRadius) {
    return absl::InvalidArgumentError(absl::StrCat(
        "BoxBlur: radius must be <= ", kMaxBlurRadius, " (got ", radius, ")"));
  }
  if (cancel.stop_requested()) return Stopped(0, height);
  if (radius == 0 || count == 0) return std::string(pixels);

  const size_t w = width;
  const size_t h = height;
  const size_t r = radius;
  const auto* src = reinterpret_cast<const uint8_t*>(pixels.data());
  Poller poller(cancel);

  // Horizontal pass: sums[y][x] = sum of src[y][clamp(x + k)], |k| <= r.
  // Not value-initialized: every element is written before it is read.
  std::unique_ptr<uint16_t[]> sums(new uint16_t[count]);
  for (size_t y = 0; y < h; ++y) {
    const uint8_t* in = src + y * w;
    uint16_t* out = sums.get() + y * w;
    // The first window, its clamped part counted by multiplication so that a
    // narrow row costs O(width), not O(radius).
    const size_t reach = std::min(r, w - 1);
    uint32_t sum =
        static_cast<uint32_t>((r + 1) * in[0] + (r - reach) * in[w - 1]);
    for (size_t k = 1; k <= reach; ++k) sum += in[k];
    for (size_t x0 = 0; x0 < w; x0 += kPollPixels) {
      const size_t x1 = std::min(w, x0 + kPollPixels);
      if (poller.Stopped(x1 - x0)) return Stopped(y, h);
      for (size_t x = x0; x < x1; ++x) {
        out[x] = static_cast<uint16_t>(sum);
        sum = sum + in[std::min(x + r + 1, w - 1)] - in[x >= r ? x - r : 0];
      }
    }
  }

  // Vertical pass over the sums, one strip of columns at a time.
  const uint32_t area = static_cast<uint32_t>((2 * r + 1) * (2 * r + 1));
  const uint32_t half = area / 2;
  std::string result(count, '\0');
  auto* dst = reinterpret_cast<uint8_t*>(result.data());
  std::vector<uint32_t> column_sums(std::min(w, kStripColumns));
  for (size_t x0 = 0; x0 < w; x0 += kStripColumns) {
    const size_t n = std::min(kStripColumns, w - x0);
    const uint16_t* strip = sums.get() + x0;
    uint32_t* acc = column_sums.data();
    const size_t reach = std::min(r, h - 1);
    const uint16_t* first = strip;
    const uint16_t* last = strip + (h - 1) * w;
    for (size_t i = 0; i < n; ++i) {
      acc[i] =
          static_cast<uint32_t>((r + 1) * first[i] + (r - reach) * last[i]);
    }
    for (size_t k = 1; k <= reach; ++k) {
      const uint16_t* row = strip + k * w;
      for (size_t i = 0; i < n; ++i) acc[i] += row[i];
    }
    for (size_t y = 0; y < h; ++y) {
      if (poller.Stopped(n)) return Stopped(y, h);
      uint8_t* out = dst + y * w + x0;
      const uint16_t* add = strip + std::min(y + r + 1, h - 1) * w;
      const uint16_t* sub = strip + (y >= r ? y - r : 0) * w;
      for (size_t i = 0; i < n; ++i) {
        out[i] = static_cast<uint8_t>((acc[i] + half) / area);
        acc[i] = acc[i] + add[i] - sub[i];
      }
    }
  }
  return result;
}

absl::Status ValidateBlurTask(const compute::v1::RunRequest& request) {
  return ValidateBlur(request.blur());
}

absl::Status RunBlurTask(const compute::v1::RunRequest& request,
                         const CancelToken& cancel,
                         compute::v1::RunResponse* response) {
  // Re-validated so that no caller can drive the kernel past its limits.
  if (absl::Status status = ValidateBlur(request.blur()); !status.ok()) {
    return status;
  }
  const compute::v1::BlurRequest& blur = request.blur();
  absl::StatusOr<std::string> pixels = BoxBlur(
      blur.pixels(), blur.width(), blur.height(), blur.radius(), cancel);
  if (!pixels.ok()) return pixels.status();
  compute::v1::BlurResult* result = response->mutable_blur();
  result->set_width(blur.width());
  result->set_height(blur.height());
  result->set_pixels(*std::move(pixels));
  return absl::OkStatus();
}

double BlurCostUnits(const compute::v1::RunRequest& request) {
  const compute::v1::BlurRequest& blur = request.blur();
  const double pixels = static_cast<double>(blur.width()) * blur.height();
  const double work =
      blur.radius() == 0 ? pixels * kBlurCopyCostFraction : pixels;
  return work + kBlurFixedCostUnits;
}

int64_t BlurResponseBytes(const compute::v1::RunRequest& request) {
  const compute::v1::BlurRequest& blur = request.blur();
  return int64_t{blur.width()} * blur.height() + kBlurResponseHeaderBytes;
}

}  // namespace compute::tasks
