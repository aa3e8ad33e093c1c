#include "server/log.h"

#include <grpc/support/log.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/json_util.h"
#include "server/log_sink.h"

namespace compute {
namespace {

std::atomic<LogLevel> g_min_level{LogLevel::kInfo};

LineBudget g_grpc_lines(kLibraryLinesPerSecond);
LineBudget g_protobuf_lines(kLibraryLinesPerSecond);

// An error line waits this long to be written (log_sink.h): long enough for
// a reader that reads, short enough that a stalled one costs little.
constexpr absl::Duration kErrorLineWait = absl::Milliseconds(100);

std::string DropNotice(uint64_t dropped) {
  google::protobuf::Struct fields;
  Put(fields, "dropped", static_cast<double>(dropped));
  Put(fields, "max_pending_bytes", static_cast<double>(kMaxPendingLogBytes));
  return FormatLogLine(absl::Now(), "warning",
                       "log lines dropped: the log's reader fell behind",
                       fields) +
         "\n";
}

// Never destroyed: its writer may be blocked in write(2) at exit, and lines
// may be logged while other static objects are destroyed.
LogSink& Sink() {
  static LogSink* sink =
      new LogSink(STDERR_FILENO, kMaxPendingLogBytes, &DropNotice);
  return *sink;
}

// `wait`: how long the line may wait for a slow reader (log_sink.h).
void LogJsonAt(absl::Time now, const std::string& level, const std::string& msg,
               const google::protobuf::Struct& fields, absl::Duration wait) {
  std::optional<LogLevel> parsed = ParseLogLevel(level);
  if (parsed.has_value() &&
      *parsed < g_min_level.load(std::memory_order_relaxed)) {
    return;
  }
  std::string line = FormatLogLine(now, level, msg, fields);
  line.push_back('\n');
  Sink().Write(std::move(line), wait);
}

// The warning that counts a library's lines its budget left out.
void LogSuppressed(absl::Time now, const std::string& source,
                   int64_t suppressed) {
  google::protobuf::Struct fields;
  Put(fields, "source", source);
  Put(fields, "suppressed", static_cast<double>(suppressed));
  Put(fields, "limit_per_second", static_cast<double>(kLibraryLinesPerSecond));
  // At the level of the lines it counts when warnings are not shown.
  const bool warnings_shown =
      g_min_level.load(std::memory_order_relaxed) <= LogLevel::kWarning;
  LogJsonAt(
      now, warnings_shown ? "warning" : "error",
      absl::StrCat(source == "grpc" ? "gRPC" : source, " log lines suppressed"),
      fields, absl::ZeroDuration());
}

// One of a library's lines, within its budget unless it is `fatal` (the
// line before an abort, which also waits for a slow reader) or the level is
// debug (whoever asks for every line gets them).
void LogLibraryLine(LineBudget& budget, const std::string& source,
                    LogLevel level, bool fatal, const char* file, int line,
                    const std::string& text) {
  // One reading of the clock for the budget and the line's "ts", taken in
  // the budget's order, so that the lines a second admits carry that second.
  absl::Time now = absl::Now();
  int64_t suppressed = 0;
  if (g_min_level.load(std::memory_order_relaxed) != LogLevel::kDebug &&
      !fatal && !budget.AdmitNow(&now, &suppressed)) {
    return;
  }
  if (suppressed > 0) LogSuppressed(now, source, suppressed);
  // Some messages end in a newline of their own.
  LogJsonAt(now, std::string(LogLevelName(level)),
            std::string(absl::StripTrailingAsciiWhitespace(text)),
            LibraryLogFields(source, file, line),
            fatal ? kErrorLineWait : absl::ZeroDuration());
}

void GrpcLogToJson(gpr_log_func_args* args) {
  // A failed assertion: GPR_ASSERT logs it and aborts, and that line says
  // why the server died.
  const bool assertion = args->message != nullptr &&
                         absl::StartsWith(args->message, "assertion failed");
  LogLevel level = LogLevel::kDebug;
  if (args->severity == GPR_LOG_SEVERITY_ERROR) level = LogLevel::kError;
  if (args->severity == GPR_LOG_SEVERITY_INFO) level = LogLevel::kInfo;
  LogLibraryLine(g_grpc_lines, "grpc", level, assertion, args->file, args->line,
                 args->message != nullptr ? args->message : "");
}

// Set while this thread handles one of protobuf's lines or formats any
// line: formatting uses protobuf, and a line it logged meanwhile would come
// back here, to take the budget's lock, or the log sink's (a drop notice is
// formatted under it), a second time. Such a line is dropped.
thread_local bool t_in_protobuf_line = false;
thread_local bool t_formatting = false;

void ProtobufLogToJson(google::protobuf::LogLevel severity,
                       const char* filename, int line,
                       const std::string& message) {
  if (t_in_protobuf_line || t_formatting) return;
  t_in_protobuf_line = true;
  LogLevel level = LogLevel::kError;
  if (severity == google::protobuf::LOGLEVEL_INFO) level = LogLevel::kInfo;
  if (severity == google::protobuf::LOGLEVEL_WARNING) {
    level = LogLevel::kWarning;
  }
  // protobuf aborts (or throws) after a fatal line.
  const bool fatal = severity == google::protobuf::LOGLEVEL_FATAL;
  LogLibraryLine(g_protobuf_lines, "protobuf", level, fatal, filename, line,
                 message);
  t_in_protobuf_line = false;
}

// One JSON value as protobuf prints it ("null" if it cannot).
std::string Json(const google::protobuf::Value& value) {
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(value, &json).ok()) {
    return "null";
  }
  return json;
}

// protobuf will not print a string that is not UTF-8: it drops the string
// and logs a complaint of its own, a text line on stderr. A client controls
// some of what gRPC logs (a header's value), so every string is made valid
// first, by protobuf's own validator: each byte that is not UTF-8 becomes
// '?'.
std::string ValidUtf8(const std::string& text) {
  std::string out(text.size(), '?');
  const char* valid = google::protobuf::internal::UTF8CoerceToStructurallyValid(
      text, out.data(), '?');
  return valid == text.data() ? text : out;
}

std::string JsonString(const std::string& text) {
  google::protobuf::Value value;
  value.set_string_value(ValidUtf8(text));
  return Json(value);
}

std::string JsonValue(const google::protobuf::Value& value) {
  if (value.has_string_value()) return JsonString(value.string_value());
  return Json(value);
}

}  // namespace

