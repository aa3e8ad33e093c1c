// blur: box blur of an 8-bit grayscale image, the image-work task.
//
// The box filter is separable, so it runs as a horizontal pass and a vertical
// pass, each with a running sum: O(1) work per pixel whatever the radius (a
// direct 2D window would cost (2r + 1)^2 per pixel, 16641 at r = 64). Pixels
// beyond an edge repeat the edge pixel. The horizontal pass keeps exact sums
// (16 bits suffice: 255 * 129 < 65536) and the one division happens at the
// end, so each output pixel is the exact mean of its (2r + 1)^2 window rounded
// to nearest (the window is odd-sized, so there are no ties). The token is
// polled every 64K pixels of work, whatever the image's shape.
#ifndef COMPUTE_SERVER_TASKS_BLUR_H_
#define COMPUTE_SERVER_TASKS_BLUR_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"

namespace compute::tasks {

inline constexpr uint64_t kMaxBlurPixels = 16 * 1024 * 1024;
inline constexpr uint32_t kMaxBlurRadius = 64;

// 1 <= blur.width, 1 <= blur.height, width * height <= kMaxBlurPixels,
// blur.pixels holds exactly width * height bytes, blur.radius <=
// kMaxBlurRadius.
[[nodiscard]] absl::Status ValidateBlur(
    const compute::v1::BlurRequest& request);

// Box-blurs the row-major `pixels` (width * height bytes) with a window of
// (2 * radius + 1)^2 pixels and returns the blurred pixels, same size. Radius
// 0 returns a copy. Returns InvalidArgumentError if pixels.size() is not
// width * height or radius > kMaxBlurRadius, and CancelledError once `cancel`
// reports a stop. Memory: 3 bytes per pixel besides the input.
absl::StatusOr<std::string> BoxBlur(absl::string_view pixels, uint32_t width,
                                    uint32_t height, uint32_t radius,
                                    const CancelToken& cancel);

// Cost model (TaskKind::cost_units): width x height pixels, or pixels x
// kBlurCopyCostFraction at radius 0 (a copy), plus kBlurFixedCostUnits.
// Measured (release build), radius 64 against radius 1: 2% slower or less on
// images with both sides >= 1024, 7% at 256x256, 10-12% on 16-pixel-thin
// strips, 34% at 64x64 (each row's and column strip's first window costs
// O(radius)). That is less than the shape itself moves the time per pixel
// (2.1 ns at 1-4 megapixels, 3.0 at 16 megapixels, 3.1-3.6 on thin strips, 5
// on a one-pixel-wide column), so radius >= 1 is not in the model. Radius 0 is
// a copy, 0.02-0.07 ns per pixel; 1/32 of a blurred pixel over-estimates it a
// little. The constant is a 1x1 image's measured fixed cost (~40 ns, the
// allocations).
inline constexpr double kBlurCopyCostFraction = 1.0 / 32;
inline constexpr double kBlurFixedCostUnits = 16;
// Besides its width x height pixels, the result holds its width and height;
// serialized, those and the framing take at most 17 bytes.
inline constexpr int64_t kBlurResponseHeaderBytes = 32;

// Registry adapters: validate / run request.blur(), filling response->blur();
// the cost model's units and response size for request.blur().
[[nodiscard]] absl::Status ValidateBlurTask(
    const compute::v1::RunRequest& request);
[[nodiscard]] absl::Status RunBlurTask(const compute::v1::RunRequest& request,
                                       const CancelToken& cancel,
                                       compute::v1::RunResponse* response);
double BlurCostUnits(const compute::v1::RunRequest& request);
int64_t BlurResponseBytes(const compute::v1::RunRequest& request);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_BLUR_H_
