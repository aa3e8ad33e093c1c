// Structured logs: one JSON object per line on stderr, for log collectors.
// Built as a google.protobuf.Struct and printed with protobuf's json_util, so
// escaping is never hand-rolled. No line per request: only start-up,
// shutdown and errors.
#ifndef COMPUTE_SERVER_LOG_H_
#define COMPUTE_SERVER_LOG_H_

#include <string>

#include "google/protobuf/struct.pb.h"

namespace compute {

// Prints {"ts":..., "level":..., "msg":..., <fields>} as one line.
void LogJson(const std::string& level, const std::string& msg,
             const google::protobuf::Struct& fields = {});

// Small helpers to fill a Struct.
void Put(google::protobuf::Struct& s, const std::string& key,
         const std::string& value);
void Put(google::protobuf::Struct& s, const std::string& key, double value);
void Put(google::protobuf::Struct& s, const std::string& key, bool value);

}  // namespace compute

#endif  // COMPUTE_SERVER_LOG_H_