bool LineBudget::Admit(absl::Time now, int64_t* suppressed) {
  MutexLock lock(&mu_);
  return AdmitLocked(now, suppressed);
}

bool LineBudget::AdmitNow(absl::Time* now, int64_t* suppressed) {
  MutexLock lock(&mu_);
  *now = absl::Now();
  return AdmitLocked(*now, suppressed);
}

int64_t LineBudget::TakeRefused() {
  MutexLock lock(&mu_);
  return std::exchange(refused_, 0);
}

bool LineBudget::AdmitLocked(absl::Time now, int64_t* suppressed) {
  const int64_t second = absl::ToUnixSeconds(now);
  // A time a little before the current second's (the wall clock stepped
  // back) counts against that second: going back would start it afresh, and
  // the next line the current one again. A step back of more than
  // kStepBackSeconds (an NTP correction after a VM's restore) starts
  // afresh: counted against the current second, every line would be
  // refused until the clock came back to it.
  if (second > second_ || second < second_ - kStepBackSeconds) {
    second_ = second;
    written_ = 0;
  }
  if (written_ >= per_second_) {
    ++refused_;
    return false;
  }
  ++written_;
  *suppressed = refused_;
  refused_ = 0;
  return true;
}

std::optional<LogLevel> ParseLogLevel(std::string_view text) {
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarning,
                         LogLevel::kError}) {
    if (text == LogLevelName(level)) return level;
  }
  return std::nullopt;
}

std::string_view LogLevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarning:
      return "warning";
    case LogLevel::kError:
      return "error";
  }
  return "error";
}

