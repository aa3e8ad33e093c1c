#include "server/pool/deadline_heap.h"

#include <cstdint>
#include <deque>
#include <vector>

#include "gtest/gtest.h"

namespace compute {
namespace {

struct Item {
  uint64_t seq = 0;
  bool timed = false;
};

absl::Time At(int ms) { return absl::UnixEpoch() + absl::Milliseconds(ms); }

TEST(DeadlineHeapTest, PopsWhatExpiredEarliestFirst) {
  DeadlineHeap<Item> heap;
  Item a{1}, b{2}, c{3};
  heap.Add(&b, At(20));
  heap.Add(&c, At(30));
  heap.Add(&a, At(10));
  EXPECT_EQ(heap.Earliest(), At(10));
  EXPECT_EQ(heap.PopExpired(At(5)), nullptr);
  EXPECT_EQ(heap.PopExpired(At(25)), &a);
  EXPECT_FALSE(a.timed);
  EXPECT_EQ(heap.PopExpired(At(25)), &b);
  EXPECT_EQ(heap.PopExpired(At(25)), nullptr);
  EXPECT_EQ(heap.live(), 1u);
  EXPECT_EQ(heap.PopExpired(At(30)), &c);  // at the deadline counts
  EXPECT_EQ(heap.Earliest(), absl::InfiniteFuture());
  heap.CheckInvariants([](const Item*, absl::Time) {});
}

TEST(DeadlineHeapTest, ADroppedItemNeverExpires) {
  DeadlineHeap<Item> heap;
  Item a{1}, b{2};
  heap.Add(&a, At(10));
  heap.Add(&b, At(20));
  heap.Drop(&a);
  heap.Drop(&a);  // again: nothing
  EXPECT_FALSE(a.timed);
  EXPECT_EQ(heap.live(), 1u);
  EXPECT_EQ(heap.Earliest(), At(20));
  EXPECT_EQ(heap.PopExpired(At(100)), &b);
  EXPECT_EQ(heap.PopExpired(At(100)), nullptr);
}

// A worker asks before every task it starts, with the task it just finished
// (stale) at the front: while the front's deadline is ahead the answer is
// "nothing", without sifting the stale entry out through the heap.
TEST(DeadlineHeapTest, AStaleFrontStillAheadIsLeftInPlace) {
  DeadlineHeap<Item> heap;
  Item a{1}, b{2};
  heap.Add(&a, At(10));
  heap.Add(&b, At(20));
  heap.Drop(&a);
  EXPECT_EQ(heap.PopExpired(At(5)), nullptr);
  EXPECT_EQ(heap.entries(), 2u);
  EXPECT_EQ(heap.PopExpired(At(15)), nullptr);  // past a's: stale, gone
  EXPECT_EQ(heap.entries(), 1u);
  EXPECT_EQ(heap.PopExpired(At(20)), &b);
  heap.CheckInvariants([](const Item*, absl::Time) {});
}

// A recycled record (a new submission, a new sequence number) is timed by
// its new entry only: the old one, with the old deadline, is stale.
TEST(DeadlineHeapTest, ARecycledRecordKeepsOnlyItsNewDeadline) {
  DeadlineHeap<Item> heap;
  Item record{1};
  heap.Add(&record, At(10));
  heap.Drop(&record);
  record.seq = 2;
  heap.Add(&record, At(100));
  EXPECT_EQ(heap.Earliest(), At(100));
  EXPECT_EQ(heap.PopExpired(At(50)), nullptr);
  EXPECT_TRUE(record.timed);
  EXPECT_EQ(heap.PopExpired(At(100)), &record);
}

// Dropped entries stay until they outnumber the live ones; then the heap
// is rebuilt, so it holds at most 2 x live + kSlack entries, whichever way
// items leave.
TEST(DeadlineHeapTest, StaleEntriesStayBounded) {
  DeadlineHeap<Item> heap;
  std::deque<Item> items;
  for (int i = 0; i < 1000; ++i) {
    items.push_back(Item{static_cast<uint64_t>(i + 1)});
    heap.Add(&items.back(), At(1000 - i));
  }
  EXPECT_EQ(heap.entries(), 1000u);
  for (int i = 1; i < 1000; ++i) {  // all but the first (latest deadline)
    heap.Drop(&items[static_cast<size_t>(i)]);
    ASSERT_LE(heap.entries(), 2 * heap.live() + DeadlineHeap<Item>::kSlack);
  }
  EXPECT_EQ(heap.live(), 1u);
  EXPECT_EQ(heap.Earliest(), At(1000));
  for (int i = 0; i < 1000; ++i) {
    items.push_back(Item{static_cast<uint64_t>(2000 + i)});
    heap.Add(&items.back(), At(i));
  }
  int popped = 0;
  while (heap.PopExpired(At(2000)) != nullptr) {
    ++popped;
    ASSERT_LE(heap.entries(), 2 * heap.live() + DeadlineHeap<Item>::kSlack);
  }
  EXPECT_EQ(popped, 1001);
  heap.CheckInvariants([](const Item*, absl::Time) {});
}

}  // namespace
}  // namespace compute
