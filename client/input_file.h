// Files the command line names as inputs (sha256 --file, blur --in, the TLS
// PEM files). One that cannot be read is a usage error, like a bad flag
// value: exit 2 with "cannot read PATH: REASON".
#ifndef COMPUTE_CLIENT_INPUT_FILE_H_
#define COMPUTE_CLIENT_INPUT_FILE_H_

#include <cstddef>
#include <cstdint>
#include <istream>
#include <string>

#include "absl/status/statusor.h"

namespace compute::client {

// The file's bytes (at most `max_bytes`: see ReadFile), or InvalidArgument
// "cannot read PATH: REASON".
absl::StatusOr<std::string> ReadInputFile(const std::string& path,
                                          size_t max_bytes = SIZE_MAX);

// The stream's bytes to its end or `max_bytes`, read in blocks; Internal
// "cannot read NAME: I/O error" when a read fails.
absl::StatusOr<std::string> ReadInputStream(std::istream& in,
                                            const std::string& name,
                                            size_t max_bytes);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_INPUT_FILE_H_
