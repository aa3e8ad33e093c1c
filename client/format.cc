#include "client/format.h"

#include <cmath>
#include <cstdio>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/type_resolver_util.h"

namespace compute::client {
namespace {

std::string ThreeDigits(double v, const char* unit) {
  char buf[32];
  const char* format = v >= 100 ? "%.0f%s" : v >= 10 ? "%.1f%s" : "%.2f%s";
  std::snprintf(buf, sizeof(buf), format, v, unit);
  return buf;
}

// Through deterministic (map-key-sorted) binary, so that a Struct's keys
// come out sorted and the output is stable from run to run.
std::string Json(const google::protobuf::Message& message, bool pretty,
                 bool zeros = false) {
  static constexpr char kUrlPrefix[] = "type.googleapis.com";
  static google::protobuf::util::TypeResolver* const resolver =
      google::protobuf::util::NewTypeResolverForDescriptorPool(
          kUrlPrefix, google::protobuf::DescriptorPool::generated_pool());
  std::string binary;
  {
    google::protobuf::io::StringOutputStream stream(&binary);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = zeros;
  std::string out;
  auto status = google::protobuf::util::BinaryToJsonString(
      resolver,
      std::string(kUrlPrefix) + "/" + message.GetDescriptor()->full_name(),
      binary, &out, options);
  if (!status.ok()) return "{}";  // Struct and our messages always print.
  if (pretty && !out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

}  // namespace

std::string FormatNanos(int64_t ns) {
  // A request's negative duration is shown as sent (the server refuses
  // it): the unit is picked by size, as for a positive one.
  const double v = std::fabs(static_cast<double>(ns));
  std::string sign = ns < 0 ? "-" : "";
  if (v < 1e3) return sign + ThreeDigits(v, "ns");
  if (v < 1e6) return sign + ThreeDigits(v / 1e3, "us");
  if (v < 1e9) return sign + ThreeDigits(v / 1e6, "ms");
  return sign + ThreeDigits(v / 1e9, "s");
}

std::string HumanDuration(absl::Duration d) {
  return FormatNanos(absl::ToInt64Nanoseconds(d));
}

std::string FormatMillis(absl::Duration d) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3f", absl::ToDoubleMilliseconds(d));
  return buf;
}

void Put(google::protobuf::Struct& s, const std::string& key,
         const std::string& value) {
  (*s.mutable_fields())[key].set_string_value(value);
}
void Put(google::protobuf::Struct& s, const std::string& key,
         const char* value) {
  (*s.mutable_fields())[key].set_string_value(value);
}
void Put(google::protobuf::Struct& s, const std::string& key, double value) {
  (*s.mutable_fields())[key].set_number_value(value);
}
void Put(google::protobuf::Struct& s, const std::string& key, bool value) {
  (*s.mutable_fields())[key].set_bool_value(value);
}
void Put(google::protobuf::Struct& s, const std::string& key,
         google::protobuf::Value value) {
  (*s.mutable_fields())[key] = std::move(value);
}
void Put(google::protobuf::Struct& s, const std::string& key,
         google::protobuf::Struct value) {
  *(*s.mutable_fields())[key].mutable_struct_value() = std::move(value);
}

std::string ToJson(const google::protobuf::Message& message) {
  return Json(message, false);
}

std::string ToPrettyJson(const google::protobuf::Message& message) {
  return Json(message, true);
}

std::string ToJsonWithZeros(const google::protobuf::Message& message) {
  return Json(message, false, /*zeros=*/true);
}

}  // namespace compute::client
