#include "client/pgm.h"

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/input_file.h"
#include "server/base/file.h"

namespace compute::client {
namespace {

// Reads the header's next unsigned integer, skipping whitespace and
// comments (from `#` to the end of the line).
bool NextNumber(std::string_view bytes, size_t* pos, uint64_t* value) {
  size_t i = *pos;
  while (i < bytes.size()) {
    if (bytes[i] == '#') {
      while (i < bytes.size() && bytes[i] != '\n') ++i;
    } else if (std::isspace(static_cast<unsigned char>(bytes[i]))) {
      ++i;
    } else {
      break;
    }
  }
  size_t start = i;
  while (i < bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[i])))
    ++i;
  if (i == start || i - start > 9) return false;
  *pos = i;
  return absl::SimpleAtoi(absl::string_view(bytes.data() + start, i - start),
                          value);
}

}  // namespace

absl::StatusOr<GrayImage> ParsePgm(std::string_view bytes) {
  if (bytes.substr(0, 2) != "P5") {
    return absl::InvalidArgumentError(
        "not a binary PGM image (the file must start with P5)");
  }
  size_t pos = 2;
  uint64_t width = 0, height = 0, maxval = 0;
  if (!NextNumber(bytes, &pos, &width) || width == 0) {
    return absl::InvalidArgumentError("PGM: bad width");
  }
  if (!NextNumber(bytes, &pos, &height) || height == 0) {
    return absl::InvalidArgumentError("PGM: bad height");
  }
  if (!NextNumber(bytes, &pos, &maxval) || maxval == 0 || maxval > 255) {
    return absl::InvalidArgumentError(
        "PGM: maxval must be 1..255 (16-bit images are not supported)");
  }
  // Exactly one whitespace byte separates the header from the pixels.
  if (pos >= bytes.size() ||
      !std::isspace(static_cast<unsigned char>(bytes[pos]))) {
    return absl::InvalidArgumentError("PGM: no pixel data");
  }
  ++pos;
  uint64_t size = width * height;
  if (bytes.size() - pos < size) {
    return absl::InvalidArgumentError(
        absl::StrCat("PGM: ", width, "x", height, " needs ", size,
                     " bytes of pixels, the file has ", bytes.size() - pos));
  }
  GrayImage image;
  image.width = static_cast<uint32_t>(width);
  image.height = static_cast<uint32_t>(height);
  image.maxval = static_cast<uint32_t>(maxval);
  image.pixels = std::string(bytes.substr(pos, size));
  return image;
}

std::string EncodePgm(const GrayImage& image) {
  return absl::StrCat("P5\n", image.width, " ", image.height, "\n",
                      image.maxval, "\n", image.pixels);
}

absl::StatusOr<GrayImage> ReadPgm(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadInputFile(path);
  if (!bytes.ok()) return bytes.status();
  absl::StatusOr<GrayImage> image = ParsePgm(*bytes);
  if (!image.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", path, ": ", image.status().message()));
  }
  return image;
}

absl::Status WritePgm(const std::string& path, const GrayImage& image) {
  return WriteFile(path, EncodePgm(image));
}

}  // namespace compute::client
