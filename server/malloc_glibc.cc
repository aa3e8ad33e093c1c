// malloc_glibc: SetUpLargeAllocations for builds on glibc's malloc
// (sanitizer and fuzz builds, or COMPUTE_MALLOC=glibc): nothing to set up.
// (glibc can do the same from the environment:
// GLIBC_TUNABLES=glibc.malloc.hugetlb=1.)
#include <malloc.h>

#include "server/malloc_setup.h"

namespace compute {

std::string SetUpLargeAllocations() {
  return "none (glibc malloc; GLIBC_TUNABLES=glibc.malloc.hugetlb=1 does it)";
}

// glibc cannot say what it keeps without walking its arenas (malloc_info):
// unknown, so the server never asks it to give back (memory_returner.h).
int64_t FreedBytesKept() { return -1; }

void KeepFreedExtentsInNewArenas() {}

void ReturnFreedBytes() { malloc_trim(0); }

}  // namespace compute
