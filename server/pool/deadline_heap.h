// DeadlineHeap: the pool's timer queue, a min-heap of (deadline, item,
// sequence number) entries, earliest deadline first.
//
// Why entries go stale instead of leaving: a task that finishes before its
// deadline (almost every task) would otherwise be sifted out of the heap at
// once, a walk of cache misses that cost 20% of a trivial task's time. So
// Drop only marks the item untimed, O(1), and its entry stays, stale, until
// its deadline passes at the front, the timer asks for the earliest
// deadline, or the heap is rebuilt without the stale ones (once they
// outnumber the live entries): the heap holds at most 2 x live +
// kSlack entries, at an amortised O(1) per item.
//
// An entry is live while its item is `timed` and still the submission the
// entry names (item->seq: records are recycled). T has two fields for the
// heap: `uint64_t seq` (unique per use of the record, never 0 while timed)
// and `bool timed` (set only by this heap).
//
// Thread-safety: none; the pool guards it with its mutex.
#ifndef COMPUTE_SERVER_POOL_DEADLINE_HEAP_H_
#define COMPUTE_SERVER_POOL_DEADLINE_HEAP_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "server/pool/pool_check.h"

namespace compute {

template <typename T>
class DeadlineHeap {
 public:
  static constexpr size_t kSlack = 64;

  // Times `item` (not timed now) until `deadline`.
  void Add(T* item, absl::Time deadline) {
    POOL_CHECK(!item->timed);
    item->timed = true;
    ++live_;
    entries_.push_back({deadline, item, item->seq});
    std::push_heap(entries_.begin(), entries_.end(), Later);
  }

  // Stops timing `item`; nothing if it is not timed.
  void Drop(T* item) {
    if (!item->timed) return;
    item->timed = false;
    --live_;
    CompactIfMostlyStale();
  }

  // The earliest live deadline; InfiniteFuture when nothing is timed.
  absl::Time Earliest() {
    DropStaleFront();
    return entries_.empty() ? absl::InfiniteFuture()
                            : entries_.front().deadline;
  }

  // The item with the earliest deadline if that is at or before `now`, no
  // longer timed; else nullptr.
  T* PopExpired(absl::Time now) {
    // The front's deadline is the earliest of every entry, stale or live: if
    // it is still ahead, nothing has expired, and a stale front stays where
    // it is. A worker asks before every task it starts, and the front is
    // then most often the task it just finished: popping it would sift
    // through the whole heap once per task.
    if (entries_.empty() || entries_.front().deadline > now) return nullptr;
    DropStaleFront();
    if (entries_.empty() || entries_.front().deadline > now) return nullptr;
    T* item = entries_.front().item;
    Pop();
    item->timed = false;
    --live_;
    CompactIfMostlyStale();
    return item;
  }

  size_t live() const { return live_; }
  // Live and stale: at most 2 x live() + kSlack.
  size_t entries() const { return entries_.size(); }

  // Checked builds: calls check(item, deadline) for every live entry and
  // checks the counts and the heap's order.
  template <typename Check>
  void CheckInvariants(Check check) const {
#if COMPUTE_POOL_CHECKS
    size_t live = 0;
    for (const Entry& e : entries_) {
      if (Stale(e)) continue;
      ++live;
      check(static_cast<const T*>(e.item), e.deadline);
    }
    POOL_CHECK(live == live_);
    POOL_CHECK(entries_.size() <= 2 * live_ + kSlack);
    POOL_CHECK(std::is_heap(entries_.begin(), entries_.end(), Later));
#else
    (void)check;
#endif
  }

 private:
  struct Entry {
    absl::Time deadline;
    T* item;
    uint64_t seq;
  };

  // Orders the heap so that the earliest deadline is at the front.
  static bool Later(const Entry& a, const Entry& b) {
    return a.deadline > b.deadline;
  }
  static bool Stale(const Entry& e) {
    return e.item->seq != e.seq || !e.item->timed;
  }
  void Pop() {
    std::pop_heap(entries_.begin(), entries_.end(), Later);
    entries_.pop_back();
  }
  void CompactIfMostlyStale() {
    if (entries_.size() <= 2 * live_ + kSlack) return;
    std::erase_if(entries_, [](const Entry& e) { return Stale(e); });
    std::make_heap(entries_.begin(), entries_.end(), Later);
  }
  void DropStaleFront() {
    while (!entries_.empty() && Stale(entries_.front())) Pop();
  }

  std::vector<Entry> entries_;
  size_t live_ = 0;  // entries that are not stale
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_DEADLINE_HEAP_H_
