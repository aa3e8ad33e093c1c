#include "server/base/file.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

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

}  // namespace

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) return ErrnoError(path, "read");
  std::ostringstream contents;
  contents << in.rdbuf();
  if (in.bad()) return ErrnoError(path, "read");
  return std::move(contents).str();
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
