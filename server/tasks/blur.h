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

// Registry adapters: validate / run request.blur(), filling response->blur().
[[nodiscard]] absl::Status ValidateBlurTask(
    const compute::v1::RunRequest& request);
[[nodiscard]] absl::Status RunBlurTask(const compute::v1::RunRequest& request,
                                       const CancelToken& cancel,
                                       compute::v1::RunResponse* response);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_BLUR_H_
