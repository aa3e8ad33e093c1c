// Binary PGM (P5): the 8-bit grayscale format of the blur task's input and
// output. Netpbm's header is text (magic, width, height, maxval, with `#`
// comments), then width * height bytes, row-major. Only maxval <= 255 (one
// byte per pixel) is supported, which is what the blur task takes; the
// maxval is kept so an image written back reads the same in any viewer.
#ifndef COMPUTE_CLIENT_PGM_H_
#define COMPUTE_CLIENT_PGM_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace compute::client {

struct GrayImage {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t maxval = 255;  // 1..255
  std::string pixels;     // width * height bytes, row-major
};

// InvalidArgument naming what is wrong (magic, a header field, data size).
absl::StatusOr<GrayImage> ParsePgm(std::string_view bytes);
std::string EncodePgm(const GrayImage& image);

// InvalidArgument "cannot read PATH: REASON" when the file cannot be read or
// is not a PGM this reads: a file the command line named is a usage error.
absl::StatusOr<GrayImage> ReadPgm(const std::string& path);
absl::Status WritePgm(const std::string& path, const GrayImage& image);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_PGM_H_
