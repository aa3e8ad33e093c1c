// malloc_glibc: SetUpLargeAllocations for builds on glibc's malloc
// (sanitizer and fuzz builds, or COMPUTE_MALLOC=glibc): nothing to set up.
// (glibc can do the same from the environment:
// GLIBC_TUNABLES=glibc.malloc.hugetlb=1.)
#include "server/malloc_setup.h"

namespace compute {

std::string SetUpLargeAllocations() {
  return "none (glibc malloc; GLIBC_TUNABLES=glibc.malloc.hugetlb=1 does it)";
}

}  // namespace compute
