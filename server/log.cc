#include "server/log.h"

#include <cstdio>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/util/json_util.h"

namespace compute {

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

void LogJson(const std::string& level, const std::string& msg,
             const google::protobuf::Struct& fields) {
  google::protobuf::Struct line = fields;
  Put(line, "ts",
      absl::FormatTime(absl::RFC3339_full, absl::Now(), absl::UTCTimeZone()));
  Put(line, "level", level);
  Put(line, "msg", msg);
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(line, &json).ok()) {
    json = "{\"level\":\"error\",\"msg\":\"log line not encodable\"}";
  }
  json += '\n';
  std::fwrite(json.data(), 1, json.size(), stderr);
  std::fflush(stderr);
}

}  // namespace compute
