// Binary PGM (P5): the 8-bit grayscale format of the blur task's input and
// output. Netpbm's header is text (magic, width, height, maxval, with `#`
// comments), then width * height bytes, row-major. Only maxval <= 255 (one
// byte per pixel) is supported, which is what the blur task takes; the
// maxval is kept so an image written back reads the same in any viewer.
//
// A 16 MP image is 16 MiB, so the file functions move its pixels once
// each way: ReadPgm reads them from the kernel straight into
// GrayImage::pixels (only the header's first block is read apart), and
// WritePgm writes the header and then the caller's pixels as they are,
// never joined into one string.
#ifndef COMPUTE_CLIENT_PGM_H_
#define COMPUTE_CLIENT_PGM_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace compute::client {

struct PgmHeader {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t maxval = 255;  // 1..255
  size_t size = 0;        // bytes before the pixels

  uint64_t pixel_bytes() const { return uint64_t{width} * height; }
};

struct GrayImage {
  uint32_t width = 0;
  uint32_t height = 0;
  uint32_t maxval = 255;  // 1..255
  std::string pixels;     // width * height bytes, row-major
};

// InvalidArgument naming what is wrong (magic, a header field). `bytes`
// need hold only the start of the file.
absl::StatusOr<PgmHeader> ParsePgmHeader(std::string_view bytes);
// The header and the pixels after it (InvalidArgument when there are fewer
// than it says).
absl::StatusOr<GrayImage> ParsePgm(std::string_view bytes);
std::string PgmHeaderText(uint32_t width, uint32_t height, uint32_t maxval);
std::string EncodePgm(const GrayImage& image);

// InvalidArgument "cannot read PATH: REASON" when the file cannot be read,
// is not a PGM this reads, or has more pixels than the blur task takes
// (tasks::kMaxBlurPixels): a file the command line named is a usage error.
absl::StatusOr<GrayImage> ReadPgm(const std::string& path);
// Only the header (the file's first block is read).
absl::StatusOr<PgmHeader> ReadPgmHeader(const std::string& path);

// The header, then `pixels` (width * height bytes) as they are.
void WritePgm(std::ostream& out, uint32_t width, uint32_t height,
              uint32_t maxval, std::string_view pixels);
absl::Status WritePgm(const std::string& path, uint32_t width, uint32_t height,
                      uint32_t maxval, std::string_view pixels);
absl::Status WritePgm(const std::string& path, const GrayImage& image);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_PGM_H_
