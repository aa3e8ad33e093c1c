// jemalloc_conf: compute-server's jemalloc settings. Linked into
// compute-server only when it is built with jemalloc (COMPUTE_MALLOC, the
// default outside sanitizer builds; see CMakeLists.txt).
//
// jemalloc reads the global `malloc_conf` once, at its first allocation;
// MALLOC_CONF in the environment still applies on top of it, for an
// operator. Why these (scripts/bench/memory_allocators.sh measures them
// against jemalloc's defaults, glibc and mimalloc):
//   - background_thread:true: jemalloc's own thread returns freed memory.
//     Without it the decay below advances only when the program allocates,
//     so a server that goes idle after a burst keeps the burst's pages
//     (measured: 290 MiB resident 10 s after the burst, against 20 idle).
//   - max_background_threads:1: one such thread, not one per CPU of the
//     node (jemalloc's default, started as arenas appear): decay is only
//     the backstop here (the server returns freed pages itself), and a
//     server that can no longer start threads (pids.max in a container)
//     made jemalloc retry a new background thread at every allocation and
//     print a line each time: 1.3 million lines in 3 s, a core busy.
//   - dirty_decay_ms:10000: freed pages go back to the system over 10 s
//     by decay, a backstop only: the server returns them itself, past a cap
//     at once and the rest once it is idle (server/memory_returner.h). A
//     shorter decay also returns the pages that a steady stream of large
//     calls reuses (at 1 s, 800-2,300 page faults per warm 16 MP blur).
//   - muzzy_decay_ms:0: returned with MADV_DONTNEED, which lowers RSS at
//     once, not MADV_FREE, which lowers it only under memory pressure.
//   - oversize_threshold:2097152: allocations of 2 MiB and more (the
//     request, result and receive buffers of large calls) go to jemalloc's
//     separate "huge" arena, which returns what is freed at once (decay 0),
//     and which SetUpLargeAllocations (malloc_jemalloc.cc) backs with
//     transparent huge pages, so that faulting such a buffer in again costs 8
//     faults per 16 MiB, not 4,096. Before (threshold 0, the ordinary arenas, 4
//     KiB pages), a large buffer freed more than a second earlier was faulted
//     in page by page, and page faults are dear on a VM (perf: 29% of the
//     server's time; a 16 MiB memset into fresh pages 46 ms, 1.4 ms into huge
//     pages). thp:always would do it for every arena, but kept idle RSS at
//     45 MiB instead of 21 (the small arenas' pages become 2 MiB each).
//     Allocations of this size would also make every arena return a freed
//     extent at once when it coalesces past 2 MiB, decay or not; the
//     server turns that off (KeepFreedExtentsForReuse, malloc_jemalloc.cc),
//     so that a large call's receive buffers are reused by the next one.
//   - lg_extent_max_active_fit:30: a freed extent of any size may be split
//     for a new allocation. jemalloc's default (6) lets an allocation reuse
//     a free extent at most 64 times its size; gRPC reads a request into
//     buffers of 64 KiB (80 KiB with its header, jemalloc's size class), and
//     once a 16 MiB request's buffers were freed they coalesced into one
//     extent too large for any of the next request's reads, which took
//     fresh pages instead (page faults) while the freed ones waited for
//     decay (measured with decay off: freed pages grew by 6-7 MiB a call,
//     and the faults never stopped). scripts/bench/payload.sh, 3 pairs
//     interleaved: page faults per warm 16 MP blur 1,200-3,100 -> 800-2,300
//     (the 1 s decay of then still returned part of the working set), round
//     trip p50 78-95 -> 53-66 ms, the kernel 24-33 -> 20-23 ms (it reads
//     those buffers); the burst's peak unchanged within its noise
//     (scripts/bench/memory.sh, 3 pairs: 646-740 MiB against 691-733).
const char* malloc_conf =
    "background_thread:true,max_background_threads:1,dirty_decay_ms:10000,"
    "muzzy_decay_ms:0,"
    "oversize_threshold:2097152,lg_extent_max_active_fit:30";
