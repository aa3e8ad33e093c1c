// malloc_jemalloc: every jemalloc arena keeps its freed large extents for
// reuse, from start-up or (for arenas made later, as threads first
// allocate) from the memory returner's next check; and arenas are made as
// threads need them, not all at start-up (jemalloc makes 4 per CPU of the
// node: 512 of them held 81 MiB of an idle server on a 128-CPU node).
//
// Linked with compute-server's jemalloc settings (jemalloc_conf.cc); CTest
// runs it twice: with MALLOC_CONF=narenas:64 (a 16-CPU node) and with
// MALLOC_CONF=percpu_arena:percpu (an operator may set it; it
// forbids binding a thread to an arena).
#include <jemalloc/jemalloc.h>

#include <cstdlib>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/malloc_setup.h"
#include "server/pool/sync.h"

namespace compute {
namespace {

template <typename T>
T Read(const std::string& name) {
  T value{};
  size_t size = sizeof(value);
  EXPECT_EQ(mallctl(name.c_str(), &value, &size, nullptr, 0), 0) << name;
  return value;
}

unsigned ArenaSlots() { return Read<unsigned>("arenas.narenas"); }

// jemalloc answers from a snapshot that writing the epoch refreshes.
void Refresh() {
  uint64_t epoch = 1;
  size_t size = sizeof(epoch);
  ASSERT_EQ(mallctl("epoch", &epoch, &size, &epoch, size), 0);
}

bool Initialized(unsigned arena) {
  return Read<bool>(absl::StrCat("arena.", arena, ".initialized"));
}

std::vector<unsigned> InitializedArenas() {
  Refresh();
  std::vector<unsigned> arenas;
  for (unsigned i = 0; i < ArenaSlots(); ++i) {
    if (Initialized(i)) arenas.push_back(i);
  }
  return arenas;
}

// Arenas that would return a freed extent at once once it coalesces past
// the oversize threshold.
std::vector<unsigned> ArenasThatReturnAtOnce() {
  std::vector<unsigned> arenas;
  for (unsigned arena : InitializedArenas()) {
    if (Read<size_t>(absl::StrCat("arena.", arena, ".oversize_threshold")) !=
        std::numeric_limits<size_t>::max()) {
      arenas.push_back(arena);
    }
  }
  return arenas;
}

// Start-up happens once per process; every test needs it first.
class JemallocArenasTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    setup_ = new std::string(SetUpLargeAllocations());
  }
  static void TearDownTestSuite() { delete setup_; }
  static std::string* setup_;
};
std::string* JemallocArenasTest::setup_ = nullptr;

TEST_F(JemallocArenasTest, EveryArenaThatExistsKeepsFreedExtents) {
  EXPECT_TRUE(absl::StrContains(*setup_, "kept for reuse for 10000 ms"))
      << *setup_;
  EXPECT_EQ(ArenasThatReturnAtOnce(), std::vector<unsigned>{});
}

TEST_F(JemallocArenasTest, TheHugeArenaGetsTheOrdinaryDecay) {
  void* large = mallocx(kLargeAllocationBytes, 0);
  ASSERT_NE(large, nullptr);
  unsigned huge = 0;
  size_t size = sizeof(huge);
  ASSERT_EQ(mallctl("arenas.lookup", &huge, &size, &large, sizeof(large)), 0);
  dallocx(large, 0);
  EXPECT_EQ(Read<ssize_t>(absl::StrCat("arena.", huge, ".dirty_decay_ms")),
            Read<ssize_t>("opt.dirty_decay_ms"));
}

TEST_F(JemallocArenasTest, ArenasAreMadeAsThreadsNeedThemNotAllAtStartUp) {
  const unsigned slots = ArenaSlots();
  if (slots < 16) GTEST_SKIP() << "run with MALLOC_CONF=narenas:64";
  // This thread's arena and the huge one (jemalloc's background threads
  // allocate from arena 0).
  EXPECT_LE(InitializedArenas().size(), 3u) << "of " << slots;
}

// Threads started after start-up (a worker under load) get arenas that
// keep freed extents too, once the returner has checked: 80 KiB buffers
// (a gRPC read's), freed, coalesce past the 2 MiB threshold and stay.
TEST_F(JemallocArenasTest, ANewThreadsArenaKeepsFreedExtentsAfterTheCheck) {
  constexpr int kThreads = 8;
  Mutex mu;
  CondVar cv;
  int bound = 0;
  bool checked = false;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      // Takes an arena, made for it if need be (volatile: a malloc and
      // free of an unused pointer may be left out).
      void* volatile small = malloc(64);
      free(small);
      MutexLock lock(&mu);
      ++bound;
      cv.SignalAll();
      while (!checked) cv.Wait(&mu);
    });
  }
  {
    MutexLock lock(&mu);
    while (bound < kThreads) cv.Wait(&mu);
  }
  // (With percpu arenas a thread takes its CPU's arena: none is made.)
  if (ArenaSlots() >= 16 &&
      std::string(Read<const char*>("opt.percpu_arena")) == "disabled") {
    EXPECT_NE(ArenasThatReturnAtOnce(), std::vector<unsigned>{})
        << "no arena was made for the new threads: the test shows nothing";
  }
  KeepFreedExtentsInNewArenas();
  EXPECT_EQ(ArenasThatReturnAtOnce(), std::vector<unsigned>{});
  {
    MutexLock lock(&mu);
    checked = true;
    cv.SignalAll();
  }
  for (auto& t : threads) t.join();

  const int64_t before = FreedBytesKept();
  std::thread reader([] {
    std::vector<void*> buffers;
    for (int i = 0; i < 64; ++i) buffers.push_back(malloc(80 << 10));
    for (void* b : buffers) free(b);
  });
  reader.join();
  // 5 MiB freed: an arena that returns what coalesces past 2 MiB keeps
  // less than that.
  EXPECT_GE(FreedBytesKept() - before, int64_t{3} << 20);
}

}  // namespace
}  // namespace compute
