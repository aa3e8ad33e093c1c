// What a flag's value should look like, for the one-line error a bad value
// gets. compute-server's flags (server/config.cc) and compute-client's
// (client/flags.h) say the same words.
#ifndef COMPUTE_SERVER_BASE_FLAG_TEXT_H_
#define COMPUTE_SERVER_BASE_FLAG_TEXT_H_

#include <algorithm>
#include <limits>
#include <string>
#include <type_traits>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace compute {

// "expected a duration such as 250ms, 10s, 1m or inf", ... for a value of
// type T (bool, an integer, a floating-point number, absl::Duration);
// "bad value" for anything else.
template <typename T>
constexpr const char* ExpectedFlagValue() {
  if constexpr (std::is_same_v<T, bool>) {
    return "expected true or false (or yes/no, 1/0)";
  } else if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T>) {
    return "expected a non-negative integer";
  } else if constexpr (std::is_integral_v<T>) {
    return "expected an integer";
  } else if constexpr (std::is_floating_point_v<T>) {
    return "expected a number";
  } else if constexpr (std::is_same_v<T, absl::Duration>) {
    return "expected a duration such as 250ms, 10s, 1m or inf";
  } else {
    return "bad value";
  }
}

// The error for `text`, which a flag of type T did not take: an integer
// too large (or small) for T says T's range ("'99999999999': out of range,
// from -2147483648 to 2147483647"), anything else what a value looks like.
template <typename T>
std::string FlagValueError(absl::string_view text) {
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    absl::string_view digits = absl::StripAsciiWhitespace(text);
    const bool negative = absl::StartsWith(digits, "-");
    if (negative || absl::StartsWith(digits, "+")) digits.remove_prefix(1);
    // absl also takes hexadecimal ("0x7fffffff").
    const bool hex = absl::StartsWithIgnoreCase(digits, "0x");
    if (hex) digits.remove_prefix(2);
    const bool number =
        !digits.empty() &&
        std::all_of(digits.begin(), digits.end(), [hex](char c) {
          return hex ? absl::ascii_isxdigit(static_cast<unsigned char>(c))
                     : absl::ascii_isdigit(static_cast<unsigned char>(c));
        });
    // "-0" is no value of an unsigned flag, but not out of its range.
    const bool minus_zero =
        negative && digits.find_first_not_of('0') == absl::string_view::npos;
    if (number && !(std::is_unsigned_v<T> && minus_zero)) {
      return absl::StrCat("out of range, from ", std::numeric_limits<T>::min(),
                          " to ", std::numeric_limits<T>::max());
    }
  }
  return ExpectedFlagValue<T>();
}

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_FLAG_TEXT_H_
