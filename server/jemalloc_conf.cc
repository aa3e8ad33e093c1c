// jemalloc_conf: compute-server's jemalloc settings. Linked into
// compute-server only when it is built with jemalloc (COMPUTE_MALLOC, the
// default outside sanitizer builds; see CMakeLists.txt).
//
// jemalloc reads the global `malloc_conf` once, at its first allocation;
// MALLOC_CONF in the environment still applies on top of it, for an
// operator. Why these four (scripts/bench/memory_allocators.sh measures
// them against jemalloc's defaults, glibc and mimalloc):
//   - background_thread:true: jemalloc's own thread returns freed memory.
//     Without it the decay below advances only when the program allocates,
//     so a server that goes idle after a burst keeps the burst's pages
//     (measured: 290 MiB resident 10 s after the burst, against 20 idle).
//   - dirty_decay_ms:1000: freed pages go back to the system over about a
//     second instead of 10 s; the burst's large buffers are not reused soon.
//   - muzzy_decay_ms:0: returned with MADV_DONTNEED, which lowers RSS at
//     once, not MADV_FREE, which lowers it only under memory pressure.
//   - oversize_threshold:0: no separate arena for allocations of 8 MiB and
//     more. That arena returns what is freed at once (its decay is 0), so
//     each 16 MiB request, result and receive buffer of a large blur was
//     faulted in page by page anew, and page faults are dear on a VM
//     (perf: 29% of the server's time). In the ordinary arenas they follow
//     dirty_decay_ms above: reused while calls keep coming, returned within
//     about a second when they stop. Measured, 16 MP blurs one at a time on
//     a warm connection: round trip p50 230-330 ms -> 95-109 ms; RSS 10 s
//     later 21.5 -> 21.6-22 MiB (idle 20). (thp:always was faster still,
//     72 ms, but kept 55 MiB resident.)
#include <jemalloc/jemalloc.h>

const char* malloc_conf =
    "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0,"
    "oversize_threshold:0";
