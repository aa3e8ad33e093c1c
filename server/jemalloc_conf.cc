// jemalloc_conf: compute-server's jemalloc settings. Linked into
// compute-server only when it is built with jemalloc (COMPUTE_MALLOC, the
// default outside sanitizer builds; see CMakeLists.txt).
//
// jemalloc reads the global `malloc_conf` once, at its first allocation;
// MALLOC_CONF in the environment still applies on top of it, for an
// operator. Why these three (scripts/bench/memory_allocators.sh measures
// them against jemalloc's defaults, glibc and mimalloc):
//   - background_thread:true: jemalloc's own thread returns freed memory.
//     Without it the decay below advances only when the program allocates,
//     so a server that goes idle after a burst keeps the burst's pages
//     (measured: 290 MiB resident 10 s after the burst, against 20 idle).
//   - dirty_decay_ms:1000: freed pages go back to the system over about a
//     second instead of 10 s; the burst's large buffers are not reused soon.
//   - muzzy_decay_ms:0: returned with MADV_DONTNEED, which lowers RSS at
//     once, not MADV_FREE, which lowers it only under memory pressure.
#include <jemalloc/jemalloc.h>

const char* malloc_conf =
    "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0";
