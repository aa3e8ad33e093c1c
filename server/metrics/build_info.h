// What this binary was built from, for compute_build_info. Set by CMake at
// configure time (server/metrics/CMakeLists.txt).
#ifndef COMPUTE_SERVER_METRICS_BUILD_INFO_H_
#define COMPUTE_SERVER_METRICS_BUILD_INFO_H_

#include <string_view>

namespace compute::metrics {

// The CMake project version ("0.1.0").
std::string_view BuildVersion();
// `git rev-parse --short HEAD` of the source tree, or "unknown" when it was
// not a git checkout.
std::string_view BuildRevision();

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_BUILD_INFO_H_
