// The last line before abort(): written to stderr without blocking on it.
#pragma once

#include <string>
#include <string_view>

namespace compute::base {

// Writes `line` to stderr (fd 2), waiting at most kCrashLineWaitMs for it
// to take the line, and writes nothing past that. For invariant checks that
// abort(): their line bypasses the log sink (server/log_sink.h), which may
// be the very thing that is broken, and a plain fprintf blocks for as long
// as the log reader does not read: with a stalled log pipeline (a full
// pipe) the crash became a hang, a process that neither served nor exited
// for its supervisor to restart. A line of up to PIPE_BUF bytes goes whole
// or not at all into a pipe with room (POLLOUT: a free page).
void WriteCrashLine(std::string_view line);

inline constexpr int kCrashLineWaitMs = 100;

// The line of a failed invariant check, one JSON object as every line on
// stderr (server/log.h): {"ts":...,"level":"fatal","msg":<what>,
// "where":"<file>:<line>","condition":<condition>}, and a newline.
std::string CrashLine(const char* file, int line, const char* what,
                      const char* condition);

// Writes CrashLine(...) by WriteCrashLine, then abort()s: the failure of an
// invariant check.
[[noreturn]] void AbortOnFailedCheck(const char* file, int line,
                                     const char* what, const char* condition);

}  // namespace compute::base
