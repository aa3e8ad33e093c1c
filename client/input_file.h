// Files the command line names as inputs (sha256 --file, blur --in, the TLS
// PEM files). One that cannot be read is a usage error, like a bad flag
// value: exit 2 with "cannot read PATH: REASON".
#ifndef COMPUTE_CLIENT_INPUT_FILE_H_
#define COMPUTE_CLIENT_INPUT_FILE_H_

#include <cstddef>
#include <cstdint>
#include <istream>
#include <streambuf>
#include <string>

#include "absl/status/statusor.h"

namespace compute::client {

// The file's bytes (at most `max_bytes`: see ReadFile), or InvalidArgument
// "cannot read PATH: REASON".
absl::StatusOr<std::string> ReadInputFile(const std::string& path,
                                          size_t max_bytes = SIZE_MAX);

// The stream's bytes to its end or `max_bytes`, read in blocks; Internal
// "cannot read NAME: I/O error" when a read fails, or InvalidArgument
// "cannot read NAME: REASON" when the stream reads an FdInput whose read
// failed.
absl::StatusOr<std::string> ReadInputStream(std::istream& in,
                                            const std::string& name,
                                            size_t max_bytes);

// A stream buffer over a file descriptor (the binary's stdin) that keeps
// a failed read's errno. std::cin's buffer takes a failed read(2) for the
// end of the input: `run sha256 < DIR` (EISDIR) or with stdin closed
// (EBADF) hashed 0 bytes and exited 0 (until 2026-12-06, a review's
// finding).
class FdInput final : public std::streambuf {
 public:
  explicit FdInput(int fd) : fd_(fd) {}
  // The errno of the read that failed; 0 while none has.
  int error() const { return error_; }

 protected:
  int_type underflow() override;

 private:
  const int fd_;
  int error_ = 0;
  char buffer_[64 * 1024];
};

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_INPUT_FILE_H_
