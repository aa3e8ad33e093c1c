// Whole-file reads and writes, with errors that say which file and why.
// The one implementation for cgroup and /proc files, PEM files, and the
// client's inputs and outputs.
#ifndef COMPUTE_SERVER_BASE_FILE_H_
#define COMPUTE_SERVER_BASE_FILE_H_

#include <initializer_list>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace compute {

// The file's bytes. NotFound, PermissionDenied or Internal, with the message
// "cannot read PATH: <strerror>".
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Creates or truncates the file and writes `contents`. Errors as ReadFile's,
// "cannot write PATH: <strerror>".
absl::Status WriteFile(const std::string& path, absl::string_view contents);
// The same with the contents in parts, written one after another (a large
// body is never copied into one string with its header).
absl::Status WriteFile(const std::string& path,
                       std::initializer_list<absl::string_view> parts);

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_FILE_H_
