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
    return "expected true or false";
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
    if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
      digits.remove_prefix(1);
    }
    if (!digits.empty() &&
        std::all_of(digits.begin(), digits.end(), absl::ascii_isdigit)) {
      return absl::StrCat("out of range, from ", std::numeric_limits<T>::min(),
                          " to ", std::numeric_limits<T>::max());
    }
  }
  return ExpectedFlagValue<T>();
}

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_FLAG_TEXT_H_
