// malloc_setup: what the process asks of its allocator at start-up.
#ifndef COMPUTE_SERVER_MALLOC_SETUP_H_
#define COMPUTE_SERVER_MALLOC_SETUP_H_

#include <cstddef>
#include <cstdint>
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

// Bytes the allocator holds freed but not yet returned to the system (kept
// for reuse: jemalloc's dirty pages), or -1 where it cannot tell (glibc).
// Costs a few microseconds (it refreshes jemalloc's statistics).
int64_t FreedBytesKept();

// Arenas the allocator made since the last call (as threads first
// allocate: a worker started under load) keep freed large extents for reuse
// too, as SetUpLargeAllocations set up the ones that existed then (jemalloc
// builds; nothing elsewhere). Cheap (a look at each arena slot): the memory
// returner calls it at each check.
void KeepFreedExtentsInNewArenas();

// Returns every freed page the allocator keeps to the system now.
void ReturnFreedBytes();

}  // namespace compute

#endif  // COMPUTE_SERVER_MALLOC_SETUP_H_
