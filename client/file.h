// Whole-file reads and writes for task inputs and outputs (sha256 --file,
// blur --in/--out) and TLS PEM files, with errors that name the path.
#ifndef COMPUTE_CLIENT_FILE_H_
#define COMPUTE_CLIENT_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace compute::client {

// NotFound / PermissionDenied / Internal, each message starting with `path`.
absl::StatusOr<std::string> ReadFile(const std::string& path);
absl::Status WriteFile(const std::string& path, std::string_view contents);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_FILE_H_
