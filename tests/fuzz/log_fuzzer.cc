// Fuzzes the JSON log line: any level, message, keys and values (a client
// controls some of them, through what gRPC logs about its requests).
//
// Properties (abort() is the finding):
//   - the line is one line, and parses as one JSON object with "ts",
//     "level" and "msg" first;
//   - protobuf, which prints the values, never complains (it would print its
//     complaint to stderr as text, between the JSON lines): a protobuf log
//     handler aborts;
//   - a message that is valid UTF-8 comes back unchanged.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/stubs/logging.h"
#include "google/protobuf/util/json_util.h"
#include "server/log.h"

namespace {

[[noreturn]] void Fail(const char* what, const std::string& line) {
  std::fprintf(stderr, "log_fuzzer: %s\n  line: %s\n", what, line.c_str());
  std::abort();
}

void AbortOnProtobufLog(google::protobuf::LogLevel, const char* file, int line,
                        const std::string& message) {
  std::fprintf(stderr, "log_fuzzer: protobuf logged %s:%d %s\n", file, line,
               message.c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool handler_set = [] {
    google::protobuf::SetLogHandler(&AbortOnProtobufLog);
    return true;
  }();
  (void)handler_set;
  FuzzedDataProvider in(data, size);
  const std::string level = in.ConsumeRandomLengthString(16);
  const std::string msg = in.ConsumeRandomLengthString(256);
  google::protobuf::Struct fields;
  const int n = in.ConsumeIntegralInRange(0, 4);
  for (int i = 0; i < n; ++i) {
    const std::string key = in.ConsumeRandomLengthString(16);
    switch (in.ConsumeIntegralInRange(0, 2)) {
      case 0:
        compute::Put(fields, key, in.ConsumeRandomLengthString(64));
        break;
      case 1: {  // any double, NaN and infinities included
        const uint64_t bits = in.ConsumeIntegral<uint64_t>();
        double d;
        std::memcpy(&d, &bits, sizeof(d));
        compute::Put(fields, key, d);
        break;
      }
      default:
        compute::Put(fields, key, in.ConsumeBool());
        break;
    }
  }
  const std::string line = compute::FormatLogLine(
      absl::FromUnixNanos(in.ConsumeIntegral<int64_t>()), level, msg, fields);
  if (absl::StrContains(line, '\n')) Fail("more than one line", line);
  if (!absl::StartsWith(line, "{\"ts\":")) Fail("ts is not first", line);
  google::protobuf::Struct parsed;
  if (!google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) {
    Fail("not a JSON object", line);
  }
  if (!parsed.fields().contains("level") || !parsed.fields().contains("msg")) {
    Fail("no level or msg", line);
  }
  if (google::protobuf::internal::IsStructurallyValidUTF8(msg) &&
      parsed.fields().at("msg").string_value() != msg) {
    Fail("a UTF-8 message did not come back unchanged", line);
  }
  return 0;
}
