// Structured logs: one JSON object per line on stderr, for log collectors.
// Values are a google.protobuf.Struct, each printed with protobuf's
// json_util, so escaping is never hand-rolled. No line per request: only
// start-up, shutdown and errors.
//
// Key order is fixed, so that a person reading the log finds the same thing
// in the same place: "ts", "level", "msg" first, then the fields sorted by
// name.
//
// gRPC's core logs through gpr_log, and protobuf through its own log
// handler, by default as their own text lines on stderr ("E1201
// 00:23:55.697 hpack_parser.cc:1218] Error parsing ...", "[libprotobuf
// ERROR ...] String field ... contains invalid UTF-8 data"), which would
// break any collector that reads one JSON object per line.
// RouteLibraryLogs() sends both through LogJson too, so stderr holds nothing
// but JSON lines.
//
// Lines go out through a LogSink (log_sink.h): once StartLogWriter() has
// run, a thread of its own writes them, so a log reader that stalls never
// blocks a thread that logs; past kMaxPendingLogBytes waiting, lines are
// dropped and a warning, "log lines dropped", says how many. Our own error
// lines, and a library's line before an abort, wait up to 100 ms to be
// written (the line before an abort); a library's other error lines, which
// a client can cause, never wait.
//
// Thread-safety: every function may be called from any thread; lines are
// written whole, in order, never interleaved.
#ifndef COMPUTE_SERVER_LOG_H_
#define COMPUTE_SERVER_LOG_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"
#include "server/pool/sync.h"

namespace compute {

enum class LogLevel { kDebug, kInfo, kWarning, kError };

// "debug", "info", "warning", "error"; nullopt for anything else.
std::optional<LogLevel> ParseLogLevel(std::string_view text);
std::string_view LogLevelName(LogLevel level);

// Lines below `level` are dropped from now on (the default is info).
void SetLogLevel(LogLevel level);

// Prints FormatLogLine(now, ...) and a newline to stderr, unless `level`
// names a level below the one set (a level that is not one of the four
// names is always printed, as an error).
void LogJson(const std::string& level, const std::string& msg,
             const google::protobuf::Struct& fields = {});

// How many bytes of lines may wait for a slow log reader.
inline constexpr size_t kMaxPendingLogBytes = 1 << 20;

// Starts the thread that writes the log; until then, and if it cannot start
// (the error says why), each line is written by the thread that logs it.
absl::Status StartLogWriter();

// Lines dropped so far because the log's reader fell behind.
uint64_t LogLinesDropped();

// Counts the library lines left out since the last one written (a notice
// that no later line will carry), then waits until the lines logged so far
// are written; false if `timeout` passed first (a reader that does not
// read). For the end of main.
bool FlushLogs(absl::Duration timeout);

// Routes gRPC's and protobuf's own log messages into LogJson, from now on:
// the level from the library's severity, msg its text, and the fields
// "source" ("grpc" or "protobuf"), "file" and "line" where it logged.
// gRPC's verbosity follows `level`: debug prints all of gRPC's messages, any
// other level its errors only; it wins over GRPC_VERBOSITY. Call before gRPC
// starts (before any server or channel is built): a message logged earlier is
// the library's text.
void RouteLibraryLogs(LogLevel level);

// How many lines a source may write each second. gRPC logs an error for
// some bad requests (a content-type that is not gRPC's, a malformed
// header), with what the client sent in it, and protobuf for others (a
// Health or reflection request whose string is not UTF-8): one line per
// request, which anyone who can reach the port could use to fill the log
// store or trip alerts on error lines. So at most kLibraryLinesPerSecond of
// each library's lines go out each second; the rest are counted, and the
// next line written after them is preceded by one warning, "gRPC log lines
// suppressed" (or "protobuf ..."), that says how many. (At
// --log_level=debug every line goes out, and always a line that comes
// before an abort: a failed assertion of gRPC's, a fatal one of protobuf's.)
class LineBudget {
 public:
  explicit LineBudget(int per_second) : per_second_(per_second) {}
  // Whether a line at `now` may be written; if so, *suppressed is the
  // number of lines refused since the last one written (0 if none).
  bool Admit(absl::Time now, int64_t* suppressed);
  // As Admit, at the time read (into *now) under the budget's lock: lines
  // are admitted in the order of their times, so the lines one second
  // admits all carry that second.
  bool AdmitNow(absl::Time* now, int64_t* suppressed);
  // The lines refused since the last one admitted, and from now none: for
  // a count that no later line will carry (at exit).
  int64_t TakeRefused();

  // A wall clock that steps back by more than this starts the earlier
  // second afresh; a smaller step counts against the current second.
  static constexpr int64_t kStepBackSeconds = 2;

 private:
  bool AdmitLocked(absl::Time now, int64_t* suppressed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const int per_second_;
  Mutex mu_;
  int64_t second_ ABSL_GUARDED_BY(mu_) = 0;  // since the epoch
  int written_ ABSL_GUARDED_BY(mu_) = 0;     // in second_
  int64_t refused_ ABSL_GUARDED_BY(mu_) = 0;
};
inline constexpr int kLibraryLinesPerSecond = 20;

// The fields RouteLibraryLogs() adds to a library's line: "source" is
// "grpc" or "protobuf".
google::protobuf::Struct LibraryLogFields(const std::string& source,
                                          const char* file, int line);

// {"ts":"<RFC 3339, UTC>","level":...,"msg":...,<fields sorted by key>}.
// A field named ts, level or msg is left out (the line's own come first).
std::string FormatLogLine(absl::Time now, const std::string& level,
                          const std::string& msg,
                          const google::protobuf::Struct& fields);

// Small helpers to fill a Struct.
void Put(google::protobuf::Struct& s, const std::string& key,
         const std::string& value);
void Put(google::protobuf::Struct& s, const std::string& key, double value);
void Put(google::protobuf::Struct& s, const std::string& key, bool value);
// A string literal is a string (without it, the bool overload took it).
inline void Put(google::protobuf::Struct& s, const std::string& key,
                const char* value) {
  Put(s, key, std::string(value));
}

}  // namespace compute

#endif  // COMPUTE_SERVER_LOG_H_
