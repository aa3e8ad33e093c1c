#include "server/base/crash_line.h"

#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

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

namespace {

// `text` as a JSON string, quotes included. The texts are the source's
// (file names, conditions): quotes, backslashes and control bytes are
// escaped, and a byte past ASCII becomes '?' (the line must be valid UTF-8,
// and such a byte may not be).
std::string JsonString(std::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      out += '?';  // not known to be UTF-8; as server/log.cc does
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
    } else {
      out += c;
    }
  }
  out += '"';
  return out;
}

}  // namespace

std::string CrashLine(const char* file, int line, const char* what,
                      const char* condition) {
  // JSON like every other line on stderr (server/log.h), so that a log
  // collector keeps the one line that says why the process ended.
  return absl::StrCat(
      "{\"ts\":",
      JsonString(absl::FormatTime(absl::RFC3339_full, absl::Now(),
                                  absl::UTCTimeZone())),
      ",\"level\":\"fatal\",\"msg\":", JsonString(what),
      ",\"where\":", JsonString(absl::StrCat(file, ":", line)),
      ",\"condition\":", JsonString(condition), "}\n");
}

void AbortOnFailedCheck(const char* file, int line, const char* what,
                        const char* condition) {
  WriteCrashLine(CrashLine(file, line, what, condition));
  std::abort();
}

}  // namespace compute::base
