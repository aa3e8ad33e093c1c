// Files the command line names as inputs (sha256 --file, blur --in, the TLS
// PEM files). One that cannot be read is a usage error, like a bad flag
// value: exit 2 with "cannot read PATH: REASON".
#ifndef COMPUTE_CLIENT_INPUT_FILE_H_
#define COMPUTE_CLIENT_INPUT_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace compute::client {

// The file's bytes, or InvalidArgument "cannot read PATH: REASON".
absl::StatusOr<std::string> ReadInputFile(const std::string& path);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_INPUT_FILE_H_
