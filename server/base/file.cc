#include "server/base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <utility>

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

// Closes the descriptor on every way out of ReadFile and WriteFile.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  Fd& operator=(Fd&& other) noexcept {
    if (fd_ >= 0) close(fd_);
    fd_ = other.release();
    return *this;
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

// The directory a path names a file in.
std::string DirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Temporary files' names: distinct within the process.
uint64_t NextTempId() {
  static std::atomic<uint64_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed);
}

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
        ReadSome(fd.get(), contents.data() + have, contents.size() - have);
    const int read_errno = errno;
    contents.resize(have + static_cast<size_t>(std::max<ssize_t>(n, 0)));
    if (n < 0) {
      errno = read_errno;
      return ErrnoError(path, "read");
    }
    if (n == 0) break;
  }
  return contents;
}

ssize_t ReadSome(int fd, char* buffer, size_t size) {
  ssize_t n;
  do {
    n = read(fd, buffer, size);
  } while (n < 0 && errno == EINTR);
  return n;
}

absl::Status WriteFile(const std::string& path, absl::string_view contents) {
  return WriteFile(path, {contents});
}

absl::Status WriteFile(const std::string& path,
                       std::initializer_list<absl::string_view> parts) {
  errno = 0;
  struct stat existing;
  const bool exists = lstat(path.c_str(), &existing) == 0;
  if (!exists && errno != ENOENT) return ErrnoError(path, "write");
  // A regular file (or none) that may be written, in a directory that takes
  // a new file, is replaced: written beside it and renamed over it once
  // whole, so a write that fails (a full disk, a file size limit) leaves
  // the old file as it was (until 2026-12-06 a failed `--out` left a PGM
  // header over part of its pixels, the old image gone: a review's
  // finding). Anything else is written in place, as before: a FIFO, a
  // device (/dev/stdout, /dev/full) and a symbolic link (written through),
  // which a rename would replace, and a file in a directory we may not
  // write (where a file we may not write is refused, EACCES, as it was).
  const bool replace = (!exists || (S_ISREG(existing.st_mode) &&
                                    access(path.c_str(), W_OK) == 0)) &&
                       access(DirectoryOf(path).c_str(), W_OK) == 0;
  std::string written = path;
  errno = 0;
  Fd fd(-1);
  if (!replace) {
    fd = Fd(open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666));
  } else {
    // A new name, never an existing one (O_EXCL, no link followed): in a
    // shared directory another user's file or link there is not written.
    for (int attempt = 0; fd.get() < 0 && attempt < 100; ++attempt) {
      written = absl::StrCat(path, ".tmp-", getpid(), "-", NextTempId());
      fd = Fd(open(written.c_str(),
                   O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666));
      if (fd.get() < 0 && errno != EEXIST) break;
    }
  }
  if (fd.get() < 0) return ErrnoError(path, "write");
  auto fail = [&] {
    absl::Status error = ErrnoError(path, "write");
    if (replace) unlink(written.c_str());
    return error;
  };
  // A file replaced keeps its permissions (not its owner, links or extended
  // attributes: a new file is renamed over it).
  if (replace && exists && fchmod(fd.get(), existing.st_mode & 07777) != 0) {
    return fail();
  }
  for (absl::string_view part : parts) {
    while (!part.empty()) {
      const ssize_t n = write(fd.get(), part.data(), part.size());
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return fail();
      part.remove_prefix(static_cast<size_t>(n));
    }
  }
  if (close(fd.release()) != 0) return fail();
  if (replace && rename(written.c_str(), path.c_str()) != 0) return fail();
  return absl::OkStatus();
}

absl::Status CheckWritable(const std::string& path) {
  errno = 0;
  struct stat existing;
  if (stat(path.c_str(), &existing) == 0) {  // through a link
    if (S_ISDIR(existing.st_mode)) errno = EISDIR;
    if (errno != 0 || access(path.c_str(), W_OK) != 0) {
      return ErrnoError(path, "write");
    }
    return absl::OkStatus();
  }
  // Not there (or a link to nothing): its directory must take it. Anything
  // else is the error (`file.pgm/`: ENOTDIR).
  if (errno != ENOENT || access(DirectoryOf(path).c_str(), W_OK) != 0) {
    return ErrnoError(path, "write");
  }
  return absl::OkStatus();
}

}  // namespace compute
