#include "server/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>

#include "absl/strings/str_cat.h"

namespace compute {
namespace {

absl::Status ErrnoError(const std::string& path, const char* what) {
  int e = errno;
  std::string message = absl::StrCat("cannot ", what, " ", path, ": ",
                                     e != 0 ? std::strerror(e) : "I/O error");
  switch (e) {
    case ENOENT:
      return absl::NotFoundError(message);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(message);
    default:
      return absl::InternalError(message);
  }
}

// Closes the descriptor on every way out of ReadFile.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// The first read's size when the file's size says nothing (a pipe, /proc).
constexpr size_t kReadChunk = 64 * 1024;

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     size_t max_bytes) {
  errno = 0;
  Fd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError(path, "read");
  struct stat st;
  if (fstat(fd.get(), &st) != 0) return ErrnoError(path, "read");
  // A stream of a directory reads as empty, with no error: `--ca /tmp`
  // would have been an empty CA (gRPC then trusts the system's roots).
  if (S_ISDIR(st.st_mode)) {
    errno = EISDIR;
    return ErrnoError(path, "read");
  }
  // Pipes and character devices (stdin, /dev/stdin) are read to their end;
  // a socket or a block device is not a file to read whole.
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) {
    return absl::InternalError(
        absl::StrCat("cannot read ", path,
                     ": not a regular file, pipe or character device"));
  }
  // The size is a first guess, never a limit (files in /proc and cgroupfs
  // report 0), and one byte more than it lets the first read end at the
  // end of the file, so the second sees EOF without growing the buffer.
  std::string contents;
  contents.reserve(std::min(
      max_bytes, std::max(kReadChunk, static_cast<size_t>(st.st_size) + 1)));
  while (contents.size() < max_bytes) {
    const size_t have = contents.size();
    if (have == contents.capacity()) {
      contents.reserve(std::min(max_bytes, 2 * have));
    }
    // Within the capacity: a resize that never moves the bytes read.
    contents.resize(std::min(contents.capacity(), max_bytes));
    const ssize_t n =
        read(fd.get(), contents.data() + have, contents.size() - have);
    const int read_errno = errno;
    contents.resize(have + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0 && read_errno == EINTR) continue;
    if (n < 0) {
      errno = read_errno;
      return ErrnoError(path, "read");
    }
    if (n == 0) break;
  }
  return contents;
}

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  return WriteFile(path, {contents});
}

absl::Status WriteFile(const std::string& path,
                       std::initializer_list<absl::string_view> parts) {
  errno = 0;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return ErrnoError(path, "write");
  for (absl::string_view part : parts) {
    out.write(part.data(), static_cast<std::streamsize>(part.size()));
  }
  out.close();
  if (!out) return ErrnoError(path, "write");
  return absl::OkStatus();
}

}  // namespace compute
