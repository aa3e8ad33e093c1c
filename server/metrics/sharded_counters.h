// ShardedCounters: a fixed set of monotonic uint64 counters that many threads
// add to without a lock and without a locked instruction, summed when read.
//
// Why: prometheus-cpp's Histogram::Observe takes a mutex, and its Counter is
// one atomic double that every thread CASes; on the task path (once per task,
// on every worker) either makes the workers queue behind one another. Even a
// relaxed fetch_add is a locked read-modify-write (~20 cycles on x86, a full
// fence), and a Run call records nine of them.
//
// So each thread owns a stripe: its own copy of every counter, padded off
// other stripes' cache lines, that only it writes. An add is then a relaxed
// load and a relaxed store (plain moves on x86; single writer, so no update
// is lost), and a read sums the stripes with relaxed loads (each counter
// read is exact and whole; std::atomic makes the concurrent read defined).
//
// A thread's stripe is picked by its slot: a small process-wide index taken
// when the thread first adds to any ShardedCounters and given back when the
// thread exits, for the next new thread to reuse, with the stripe and its
// counts (no writer is left behind; the hand-over is ordered by a mutex).
// Stripes are allocated on a slot's first add and kept until the
// ShardedCounters goes. Threads beyond kMaxSlots share one overflow stripe,
// updated with fetch_add.
//
// Contract: counters only grow (by Add). Snapshot() is not atomic across
// counters: a value added concurrently may be in one counter of the snapshot
// and not yet in another (a histogram's bucket but not its sum, say); every
// value is in the next snapshot.
//
// Thread-safety: Add, Local and Snapshot may be called from any thread at
// any time. A Stripe& from Local() belongs to the calling thread: use it
// there only, and not past the thread's end.
#ifndef COMPUTE_SERVER_METRICS_SHARDED_COUNTERS_H_
#define COMPUTE_SERVER_METRICS_SHARDED_COUNTERS_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "server/pool/sync.h"

namespace compute::metrics {

class ShardedCounters {
 public:
  // Threads with their own stripe; more share the overflow stripe.
  static constexpr size_t kMaxSlots = 256;

  // One thread's counters (or the shared overflow ones).
  class Stripe {
   public:
    void Add(size_t index, uint64_t n = 1) {
      std::atomic<uint64_t>& cell = cells_[kPad + index];
      if (shared_) {
        cell.fetch_add(n, std::memory_order_relaxed);
      } else {
        cell.store(cell.load(std::memory_order_relaxed) + n,
                   std::memory_order_relaxed);
      }
    }

   private:
    friend class ShardedCounters;
    // Padding on both sides keeps other allocations off its cache lines.
    static constexpr size_t kPad = 64 / sizeof(std::atomic<uint64_t>);
    Stripe(size_t size, bool shared)
        : shared_(shared), cells_(size + 2 * kPad) {}
    uint64_t Get(size_t index) const {
      return cells_[kPad + index].load(std::memory_order_relaxed);
    }
    const bool shared_;
    std::vector<std::atomic<uint64_t>> cells_;
  };

  // `size` counters, all zero.
  explicit ShardedCounters(size_t size);
  ~ShardedCounters();
  ShardedCounters(const ShardedCounters&) = delete;
  ShardedCounters& operator=(const ShardedCounters&) = delete;

  size_t size() const { return size_; }

  // The calling thread's stripe: for several adds in a row.
  Stripe& Local() {
    size_t slot = ThreadSlot();
    if (slot >= kMaxSlots) return overflow_;
    Stripe* s = slots_[slot].load(std::memory_order_acquire);
    return s != nullptr ? *s : NewStripe(slot);
  }
  // Adds `n` to counter `index` (< size()).
  void Add(size_t index, uint64_t n = 1) { Local().Add(index, n); }

  // Every counter, summed over the stripes.
  std::vector<uint64_t> Snapshot() const;

  // Stripes allocated so far (including the overflow one); for tests.
  size_t stripes() const;

  // The calling thread's slot (see the file comment).
  static size_t ThreadSlot() {
    size_t slot = thread_slot_;
    return slot != kNoSlot ? slot : AcquireThreadSlot();
  }

 private:
  static constexpr size_t kNoSlot = ~size_t{0};
  // A plain thread_local (constant-initialized, no destructor) is a single
  // load on the fast path; the slot is given back by a separate
  // thread_local SlotHolder that AcquireThreadSlot sets up, which also
  // points a thread that records while it exits at the overflow stripe.
  static inline thread_local size_t thread_slot_ = kNoSlot;
  struct SlotHolder;
  static size_t AcquireThreadSlot();

  Stripe& NewStripe(size_t slot);

  const size_t size_;
  std::array<std::atomic<Stripe*>, kMaxSlots> slots_{};
  Stripe overflow_;
  mutable Mutex mu_;
  std::vector<std::unique_ptr<Stripe>> owned_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_SHARDED_COUNTERS_H_
