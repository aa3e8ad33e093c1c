// Clock: the pool's source of time, injected so that deadline tests are
// deterministic.
//
// The pool needs two things from a clock: the time now, and a wait on a
// condition variable that ends when signalled or when the clock passes a
// deadline. RealClock maps both to absl. SimulatedClock only moves when a test
// calls Advance(), and wakes every waiter whose deadline it passes; a test can
// then put a task's deadline "in the past" without waiting for real time.
//
// Thread-safety: all methods may be called from any thread.
#ifndef COMPUTE_SERVER_POOL_CLOCK_H_
#define COMPUTE_SERVER_POOL_CLOCK_H_

#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/pool/sync.h"

namespace compute {

class Clock {
 public:
  virtual ~Clock() = default;

  virtual absl::Time Now() const = 0;

  // Waits on `cv` (with `mu` held, as for CondVar::Wait) until it is
  // signalled or Now() >= deadline. May return spuriously; callers re-check.
  virtual void WaitWithDeadline(CondVar& cv, Mutex& mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;

  // The process-wide real clock.
  static Clock& Real();
};

class RealClock final : public Clock {
 public:
  absl::Time Now() const override { return absl::Now(); }
  void WaitWithDeadline(CondVar& cv, Mutex& mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    cv.WaitWithDeadline(&mu, deadline);
  }
};

// A clock for tests: time stands still until Advance().
//
// A waiter registers its (cv, mu) pair before checking the time and keeps
// `mu` held until CondVar::Wait releases it; Advance() moves time first and
// then takes each registered `mu` before signalling, so a waiter either sees
// the new time or is already waiting when the signal comes: no lost wake-up.
// Advance() must not be called with any waiter's mutex held, nor race with
// the destruction of an object whose mutex is registered.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::UnixEpoch() +
                                             absl::Hours(24 * 365 * 50))
      : now_(start) {}

  absl::Time Now() const override;
  void WaitWithDeadline(CondVar& cv, Mutex& mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void Advance(absl::Duration d);

 private:
  struct Waiter {
    CondVar* cv;
    Mutex* mu;
  };
  mutable Mutex clock_mu_;
  absl::Time now_ ABSL_GUARDED_BY(clock_mu_);
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(clock_mu_);
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_CLOCK_H_
