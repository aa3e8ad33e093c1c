#include "server/metrics/build_info.h"

#ifndef COMPUTE_VERSION
#define COMPUTE_VERSION "unknown"
#endif
#ifndef COMPUTE_REVISION
#define COMPUTE_REVISION "unknown"
#endif

namespace compute::metrics {

std::string_view BuildVersion() { return COMPUTE_VERSION; }
std::string_view BuildRevision() { return COMPUTE_REVISION; }

}  // namespace compute::metrics
