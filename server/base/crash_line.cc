#include "server/base/crash_line.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace compute::base {

void WriteCrashLine(std::string_view line) {
  pollfd out{};
  out.fd = STDERR_FILENO;
  out.events = POLLOUT;
  int ready;
  do {
    ready = poll(&out, 1, kCrashLineWaitMs);
  } while (ready < 0 && errno == EINTR);
  if (ready != 1 || (out.revents & POLLOUT) == 0) return;
  // One write: a line this short fits what POLLOUT promised; a partial one
  // (a non-blocking stderr) is left as it is, the process is ending.
  [[maybe_unused]] ssize_t written =
      write(STDERR_FILENO, line.data(), line.size());
}

void AbortOnFailedCheck(const char* file, int line, const char* what,
                        const char* condition) {
  WriteCrashLine(
      absl::StrCat(file, ":", line, ": ", what, ": ", condition, "\n"));
  std::abort();
}

}  // namespace compute::base
