#include "client/input_file.h"

#include "server/base/file.h"

namespace compute::client {

absl::StatusOr<std::string> ReadInputFile(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  if (!bytes.ok()) return absl::InvalidArgumentError(bytes.status().message());
  return bytes;
}

}  // namespace compute::client
