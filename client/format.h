// Small formatting helpers shared by the commands: human-readable
// durations, and JSON built as a google.protobuf.Struct and printed by
// protobuf's json_util, so that escaping is never hand-rolled.
#ifndef COMPUTE_CLIENT_FORMAT_H_
#define COMPUTE_CLIENT_FORMAT_H_

#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "google/protobuf/struct.pb.h"

namespace compute::client {

// Three significant digits with a unit: "812us", "1.23ms", "41.0s".
std::string FormatNanos(int64_t ns);
std::string HumanDuration(absl::Duration d);
// Milliseconds with three decimals, for columns: "812.345".
std::string FormatMillis(absl::Duration d);

void Put(google::protobuf::Struct& s, const std::string& key,
         const std::string& value);
void Put(google::protobuf::Struct& s, const std::string& key,
         const char* value);
void Put(google::protobuf::Struct& s, const std::string& key, double value);
void Put(google::protobuf::Struct& s, const std::string& key, bool value);
void Put(google::protobuf::Struct& s, const std::string& key,
         google::protobuf::Value value);
void Put(google::protobuf::Struct& s, const std::string& key,
         google::protobuf::Struct value);

// The message as one line of JSON (proto field names, as in the .proto).
std::string ToJson(const google::protobuf::Message& message);
// Pretty-printed (two-space indent), for stdout.
std::string ToPrettyJson(const google::protobuf::Message& message);
// ToJson, with scalar fields at their default (0, "") printed too.
std::string ToJsonWithZeros(const google::protobuf::Message& message);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_FORMAT_H_
