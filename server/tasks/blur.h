// blur: box blur of an 8-bit grayscale image, the image-work task.
//
// The box filter is separable, so it runs as a horizontal running sum and a
// vertical running sum: O(1) work per pixel whatever the radius (a direct 2D
// window would cost (2r + 1)^2 per pixel, 16641 at r = 64). Pixels beyond an
// edge repeat the edge pixel. The sums are exact (horizontal ones fit 16
// bits: 255 * 129 < 65536) and each output pixel is the exact mean of its
// (2r + 1)^2 window rounded to nearest (the window is odd-sized, so there are
// no ties), computed without a division (BlurMean below). The two
// passes are fused, strip by strip, so the scratch stays in cache (blur.cc
// says how). The token is polled every 64K pixels of work, whatever the
// image's shape.
#ifndef COMPUTE_SERVER_TASKS_BLUR_H_
#define COMPUTE_SERVER_TASKS_BLUR_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"
#include "server/tasks/payload.h"

namespace compute::tasks {

inline constexpr uint64_t kMaxBlurPixels = 16 * 1024 * 1024;
inline constexpr uint32_t kMaxBlurRadius = 64;

// The mean of a window rounded to nearest, from its sum, without a division:
// round(sum / area) = floor((2 * sum + area) / (2 * area)) (area is odd, so
// there are no ties), computed as a float product with scale =
// BlurMeanScale(area) = 1 / (2 * area), rounded to float. Exact for every
// window the kernel sees: every radius <= kMaxBlurRadius, every sum <= 255 *
// area. Why: the quotient's fractional part is (j + 1/2) / area for a whole
// j, so it lies at least 1 / (2 * area) from any integer; the product has two
// roundings (of 1 / (2 * area), then of the product), each relative error
// <= 2^-24, and the quotient is below 256, so the error is below 256 * 2^-23
// = 3.05e-5. That is less than 1 / (2 * area) for every radius up to 63
// (area <= 16129: 3.1e-5); at radius 64 (3.005e-5) the bound alone does not
// settle it, and blur_test checks every sum at every radius. All the values
// are integers below 2^24, exact in a float; x86-64 evaluates float in float
// (no excess precision).
inline float BlurMeanScale(uint32_t area) {
  return 1.0f / static_cast<float>(2 * area);
}
inline uint8_t BlurMean(uint32_t sum, uint32_t area, float scale) {
  return static_cast<uint8_t>(static_cast<int32_t>(
      static_cast<float>(static_cast<int32_t>(2 * sum + area)) * scale));
}

// 1 <= blur.width, 1 <= blur.height, width * height <= kMaxBlurPixels,
// blur.pixels holds exactly width * height bytes, blur.radius <=
// kMaxBlurRadius.
[[nodiscard]] absl::Status ValidateBlur(
    const compute::v1::BlurRequest& request);

// Box-blurs the row-major `pixels` (width * height bytes) with a window of
// (2 * radius + 1)^2 pixels and returns the blurred pixels, same size. Radius
// 0 returns a copy. Returns InvalidArgumentError if pixels.size() is not
// width * height or radius > kMaxBlurRadius, and CancelledError once `cancel`
// reports a stop. Memory: the result (1 byte per pixel) and under 600 KiB of
// scratch besides the input; an image under 16 pixels wide and taller than
// wide also a transposed copy of it (1 byte per pixel). It is BoxBlurPieces
// with the one piece `pixels`.
absl::StatusOr<std::string> BoxBlur(absl::string_view pixels, uint32_t width,
                                    uint32_t height, uint32_t radius,
                                    const CancelToken& cancel);

// BoxBlur of the image whose row-major pixels are the concatenation of
// `pieces`, in order (width * height bytes in all), without first copying
// them into one buffer: for an image that arrives in several buffers (gRPC's
// receive slices). The pieces may have any sizes, empty ones included, with
// no regard to rows; the result is byte for byte BoxBlur's of the
// concatenation. The kernel reads each row in place where one piece holds it
// whole; a row that straddles pieces is copied into one scratch buffer first.
// Errors as BoxBlur's, the size checked being the pieces' total. Memory:
// BoxBlur's, and, when more than one piece holds bytes, a table of row starts
// (8 bytes per row) and the straddling rows (width bytes each, at most one row
// per boundary between pieces, and at most height rows); an image blurred
// transposed (under 16 pixels wide and taller than wide) is copied straight
// from its pieces into its transposed copy and needs neither. One non-empty
// piece costs what BoxBlur did: no table and no copy.
absl::StatusOr<std::string> BoxBlurPieces(
    absl::Span<const absl::string_view> pieces, uint32_t width, uint32_t height,
    uint32_t radius, const CancelToken& cancel);

// Cost model (TaskKind::cost_units): width x height pixels, plus
// kBlurRowCostUnits per row of each strip (kStripColumns wide), or pixels x
// kBlurTransposedCostFactor for a narrow image blurred as its transpose (at
// least pixels + kBlurRowCostUnits per column, its transpose's rows), or
// pixels x kBlurCopyCostFraction at radius 0 (a copy); plus
// kBlurFixedCostUnits. Measured (release build, kernel_bench): 0.45-0.50 ns
// per pixel from 256x256 to 2048x2048 and on 16-pixel-high strips, 0.57-0.60
// at 16 megapixels (the image no longer fits the cache), radius 64 within
// 4-11% of radius 1; so the time is radius-independent and radius >= 1 is not
// in the model. Each row of a strip costs ~16 ns besides its pixels (a sweep
// of widths at 1 megapixel on 2026-12-05: 16 wide 1.78 ns per pixel, 32 wide
// 1.06, 64 wide 0.83, 256 wide 0.64, 2048 wide 0.57), and a narrow image
// (under kNarrowColumns wide, taller than wide) about twice a wide one's per
// pixel, the transpose (in the server, 15 calls of each shape at 4
// megapixels: 2.0-2.5 ns per pixel narrow, 1.0-1.65 square, 2.2 for 16 wide).
// Through the server, where a pixel costs 1-1.6 ns (page faults, received
// pieces), the row's ~16 ns is worth fewer pixels than in the kernel alone;
// kBlurRowCostUnits sits between the two (16-wide strips, 3.1x a wide
// image's time per pixel in the kernel, are 1.6x per unit; through the
// server about 1.1x). The units carry the shape so that one learned rate per
// unit (cost_model.h) fits the shapes more closely: with plain pixels, a
// rate learned from narrow images over-estimated square ones 2-3x, and
// one learned from square images under-estimated narrow ones. Radius 0 is a
// copy, 0.03-0.07 ns per pixel; 1/8 of a blurred pixel over-estimates it a
// little. The constant is a 1x1 image's measured fixed cost (~32 ns, the
// allocations), in units of ~0.5 ns.
inline constexpr double kBlurCopyCostFraction = 1.0 / 8;
inline constexpr double kBlurFixedCostUnits = 64;
inline constexpr double kBlurRowCostUnits = 16;
inline constexpr double kBlurTransposedCostFactor = 2;
// Besides its width x height pixels, the result holds its width and height;
// serialized, those and the framing take at most 17 bytes.
inline constexpr int64_t kBlurResponseHeaderBytes = 32;

// ValidateBlur for a request whose pixels are `pixel_bytes` long, wherever
// they are.
[[nodiscard]] absl::Status ValidateBlur(const compute::v1::BlurRequest& request,
                                        size_t pixel_bytes);

// Registry adapters: validate / run request.blur(), filling response->blur();
// the cost model's units and response size for request.blur(). The pixels
// are request.blur().pixels(), or `payload` when they were received outside
// the request (payload.h; request.blur().pixels() must then be empty).
[[nodiscard]] absl::Status ValidateBlurTask(
    const compute::v1::RunRequest& request, Payload payload);
[[nodiscard]] absl::Status RunBlurTask(const compute::v1::RunRequest& request,
                                       Payload payload,
                                       const CancelToken& cancel,
                                       compute::v1::RunResponse* response);
double BlurCostUnits(const compute::v1::RunRequest& request);
int64_t BlurResponseBytes(const compute::v1::RunRequest& request);
// What BoxBlurPieces allocates in proportion to the image, besides its
// result: the transposed copy of a narrow image, or the row table and the
// straddling rows of pixels in several pieces (see its Memory:). Up to 16 MiB
// at 16 megapixels, which the memory budget must count; the fixed scratch
// (under 600 KiB per running blur) it leaves out.
int64_t BlurWorkingBytes(const compute::v1::RunRequest& request,
                         Payload payload);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_BLUR_H_
