#include "server/tasks/duration.h"

#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/base/string_view.h"

namespace compute::tasks {
namespace {

constexpr int32_t kMaxNanos = 999'999'999;

// "1.5s", "-0.000000001s", "60s": seconds with the nanos shown exactly, for
// messages (absl::FormatDuration would say "1m0.000000001s").
std::string FormatSeconds(const google::protobuf::Duration& d) {
  const bool negative = d.seconds() < 0 || d.nanos() < 0;
  // Unsigned negation, so that INT64_MIN is printed rather than overflowing.
  const uint64_t seconds = d.seconds() < 0
                               ? 0 - static_cast<uint64_t>(d.seconds())
                               : static_cast<uint64_t>(d.seconds());
  const int32_t nanos = std::abs(d.nanos());
  std::string out = absl::StrCat(negative ? "-" : "", seconds);
  if (nanos != 0) {
    std::string frac = absl::StrFormat("%09d", nanos);
    frac.erase(frac.find_last_not_of('0') + 1);
    absl::StrAppend(&out, ".", frac);
  }
  out += "s";
  return out;
}

}  // namespace

absl::Status ValidateDuration(std::string_view field_name,
                              const google::protobuf::Duration& d,
                              absl::Duration max) {
  const absl::string_view field = AbslView(field_name);
  if (d.nanos() > kMaxNanos || d.nanos() < -kMaxNanos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".nanos must be within [-", kMaxNanos, ", ",
                     kMaxNanos, "] (got ", d.nanos(), ")"));
  }
  if ((d.seconds() > 0 && d.nanos() < 0) ||
      (d.seconds() < 0 && d.nanos() > 0)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, " is malformed: seconds (", d.seconds(), ") and nanos (",
        d.nanos(), ") must not have opposite signs"));
  }
  if (d.seconds() < 0 || d.nanos() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be >= 0s (got ", FormatSeconds(d), ")"));
  }
  if (FromProto(d) > max) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, " must be <= ", absl::ToInt64Seconds(max),
                     "s (got ", FormatSeconds(d), ")"));
  }
  return absl::OkStatus();
}

absl::Duration FromProto(const google::protobuf::Duration& d) {
  return absl::Seconds(d.seconds()) + absl::Nanoseconds(d.nanos());
}

void ToProto(absl::Duration d, google::protobuf::Duration* out) {
  const int64_t seconds = absl::IDivDuration(d, absl::Seconds(1), &d);
  out->set_seconds(seconds);
  out->set_nanos(static_cast<int32_t>(absl::ToInt64Nanoseconds(d)));
}

}  // namespace compute::tasks
