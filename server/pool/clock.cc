#include "server/pool/clock.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace compute {

Clock& Clock::Real() {
  static RealClock* const clock = new RealClock();
  return *clock;
}

namespace {

bool InvariantTsc() {
#if defined(__x86_64__)
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line;
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("flags", 0) == 0) {
      std::istringstream words(line);
      bool constant = false, nonstop = false;
      for (std::string w; words >> w;) {
        constant |= w == "constant_tsc";
        nonstop |= w == "nonstop_tsc";
      }
      return constant && nonstop;
    }
  }
#endif
  return false;
}

}  // namespace

RealClock::RealClock() {
#if defined(__x86_64__)
  if (!InvariantTsc()) return;
  // Calibrate over ~5 ms of the monotonic clock; the error is well under 0.1%.
  int64_t ns0 = MonotonicNanos();
  uint64_t tsc0 = __rdtsc();
  int64_t ns1;
  do {
    ns1 = MonotonicNanos();
  } while (ns1 - ns0 < 5000000);
  uint64_t tsc1 = __rdtsc();
  if (tsc1 <= tsc0) return;
  ns_per_tick_q32_ =
      static_cast<int64_t>(static_cast<double>(ns1 - ns0) /
                           static_cast<double>(tsc1 - tsc0) * 4294967296.0);
  use_tsc_ = true;
#endif
}

int64_t RealClock::Ticks() const {
#if defined(__x86_64__)
  if (use_tsc_) return static_cast<int64_t>(__rdtsc());
#endif
  return MonotonicNanos();
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
    waiters_.push_back({&cv, &mu, deadline, &deadline});
  }
  cv.Wait(&mu);
  MutexLock lock(&clock_mu_);
  auto it = std::find_if(waiters_.begin(), waiters_.end(),
                         [&](const Waiter& w) { return w.id == &deadline; });
  if (it != waiters_.end()) waiters_.erase(it);
}

size_t SimulatedClock::waiters() const {
  MutexLock lock(&clock_mu_);
  return waiters_.size();
}

std::vector<absl::Time> SimulatedClock::waiter_deadlines() const {
  MutexLock lock(&clock_mu_);
  std::vector<absl::Time> deadlines;
  for (const Waiter& w : waiters_) deadlines.push_back(w.deadline);
  return deadlines;
}

void SimulatedClock::Advance(absl::Duration d) {
  std::vector<Waiter> waiters;
  {
    MutexLock lock(&clock_mu_);
    now_ += d;
    // Only those whose deadline has come, as a real clock would: a waiter
    // woken early would hide code that computed its deadline wrong.
    for (const Waiter& w : waiters_) {
      if (w.deadline <= now_) waiters.push_back(w);
    }
  }
  for (const Waiter& w : waiters) {
    // Taking the waiter's mutex orders this signal after its Wait began.
    w.mu->Lock();
    w.mu->Unlock();
    w.cv->SignalAll();
  }
}

}  // namespace compute
