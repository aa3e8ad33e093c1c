// malloc_setup: what the process asks of its allocator at start-up.
#ifndef COMPUTE_SERVER_MALLOC_SETUP_H_
#define COMPUTE_SERVER_MALLOC_SETUP_H_

#include <string>

namespace compute {

// Backs allocations of kLargeAllocationBytes and more with transparent huge
// pages, where the allocator allows it (jemalloc builds). A 16 MiB buffer is
// then faulted in as 8 pages instead of 4,096: on a VM a 4 KiB fault costs
// ~11 us, so a 16 MP blur spent 45 of its 57 ms faulting in its own output.
// Call first thing in main, before any thread starts. Returns what was done,
// for the start-up line ("huge pages for allocations of 2 MiB and more", or
// why not); never fails the start-up: this is a speed-up, not a need.
std::string SetUpLargeAllocations();

inline constexpr size_t kLargeAllocationBytes = size_t{2} << 20;

}  // namespace compute

#endif  // COMPUTE_SERVER_MALLOC_SETUP_H_
