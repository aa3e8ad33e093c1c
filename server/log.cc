#include "server/log.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/json_util.h"

namespace compute {
namespace {

// One JSON value as protobuf prints it ("null" if it cannot).
std::string Json(const google::protobuf::Value& value) {
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(value, &json).ok()) {
    return "null";
  }
  return json;
}

std::string JsonString(const std::string& text) {
  google::protobuf::Value value;
  value.set_string_value(text);
  return Json(value);
}

}  // namespace

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
  // absl::StrAppend rather than std::string's operator+: GCC 12 at -O3 warns
  // (-Wrestrict, a false positive) about the temporaries of a + chain.
  std::string line = absl::StrCat(
      "{\"ts\":",
      JsonString(
          absl::FormatTime(absl::RFC3339_full, now, absl::UTCTimeZone())),
      ",\"level\":", JsonString(level), ",\"msg\":", JsonString(msg));
  std::vector<const std::string*> keys;
  for (const auto& [key, value] : fields.fields()) {
    if (key != "ts" && key != "level" && key != "msg") keys.push_back(&key);
  }
  std::sort(keys.begin(), keys.end(),
            [](const std::string* a, const std::string* b) { return *a < *b; });
  for (const std::string* key : keys) {
    absl::StrAppend(&line, ",", JsonString(*key), ":",
                    Json(fields.fields().at(*key)));
  }
  absl::StrAppend(&line, "}");
  return line;
}

void LogJson(const std::string& level, const std::string& msg,
             const google::protobuf::Struct& fields) {
  std::string line = FormatLogLine(absl::Now(), level, msg, fields);
  line.push_back('\n');
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace compute
