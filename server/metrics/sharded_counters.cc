#include "server/metrics/sharded_counters.h"

#include <utility>

namespace compute::metrics {
namespace {

// Slots of live threads; a slot freed by an exiting thread is reused first,
// so the slots stay dense (about the number of threads that record).
class SlotRegistry {
 public:
  static SlotRegistry& Get() {
    // Leaked: thread-exit destructors may run after static destruction.
    static SlotRegistry* const registry = new SlotRegistry();
    return *registry;
  }
  size_t Acquire() {
    MutexLock lock(&mu_);
    if (free_.empty()) return next_++;
    size_t slot = free_.back();
    free_.pop_back();
    return slot;
  }
  void Release(size_t slot) {
    MutexLock lock(&mu_);
    free_.push_back(slot);
  }

 private:
  Mutex mu_;
  std::vector<size_t> free_ ABSL_GUARDED_BY(mu_);
  size_t next_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace

struct ShardedCounters::SlotHolder {
  SlotHolder() : slot(SlotRegistry::Get().Acquire()) {}
  ~SlotHolder() {
    // Any later add from this thread (another thread_local's destructor)
    // goes to the shared overflow stripe, not to the next owner's.
    thread_slot_ = kMaxSlots;
    SlotRegistry::Get().Release(slot);
  }
  const size_t slot;
};

size_t ShardedCounters::AcquireThreadSlot() {
  thread_local const SlotHolder holder;
  thread_slot_ = holder.slot;
  return holder.slot;
}

ShardedCounters::ShardedCounters(size_t size)
    : size_(size), overflow_(size, /*shared=*/true) {}

ShardedCounters::~ShardedCounters() = default;

ShardedCounters::Stripe& ShardedCounters::NewStripe(size_t slot) {
  MutexLock lock(&mu_);
  // Only this thread holds `slot`, so nobody else is creating its stripe.
  owned_.push_back(std::unique_ptr<Stripe>(new Stripe(size_, false)));
  Stripe* stripe = owned_.back().get();
  slots_[slot].store(stripe, std::memory_order_release);
  return *stripe;
}

std::vector<uint64_t> ShardedCounters::Snapshot() const {
  std::vector<uint64_t> sums(size_, 0);
  auto add = [&](const Stripe& s) {
    for (size_t i = 0; i < size_; ++i) sums[i] += s.Get(i);
  };
  for (const std::atomic<Stripe*>& slot : slots_) {
    if (const Stripe* s = slot.load(std::memory_order_acquire)) add(*s);
  }
  add(overflow_);
  return sums;
}

size_t ShardedCounters::stripes() const {
  MutexLock lock(&mu_);
  return owned_.size() + 1;
}

}  // namespace compute::metrics
