// What a flag's value should look like, for the one-line error a bad value
// gets. compute-server's flags (server/config.cc) and compute-client's
// (client/flags.h) say the same words.
#ifndef COMPUTE_SERVER_BASE_FLAG_TEXT_H_
#define COMPUTE_SERVER_BASE_FLAG_TEXT_H_

#include <type_traits>

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

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_FLAG_TEXT_H_
