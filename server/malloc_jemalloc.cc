// malloc_jemalloc: SetUpLargeAllocations for builds with jemalloc
// (COMPUTE_MALLOC, the default outside sanitizer builds; see
// CMakeLists.txt). The settings it relies on (oversize_threshold: a
// separate arena for large allocations) are in server/jemalloc_conf.cc.
#include <jemalloc/jemalloc.h>
#include <sys/mman.h>

#include <cstdlib>
#include <limits>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "server/malloc_setup.h"
#include "server/pool/sync.h"

namespace compute {
namespace {

// The huge arena's hooks as jemalloc made them; ours forward to them. Both
// are written once, in SetUpLargeAllocations, before the mallctl that
// installs ours publishes them, and only read after.
extent_hooks_t* g_default_hooks = nullptr;
extent_hooks_t g_huge_page_hooks;

// jemalloc asks for address space for the huge arena (in steps that grow
// as it needs more, kept mapped when freed: opt.retain); every allocation
// placed in it is 2 MiB or more, so all of it may be huge pages.
void* AllocWithHugePages(extent_hooks_t* /*hooks*/, void* new_addr, size_t size,
                         size_t alignment, bool* zero, bool* commit,
                         unsigned arena_index) {
  void* p = g_default_hooks->alloc(g_default_hooks, new_addr, size, alignment,
                                   zero, commit, arena_index);
  // Advice only: if the kernel says no, the memory still works.
  if (p != nullptr) madvise(p, size, MADV_HUGEPAGE);
  return p;
}

// Freed large extents stay for reuse until decay returns them (after
// opt.dirty_decay_ms, 10 s as built) or the server does (memory_returner.h),
// in every arena, instead of being returned to the system the moment they
// are freed.
//
// Why: jemalloc 5.3 returns a freed extent at once, whatever the decay
// time, when it is, or coalesces with its free neighbours into, an extent of
// oversize_threshold (2 MiB here) or more. Without this, a 16 MiB request
// arrives in reads of ~64 KiB whose buffers, freed when the call is done
// with them, coalesced and went back to the system; the next call's reads
// faulted them in again, 4 KiB at a time (~3,300 page faults per 16 MP blur,
// 93% of the server's faults, in recvmsg), and the huge arena's result buffers
// were returned and faulted in again on every call. Since the pixels stay in
// those buffers while the kernel runs (wire.h), keeping them once freed
// does not raise a call's peak (2.34-2.35x its payload, against 2.34-2.59x
// returning them), and warm 16 MP blurs one after another went from a
// round trip p50 of 85-111 ms to 37-81 ms (docs/benchmarks.md, "Round trip
// of a large call").
//
// jemalloc's per-arena oversize threshold only takes arenas that exist, and
// the automatic ones are made as threads first need them (a worker started
// under load makes one): so every arena is set once it exists, at start-up
// and then at each of the memory returner's checks
// (KeepFreedExtentsInNewArenas). Not by making every arena at start-up (the
// first version bound this thread to each in turn): jemalloc's automatic
// arenas are 4 per CPU of the node, not of the pod, and 512 of them (a
// 128-CPU node) held 81 MiB of an idle server's RSS against 20, and made
// each refresh of the statistics walk them all (5.5 ms, every 250 ms); nor
// could it with MALLOC_CONF=percpu_arena, which forbids choosing an arena.
//
// Which arenas are set: by index, guarded, written at start-up and then by
// the returner's thread.
Mutex g_arenas_mu;
bool g_keep_freed_extents ABSL_GUARDED_BY(g_arenas_mu) = false;
std::vector<bool> g_arena_set ABSL_GUARDED_BY(g_arenas_mu);

// Sets the oversize threshold of every arena that exists and is not set
// yet; returns the name of a mallctl jemalloc refused, or "".
std::string SetNewArenasLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(g_arenas_mu) {
  // jemalloc's control interface answers arena.<i>.initialized from a
  // snapshot, refreshed by writing the epoch (a thread's new arena is not
  // in it until then).
  uint64_t epoch = 1;
  size_t size = sizeof(epoch);
  if (mallctl("epoch", &epoch, &size, &epoch, size) != 0) return "epoch";
  unsigned narenas = 0;
  size = sizeof(narenas);
  if (mallctl("arenas.narenas", &narenas, &size, nullptr, 0) != 0) {
    return "arenas.narenas";
  }
  if (g_arena_set.size() < narenas) g_arena_set.resize(narenas, false);
  // By MIB, index in place: every slot is looked at 4 times a second
  // until its arena exists.
  size_t initialized_mib[3];
  size_t initialized_len = 3;
  size_t threshold_mib[3];
  size_t threshold_len = 3;
  if (mallctlnametomib("arena.0.initialized", initialized_mib,
                       &initialized_len) != 0) {
    return "arena.0.initialized";
  }
  if (mallctlnametomib("arena.0.oversize_threshold", threshold_mib,
                       &threshold_len) != 0) {
    return "arena.0.oversize_threshold";
  }
  // A threshold no extent reaches: only decay (or the server) returns
  // memory.
  size_t never = std::numeric_limits<size_t>::max();
  for (unsigned i = 0; i < narenas; ++i) {
    if (g_arena_set[i]) continue;
    bool initialized = false;
    size = sizeof(initialized);
    initialized_mib[1] = i;
    if (mallctlbymib(initialized_mib, initialized_len, &initialized, &size,
                     nullptr, 0) != 0 ||
        !initialized) {
      continue;
    }
    threshold_mib[1] = i;
    if (mallctlbymib(threshold_mib, threshold_len, nullptr, nullptr, &never,
                     sizeof(never)) != 0) {
      return absl::StrCat("arena.", i, ".oversize_threshold");
    }
    g_arena_set[i] = true;
  }
  return "";
}

// Returns what was done, for the start-up line.
std::string KeepFreedExtentsForReuse(unsigned huge_arena) {
  // jemalloc gives the huge arena a decay time of 0 (return at once); it
  // gets the ordinary arenas' instead.
  ssize_t decay_ms = 0;
  size_t size = sizeof(decay_ms);
  std::string decay = absl::StrCat("arena.", huge_arena, ".dirty_decay_ms");
  if (mallctl("opt.dirty_decay_ms", &decay_ms, &size, nullptr, 0) != 0 ||
      mallctl(decay.c_str(), nullptr, nullptr, &decay_ms, sizeof(decay_ms)) !=
          0) {
    return "freed large extents returned at once (cannot set " + decay + ")";
  }
  MutexLock lock(&g_arenas_mu);
  std::string refused = SetNewArenasLocked();
  if (!refused.empty()) {
    return absl::StrCat("freed large extents returned at once (cannot set ",
                        refused, ")");
  }
  g_keep_freed_extents = true;
  return absl::StrCat("freed large extents kept for reuse for ", decay_ms,
                      " ms");
}

}  // namespace

std::string SetUpLargeAllocations() {
  // The huge arena exists once something has been allocated in it: the
  // probe creates it, and tells us its index.
  void* probe = mallocx(kLargeAllocationBytes, 0);
  void* small = mallocx(64, 0);
  if (probe == nullptr || small == nullptr) {
    if (probe != nullptr) dallocx(probe, 0);
    if (small != nullptr) dallocx(small, 0);
    return "none (out of memory at start-up)";
  }
  unsigned huge_arena = 0;
  unsigned small_arena = 0;
  size_t size = sizeof(unsigned);
  bool looked_up =
      mallctl("arenas.lookup", &huge_arena, &size, &probe, sizeof(probe)) ==
          0 &&
      mallctl("arenas.lookup", &small_arena, &size, &small, sizeof(small)) == 0;
  // The probe's own pages came from the default hooks.
  madvise(probe, kLargeAllocationBytes, MADV_HUGEPAGE);
  dallocx(probe, 0);
  dallocx(small, 0);
  if (!looked_up) return "none (jemalloc has no arenas.lookup)";
  if (huge_arena == small_arena) {
    // MALLOC_CONF=oversize_threshold:0 (an operator's choice) turns the
    // separate arena off: large buffers share the ordinary arenas' pages.
    return "none (no separate arena for large allocations: "
           "oversize_threshold is off)";
  }
  std::string hooks_name = absl::StrCat("arena.", huge_arena, ".extent_hooks");
  size = sizeof(g_default_hooks);
  if (mallctl(hooks_name.c_str(), &g_default_hooks, &size, nullptr, 0) != 0 ||
      g_default_hooks == nullptr) {
    return "none (cannot read the huge arena's extent hooks)";
  }
  g_huge_page_hooks = *g_default_hooks;
  g_huge_page_hooks.alloc = AllocWithHugePages;
  extent_hooks_t* ours = &g_huge_page_hooks;
  if (mallctl(hooks_name.c_str(), nullptr, nullptr, &ours, sizeof(ours)) != 0) {
    return "none (cannot set the huge arena's extent hooks)";
  }
  return absl::StrCat("transparent huge pages for allocations of ",
                      kLargeAllocationBytes >> 20, " MiB and more; ",
                      KeepFreedExtentsForReuse(huge_arena));
}

// "stats.arenas.4096.pdirty" and the like: every arena at once.
#define COMPUTE_STRINGIFY_(x) #x
#define COMPUTE_STRINGIFY(x) COMPUTE_STRINGIFY_(x)
#define COMPUTE_ALL_ARENAS COMPUTE_STRINGIFY(MALLCTL_ARENAS_ALL)

int64_t FreedBytesKept() {
  // jemalloc's statistics are a snapshot, refreshed by writing the epoch.
  uint64_t epoch = 1;
  size_t size = sizeof(epoch);
  if (mallctl("epoch", &epoch, &size, &epoch, size) != 0) return -1;
  size_t dirty_pages = 0;
  size = sizeof(dirty_pages);
  if (mallctl("stats.arenas." COMPUTE_ALL_ARENAS ".pdirty", &dirty_pages, &size,
              nullptr, 0) != 0) {
    return -1;
  }
  // The page size does not change: read once.
  static const size_t page = [] {
    size_t value = 0;
    size_t value_size = sizeof(value);
    mallctl("arenas.page", &value, &value_size, nullptr, 0);
    return value;
  }();
  if (page == 0) return -1;
  return static_cast<int64_t>(dirty_pages * page);
}

void KeepFreedExtentsInNewArenas() {
  MutexLock lock(&g_arenas_mu);
  // Set up at start-up, or nothing to keep (oversize_threshold:0).
  if (g_keep_freed_extents) SetNewArenasLocked();
}

void ReturnFreedBytes() {
  mallctl("arena." COMPUTE_ALL_ARENAS ".purge", nullptr, nullptr, nullptr, 0);
}

}  // namespace compute
