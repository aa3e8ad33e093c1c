// jemalloc_conf: compute-client's jemalloc settings (linked when the
// project is built with jemalloc, as compute-server is).
//
// thp:always: every arena's memory in transparent huge pages. The client
// reads, serializes, sends and receives images of up to 16 MiB in buffers
// of every size (gRPC's own included), and a fresh process faults each of
// them in; with 4 KiB pages that cost a 16 MP blur's round trip about
// 100 ms on a VM (250 -> 150 ms, `compute-client run blur`, 10 tries). The
// server cannot do this for all its arenas (idle RSS 21 -> 45 MiB; it uses
// huge pages for its large allocations only, server/malloc_setup.h); a
// client's RSS is not kept for long.
// oversize_threshold:0: large buffers in the ordinary arenas, reused
// within a bench run rather than returned and faulted in again.
const char* malloc_conf = "thp:always,oversize_threshold:0";
