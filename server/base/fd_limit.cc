#include "server/base/fd_limit.h"

#include <sys/resource.h>

namespace compute {
namespace {

int64_t AsLimit(rlim_t value) {
  return value == RLIM_INFINITY ? INT64_MAX : static_cast<int64_t>(value);
}

}  // namespace

int64_t RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
  if (limit.rlim_cur != limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    // Refused (a hard limit above what the kernel allows, fs.nr_open): the
    // soft limit stays as it was.
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit = raised;
  }
  return AsLimit(limit.rlim_cur);
}

}  // namespace compute
