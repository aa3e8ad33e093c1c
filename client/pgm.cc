#include "client/pgm.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <system_error>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/base/file.h"
#include "server/base/string_view.h"
// For kMaxBlurPixels alone (a constant: nothing of compute_tasks is linked).
#include "server/tasks/blur.h"

namespace compute::client {
namespace {

// Enough for any header a tool writes (comments included); a longer one
// reads as "bad width" or "no pixel data".
constexpr size_t kFirstBlock = 64 * 1024;
// A pipe has no size to check a header against, so its pixels are read
// as they arrive, this many bytes at a time: a header that promises more
// than comes costs no more memory than what came.
constexpr size_t kPipeChunk = 1 << 20;

// Reads the header's next unsigned integer, skipping whitespace and
// comments (from `#` to the end of the line: a LF or a CR).
bool NextNumber(std::string_view bytes, size_t* pos, uint64_t* value) {
  size_t i = *pos;
  while (i < bytes.size()) {
    if (bytes[i] == '#') {
      while (i < bytes.size() && bytes[i] != '\n' && bytes[i] != '\r') ++i;
    } else if (std::isspace(static_cast<unsigned char>(bytes[i]))) {
      ++i;
    } else {
      break;
    }
  }
  size_t start = i;
  while (i < bytes.size() && std::isdigit(static_cast<unsigned char>(bytes[i])))
    ++i;
  if (i == start) return false;
  *pos = i;
  // Leading zeros are digits of no weight ("0004" is 4): past them, at
  // most 9 digits, so the value fits in any field and a huge one reads as
  // bad rather than wrapping.
  size_t first = start;
  while (first + 1 < i && bytes[first] == '0') ++first;
  if (i - first > 9) return false;
  return absl::SimpleAtoi(absl::string_view(bytes.data() + first, i - first),
                          value);
}

absl::Status PixelsShort(const PgmHeader& header, uint64_t have) {
  return absl::InvalidArgumentError(absl::StrCat(
      "PGM: ", header.width, "x", header.height, " needs ",
      header.pixel_bytes(), " bytes of pixels, the file has ", have));
}

absl::Status CannotRead(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("cannot read ", path, ": ", why));
}

// Opens `path`, reads its first block (the header and the first pixels)
// into *first, leaving *in just past it, and parses the header there.
absl::StatusOr<PgmHeader> ReadHeader(const std::string& path, std::ifstream* in,
                                     std::string* first) {
  errno = 0;
  in->open(path, std::ios::binary);
  if (!*in) {
    return CannotRead(path, errno != 0 ? std::strerror(errno) : "I/O error");
  }
  first->resize(kFirstBlock);
  in->read(first->data(), static_cast<std::streamsize>(first->size()));
  if (in->bad()) return CannotRead(path, std::strerror(errno));
  first->resize(static_cast<size_t>(in->gcount()));
  absl::StatusOr<PgmHeader> header = ParsePgmHeader(*first);
  if (!header.ok()) return CannotRead(path, header.status().message());
  return header;
}

}  // namespace

absl::StatusOr<PgmHeader> ParsePgmHeader(std::string_view bytes) {
  if (bytes.substr(0, 2) != "P5") {
    return absl::InvalidArgumentError(
        "not a binary PGM image (the file must start with P5)");
  }
  size_t pos = 2;
  uint64_t width = 0, height = 0, maxval = 0;
  if (!NextNumber(bytes, &pos, &width) || width == 0) {
    return absl::InvalidArgumentError(
        "PGM: bad width (a whole number of 1 or more after P5)");
  }
  if (!NextNumber(bytes, &pos, &height) || height == 0) {
    return absl::InvalidArgumentError(
        "PGM: bad height (a whole number of 1 or more after the width)");
  }
  if (!NextNumber(bytes, &pos, &maxval) || maxval == 0 || maxval > 255) {
    return absl::InvalidArgumentError(
        "PGM: maxval must be 1..255 (16-bit images are not supported)");
  }
  // Exactly one whitespace byte separates the header from the pixels. A
  // comment right before it is refused, not guessed at: Netpbm's format
  // says the comment's newline does not delimit the pixels (a whitespace
  // byte must follow it), while its library takes that newline as the
  // delimiter, and the two read the same file one byte apart.
  if (pos < bytes.size() && bytes[pos] == '#') {
    return absl::InvalidArgumentError(
        "PGM: a comment right after the maxval is ambiguous (Netpbm's tools "
        "disagree on where the pixels start): remove it");
  }
  if (pos >= bytes.size() ||
      !std::isspace(static_cast<unsigned char>(bytes[pos]))) {
    return absl::InvalidArgumentError("PGM: no pixel data");
  }
  PgmHeader header;
  header.width = static_cast<uint32_t>(width);
  header.height = static_cast<uint32_t>(height);
  header.maxval = static_cast<uint32_t>(maxval);
  header.size = pos + 1;
  return header;
}

