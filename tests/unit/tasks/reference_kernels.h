// reference_kernels: the blur and primes kernels as they were before the
// fast kernels (git history: server/tasks/blur.cc and primes.cc at 2d13069),
// kept verbatim but for names and the wording of their input errors, so that
//   - tasks_test checks the new kernels against them, output for output, on
//     many random inputs, and
//   - kernel_bench (tests/bench/) times old and new in the same run.
// Test code only; the server never links it.
#ifndef COMPUTE_TESTS_UNIT_TASKS_REFERENCE_KERNELS_H_
#define COMPUTE_TESTS_UNIT_TASKS_REFERENCE_KERNELS_H_

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "server/pool/cancel_token.h"
#include "server/tasks/blur.h"

namespace compute::tasks::reference {

// The old blur: a horizontal pass into a width x height buffer of uint16 sums,
// then a vertical pass in strips of 4096 columns with one integer division
// per pixel.
class BlurPoller {
 public:
  static constexpr size_t kPollPixels = 64 * 1024;
  explicit BlurPoller(const CancelToken& cancel) : cancel_(cancel) {}
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

inline absl::Status BlurStopped(size_t row, size_t height) {
  return absl::CancelledError(
      absl::StrCat("blur stopped at row ", row, " of ", height));
}

inline absl::StatusOr<std::string> BoxBlur(absl::string_view pixels,
                                           uint32_t width, uint32_t height,
                                           uint32_t radius,
                                           const CancelToken& cancel) {
  constexpr size_t kStripColumns = 4096;
  const uint64_t count = uint64_t{width} * height;
  if (pixels.size() != count) {
    return absl::InvalidArgumentError("pixels must hold width * height bytes");
  }
  if (radius > kMaxBlurRadius) {
    return absl::InvalidArgumentError("radius too large");
  }
  if (cancel.stop_requested()) return BlurStopped(0, height);
  if (radius == 0 || count == 0) return std::string(pixels);

  const size_t w = width;
  const size_t h = height;
  const size_t r = radius;
  const auto* src = reinterpret_cast<const uint8_t*>(pixels.data());
  BlurPoller poller(cancel);

  std::unique_ptr<uint16_t[]> sums(new uint16_t[count]);
  for (size_t y = 0; y < h; ++y) {
    const uint8_t* in = src + y * w;
    uint16_t* out = sums.get() + y * w;
    const size_t reach = std::min(r, w - 1);
    uint32_t sum =
        static_cast<uint32_t>((r + 1) * in[0] + (r - reach) * in[w - 1]);
    for (size_t k = 1; k <= reach; ++k) sum += in[k];
    for (size_t x0 = 0; x0 < w; x0 += BlurPoller::kPollPixels) {
      const size_t x1 = std::min(w, x0 + BlurPoller::kPollPixels);
      if (poller.Stopped(x1 - x0)) return BlurStopped(y, h);
      for (size_t x = x0; x < x1; ++x) {
        out[x] = static_cast<uint16_t>(sum);
        sum = sum + in[std::min(x + r + 1, w - 1)] - in[x >= r ? x - r : 0];
      }
    }
  }

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
      if (poller.Stopped(n)) return BlurStopped(y, h);
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

// The old primes: an odd-only segmented sieve, one byte per odd number,
// 256 KiB segments, every odd base prime struck in every segment.
inline uint64_t IntegerSqrt(uint64_t n) {
  uint64_t r = static_cast<uint64_t>(std::sqrt(static_cast<double>(n)));
  while (r * r > n) --r;
  while ((r + 1) * (r + 1) <= n) ++r;
  return r;
}

inline std::vector<uint64_t> OddPrimesUpTo(uint64_t n) {
  std::vector<uint64_t> primes;
  if (n < 3) return primes;
  std::vector<bool> composite(n + 1, false);
  for (uint64_t i = 3; i <= n; i += 2) {
    if (composite[i]) continue;
    primes.push_back(i);
    for (uint64_t j = i * i; j <= n; j += 2 * i) composite[j] = true;
  }
  return primes;
}

inline absl::StatusOr<uint64_t> CountPrimes(uint64_t limit,
                                            const CancelToken& cancel) {
  constexpr uint64_t kSegmentSlots = 256 * 1024;
  if (cancel.stop_requested()) {
    return absl::CancelledError("primes stopped before the first segment");
  }
  if (limit < 2) return 0;
  uint64_t count = 1;  // 2
  const uint64_t last_slot = (limit - 1) / 2;

  const std::vector<uint64_t> base = OddPrimesUpTo(IntegerSqrt(limit));
  std::vector<uint64_t> next_slot(base.size());
  for (size_t k = 0; k < base.size(); ++k) next_slot[k] = base[k] * base[k] / 2;

  std::vector<unsigned char> is_prime(kSegmentSlots);
  for (uint64_t low = 1; low <= last_slot; low += kSegmentSlots) {
    if (cancel.stop_requested()) {
      return absl::CancelledError(
          absl::StrCat("primes stopped at ", 2 * low + 1, " of ", limit));
    }
    const uint64_t high = std::min(low + kSegmentSlots, last_slot + 1);
    const size_t size = static_cast<size_t>(high - low);
    std::fill_n(is_prime.begin(), size, 1);
    for (size_t k = 0; k < base.size(); ++k) {
      const uint64_t p = base[k];
      uint64_t slot = next_slot[k];
      for (; slot < high; slot += p) is_prime[slot - low] = 0;
      next_slot[k] = slot;
    }
    uint32_t segment_count = 0;
    for (size_t i = 0; i < size; ++i) segment_count += is_prime[i];
    count += segment_count;
  }
  return count;
}

}  // namespace compute::tasks::reference

#endif  // COMPUTE_TESTS_UNIT_TASKS_REFERENCE_KERNELS_H_
