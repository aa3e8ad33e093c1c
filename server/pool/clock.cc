#include "server/pool/clock.h"

#include <algorithm>

namespace compute {

Clock& Clock::Real() {
  static RealClock* const clock = new RealClock();
  return *clock;
}

absl::Time SimulatedClock::Now() const {
  MutexLock lock(&clock_mu_);
  return now_;
}

void SimulatedClock::WaitWithDeadline(CondVar& cv, Mutex& mu,
                                      absl::Time deadline) {
  {
    MutexLock lock(&clock_mu_);
    if (now_ >= deadline) return;
    waiters_.push_back({&cv, &mu});
  }
  cv.Wait(&mu);
  MutexLock lock(&clock_mu_);
  auto it = std::find_if(waiters_.begin(), waiters_.end(),
                         [&](const Waiter& w) { return w.cv == &cv; });
  if (it != waiters_.end()) waiters_.erase(it);
}

void SimulatedClock::Advance(absl::Duration d) {
  std::vector<Waiter> waiters;
  {
    MutexLock lock(&clock_mu_);
    now_ += d;
    waiters = waiters_;
  }
  for (const Waiter& w : waiters) {
    // Taking the waiter's mutex orders this signal after its Wait began.
    w.mu->Lock();
    w.mu->Unlock();
    w.cv->SignalAll();
  }
}

}  // namespace compute
