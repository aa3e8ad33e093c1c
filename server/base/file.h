// Whole-file reads and writes, with errors that say which file and why.
// The one implementation for cgroup and /proc files, PEM files, and the
// client's inputs and outputs.
#ifndef COMPUTE_SERVER_BASE_FILE_H_
#define COMPUTE_SERVER_BASE_FILE_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace compute {

// The file's bytes, read to its end, or its first `max_bytes` bytes (a
// caller that takes at most N bytes asks for N + 1, to tell a file of N
// bytes from a longer one, and never reads /dev/zero whole). A regular
// file, a pipe or a character device (stdin, /dev/stdin); anything else,
// a directory first, is an error, as is a failed read (never a short
// result). NotFound, PermissionDenied or Internal, with the message
// "cannot read PATH: <strerror>" ("Is a directory").
absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     size_t max_bytes = SIZE_MAX);

// read(2) of at most `size` bytes, tried again when a signal interrupts it
// before any byte arrives: the count read, 0 at the end, or -1 with errno.
ssize_t ReadSome(int fd, char* buffer, size_t size);

// Creates or replaces the file with `contents`, whole or not at all: a
// regular file we may write (or none), in a directory we may write, is
// written beside it under a new name and renamed over it, keeping its
// permissions (not its owner or hard links); anything else (a FIFO, a
// device, a symbolic link, a file in a directory we may not write) is
// truncated and written in place. Errors as ReadFile's, "cannot write
// PATH: <strerror>".
absl::Status WriteFile(const std::string& path, absl::string_view contents);
// The same with the contents in parts, written one after another (a large
// body is never copied into one string with its header).
absl::Status WriteFile(const std::string& path,
                       std::initializer_list<absl::string_view> parts);

// Whether WriteFile could write `path` now (its directory takes a new file,
// or what is there is no directory and may be written), so that a caller
// finds out before the work whose result it is; errors as WriteFile's.
absl::Status CheckWritable(const std::string& path);

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_FILE_H_