absl::StatusOr<GrayImage> ParsePgm(std::string_view bytes) {
  absl::StatusOr<PgmHeader> header = ParsePgmHeader(bytes);
  if (!header.ok()) return header.status();
  const uint64_t size = header->pixel_bytes();
  if (bytes.size() - header->size < size) {
    return PixelsShort(*header, bytes.size() - header->size);
  }
  GrayImage image;
  image.width = header->width;
  image.height = header->height;
  image.maxval = header->maxval;
  image.pixels = std::string(bytes.substr(header->size, size));
  return image;
}

std::string PgmHeaderText(uint32_t width, uint32_t height, uint32_t maxval) {
  return absl::StrCat("P5\n", width, " ", height, "\n", maxval, "\n");
}

std::string EncodePgm(const GrayImage& image) {
  return absl::StrCat(PgmHeaderText(image.width, image.height, image.maxval),
                      image.pixels);
}

absl::StatusOr<PgmHeader> ReadPgmHeader(const std::string& path) {
  std::ifstream in;
  std::string first;
  return ReadHeader(path, &in, &first);
}

absl::StatusOr<GrayImage> ReadPgm(const std::string& path) {
  std::ifstream in;
  std::string first;
  absl::StatusOr<PgmHeader> header = ReadHeader(path, &in, &first);
  if (!header.ok()) return header.status();
  GrayImage image;
  image.width = header->width;
  image.height = header->height;
  image.maxval = header->maxval;
  const uint64_t size = header->pixel_bytes();
  // Width and height are up to 9 digits each: a header may promise more
  // than any memory (60000x60000 is 3.6 GB). The server blurs no more than
  // this, so no more is read.
  if (size > tasks::kMaxBlurPixels) {
    return CannotRead(
        path, absl::StrCat("PGM: ", image.width, "x", image.height, " is ",
                           size, " pixels, over the ", tasks::kMaxBlurPixels,
                           " a blur takes"));
  }
  // A header that promises more than the file holds is refused before any
  // memory is taken for it (when the file has a size: not a pipe).
  std::error_code no_size;
  const uint64_t file_size = std::filesystem::file_size(path, no_size);
  if (!no_size && file_size - header->size < size) {
    return CannotRead(path,
                      PixelsShort(*header, file_size - header->size).message());
  }
  // The pixels read with the header's block, then the rest straight from
  // the kernel into their string (a read this large bypasses the stream's
  // own buffer): all at once from a file, whose size was checked, a chunk
  // at a time from a pipe.
  const size_t chunk = no_size ? kPipeChunk : size;
  std::string_view early = std::string_view(first).substr(header->size, size);
  image.pixels.assign(early);
  size_t have = early.size();
  while (have < size) {
    const size_t want = std::min<size_t>(chunk, size - have);
    image.pixels.resize(have + want);
    in.read(image.pixels.data() + have, static_cast<std::streamsize>(want));
    const size_t got = static_cast<size_t>(in.gcount());
    have += got;
    if (in.bad()) return CannotRead(path, std::strerror(errno));
    if (got < want) break;
  }
  if (have < size) {
    return CannotRead(path, PixelsShort(*header, have).message());
  }
  return image;
}

void WritePgm(std::ostream& out, uint32_t width, uint32_t height,
              uint32_t maxval, std::string_view pixels) {
  out << PgmHeaderText(width, height, maxval);
  out.write(pixels.data(), static_cast<std::streamsize>(pixels.size()));
}

absl::Status WritePgm(const std::string& path, uint32_t width, uint32_t height,
                      uint32_t maxval, std::string_view pixels) {
  return WriteFile(path,
                   {PgmHeaderText(width, height, maxval), AbslView(pixels)});
}

absl::Status WritePgm(const std::string& path, const GrayImage& image) {
  return WritePgm(path, image.width, image.height, image.maxval, image.pixels);
}

}  // namespace compute::client