void SetLogLevel(LogLevel level) {
  g_min_level.store(level, std::memory_order_relaxed);
}

google::protobuf::Struct LibraryLogFields(const std::string& source,
                                          const char* file, int line) {
  google::protobuf::Struct fields;
  Put(fields, "source", source);
  Put(fields, "file", std::string(file != nullptr ? file : ""));
  Put(fields, "line", static_cast<double>(line));
  return fields;
}

void RouteLibraryLogs(LogLevel level) {
  // gRPC's info messages are its internals at start-up ("grpc epoll fd: 3",
  // poller counts of a synchronous server we do not run): debugging
  // material, not an operator's. gRPC reads GRPC_VERBOSITY at its start
  // only when no verbosity is set.
  gpr_set_log_verbosity(level == LogLevel::kDebug ? GPR_LOG_SEVERITY_DEBUG
                                                  : GPR_LOG_SEVERITY_ERROR);
  gpr_set_log_function(GrpcLogToJson);
  google::protobuf::SetLogHandler(ProtobufLogToJson);
}

void Put(google::protobuf::Struct& s, const std::string& key,
         const std::string& value) {
  (*s.mutable_fields())[key].set_string_value(value);
}
void Put(google::protobuf::Struct& s, const std::string& key, double value) {
  (*s.mutable_fields())[key].set_number_value(value);
}
void Put(google::protobuf::Struct& s, const std::string& key, bool value) {
  (*s.mutable_fields())[key].set_bool_value(value);
}

std::string FormatLogLine(absl::Time now, const std::string& level,
                          const std::string& msg,
                          const google::protobuf::Struct& fields) {
  // (Not a lock: what protobuf logs from here is dropped, see above.)
  const bool outer = !t_formatting;
  t_formatting = true;
  absl::Cleanup done = [outer] {
    if (outer) t_formatting = false;
  };
  // absl::StrAppend rather than std::string's operator+: GCC 12 at -O3 warns
  // (-Wrestrict, a false positive) about the temporaries of a + chain.
  std::string line = absl::StrCat(
      "{\"ts\":",
      JsonString(
          absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone())),
      ",\"level\":", JsonString(level), ",\"msg\":", JsonString(msg));
  std::vector<const std::string*> keys;
  for (const auto& [key, value] : fields.fields()) keys.push_back(&key);
  std::sort(keys.begin(), keys.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  // Two keys that are not UTF-8 may become the same valid one; a JSON
  // object with a key twice is not one a parser takes (log_fuzzer), so the
  // first one written wins, as the line's own ts, level and msg do.
  absl::flat_hash_set<std::string> written = {"ts", "level", "msg"};
  for (const std::string* key : keys) {
    if (!written.insert(ValidUtf8(*key)).second) continue;
    absl::StrAppend(&line, ",", JsonString(*key), ":",
                    JsonValue(fields.fields().at(*key)));
  }
  absl::StrAppend(&line, "}");
  return line;
}

void LogJson(const std::string& level, const std::string& msg,
             const google::protobuf::Struct& fields) {
  const std::optional<LogLevel> parsed = ParseLogLevel(level);
  const bool error = !parsed.has_value() || *parsed == LogLevel::kError;
  LogJsonAt(absl::Now(), level, msg, fields,
            error ? kErrorLineWait : absl::ZeroDuration());
}

absl::Status StartLogWriter() { return Sink().Start(); }

bool FlushLogs(absl::Duration timeout) {
  // Lines left out since the last one written were counted only in the
  // notice before the next one, which may never come: a flood just before
  // exit went unreported.
  for (const auto& [budget, source] :
       {std::pair<LineBudget*, const char*>{&g_grpc_lines, "grpc"},
        std::pair<LineBudget*, const char*>{&g_protobuf_lines, "protobuf"}}) {
    if (const int64_t n = budget->TakeRefused(); n > 0) {
      LogSuppressed(absl::Now(), source, n);
    }
  }
  return Sink().Flush(timeout);
}

uint64_t LogLinesDropped() { return Sink().dropped(); }

}  // namespace compute
