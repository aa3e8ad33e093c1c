// Structured logs: one JSON object per line on stderr, for log collectors.
// Values are a google.protobuf.Struct, each printed with protobuf's
// json_util, so escaping is never hand-rolled. No line per request: only
// start-up, shutdown and errors.
//
// Key order is fixed, so that a person reading the log finds the same thing
// in the same place: "ts", "level", "msg" first, then the fields sorted by
// name.
#ifndef COMPUTE_SERVER_LOG_H_
#define COMPUTE_SERVER_LOG_H_

#include <string>

#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"

namespace compute {

// Prints FormatLogLine(now, ...) and a newline to stderr, in one write.
void LogJson(const std::string& level, const std::string& msg,
             const google::protobuf::Struct& fields = {});

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

}  // namespace compute

#endif  // COMPUTE_SERVER_LOG_H_
