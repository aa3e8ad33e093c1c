#include "client/input_file.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/base/file.h"

namespace compute::client {

absl::StatusOr<std::string> ReadInputFile(const std::string& path,
                                          size_t max_bytes) {
  absl::StatusOr<std::string> bytes = ReadFile(path, max_bytes);
  if (!bytes.ok()) return absl::InvalidArgumentError(bytes.status().message());
  return bytes;
}

absl::StatusOr<std::string> ReadInputStream(std::istream& in,
                                            const std::string& name,
                                            size_t max_bytes) {
  constexpr size_t kBlock = 64 * 1024;
  std::string bytes;
  while (bytes.size() < max_bytes && in) {
    const size_t have = bytes.size();
    bytes.resize(have + std::min(kBlock, max_bytes - have));
    in.read(bytes.data() + have,
            static_cast<std::streamsize>(bytes.size() - have));
    bytes.resize(have + static_cast<size_t>(in.gcount()));
  }
  if (const auto* fd = dynamic_cast<const FdInput*>(in.rdbuf());
      fd != nullptr && fd->error() != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read ", name, ": ", std::strerror(fd->error())));
  }
  if (in.bad()) {
    return absl::InternalError(
        absl::StrCat("cannot read ", name, ": I/O error"));
  }
  return bytes;
}

FdInput::int_type FdInput::underflow() {
  if (gptr() < egptr()) return traits_type::to_int_type(*gptr());
  if (error_ != 0) return traits_type::eof();
  const ssize_t n = ReadSome(fd_, buffer_, sizeof(buffer_));
  if (n < 0) error_ = errno;
  if (n <= 0) return traits_type::eof();
  setg(buffer_, buffer_, buffer_ + n);
  return traits_type::to_int_type(*gptr());
}

}  // namespace compute::client
