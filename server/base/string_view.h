// AbslView: a std::string_view as an absl::string_view. Debian's abseil is
// built for C++14, so its string_view is its own type, not an alias of
// std's; code that takes std::string_view passes it to abseil through this.
#ifndef COMPUTE_SERVER_BASE_STRING_VIEW_H_
#define COMPUTE_SERVER_BASE_STRING_VIEW_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace compute {

inline absl::string_view AbslView(std::string_view s) {
  return {s.data(), s.size()};
}

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_STRING_VIEW_H_
