// malloc_jemalloc: SetUpLargeAllocations for builds with jemalloc
// (COMPUTE_MALLOC, the default outside sanitizer builds; see
// CMakeLists.txt). The settings it relies on (oversize_threshold: a
// separate arena for large allocations) are in server/jemalloc_conf.cc.
#include <jemalloc/jemalloc.h>
#include <sys/mman.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "server/malloc_setup.h"

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
                      kLargeAllocationBytes >> 20, " MiB and more");
}

}  // namespace compute
