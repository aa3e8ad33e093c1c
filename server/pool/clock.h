// Clock: the pool's source of time, injected so that deadline tests are
// deterministic.
//
// The pool needs three things from a clock: the time now (deadlines are
// absolute; for the real clock monotonic time, MonotonicNow in sync.h, to
// which the service converts gRPC's deadlines as calls arrive), a cheap tick
// counter for the queue-wait and run-time durations it measures three times per
// task, and a wait on a condition variable that ends when signalled or when the
// clock passes a deadline.
//
// Why ticks: on the hot path a clock read is a large share of a task's
// overhead. On KVM guests (kvm-clock) clock_gettime costs ~45 ns, absl::Now()
// in Debian's abseil more (it takes a spinlock); the invariant TSC costs
// ~10-20 ns. RealClock uses the TSC when the CPU says it is invariant
// (constant_tsc and nonstop_tsc), calibrated once against the monotonic clock
// (MonotonicNanos, sync.h), and that clock otherwise. RealClock maps both to
// absl. SimulatedClock only moves when a test calls Advance(), and wakes every
// waiter whose deadline it passes; a test can then put a task's deadline "in
// the past" without waiting for real time.
//
// Thread-safety: all methods may be called from any thread.
#ifndef COMPUTE_SERVER_POOL_CLOCK_H_
#define COMPUTE_SERVER_POOL_CLOCK_H_

#include <chrono>
#include <cstdint>
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

  // Monotonic ticks for measuring durations; only differences mean anything.
  virtual int64_t Ticks() const = 0;
  virtual absl::Duration TicksToDuration(int64_t ticks) const = 0;

  // Waits on `cv` (with `mu` held, as for CondVar::Wait) until it is
  // signalled or Now() >= deadline. May return spuriously; callers re-check.
  virtual void WaitWithDeadline(CondVar& cv, Mutex& mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) = 0;

  // The process-wide real clock.
  static Clock& Real();
};

class RealClock final : public Clock {
 public:
  RealClock();

  // Monotonic (sync.h): deadlines judged by it do not move when the wall
  // clock steps.
  absl::Time Now() const override { return MonotonicNow(); }
  int64_t Ticks() const override;
  absl::Duration TicksToDuration(int64_t ticks) const override {
    // Fixed point (32 fractional bits): absl's Duration * double is slow.
    return absl::Nanoseconds(static_cast<int64_t>(
        (static_cast<__int128>(ticks) * ns_per_tick_q32_) >> 32));
  }
  void WaitWithDeadline(CondVar& cv, Mutex& mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    cv.WaitWithDeadline(&mu, deadline);
  }

 private:
  bool use_tsc_ = false;
  int64_t ns_per_tick_q32_ = int64_t{1} << 32;  // ns per tick, Q32.32
};

// A clock for tests: time stands still until Advance().
//
// A waiter registers its (cv, mu) pair before checking the time and keeps
// `mu` held until CondVar::Wait releases it; Advance() moves time first and
// then takes the `mu` of each waiter whose deadline has come before
// signalling it, so such a waiter either sees the new time or is already
// waiting when the signal comes: no lost wake-up. Waiters whose deadline
// has not come are not woken, as with a real clock.
// Advance() must not be called with any waiter's mutex held, nor race with
// the destruction of an object whose mutex is registered.
class SimulatedClock final : public Clock {
 public:
  explicit SimulatedClock(absl::Time start = absl::UnixEpoch() +
                                             absl::Hours(24 * 365 * 50))
      : now_(start) {}

  absl::Time Now() const override;
  int64_t Ticks() const override { return absl::ToUnixNanos(Now()); }
  absl::Duration TicksToDuration(int64_t ticks) const override {
    return absl::Nanoseconds(ticks);
  }
  void WaitWithDeadline(CondVar& cv, Mutex& mu, absl::Time deadline) override
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu);

  void Advance(absl::Duration d);
  // Threads waiting in WaitWithDeadline now: a test advances the time once
  // those it means to wake have computed their deadlines and wait.
  size_t waiters() const;
  // Their deadlines (each a wait's, in no order): a test checks when a
  // thread means to wake, not only that it waits.
  std::vector<absl::Time> waiter_deadlines() const;

 private:
  struct Waiter {
    CondVar* cv;
    Mutex* mu;
    absl::Time deadline;
    const void* id;  // the wait's own, to remove exactly its entry
  };
  mutable Mutex clock_mu_;
  absl::Time now_ ABSL_GUARDED_BY(clock_mu_);
  std::vector<Waiter> waiters_ ABSL_GUARDED_BY(clock_mu_);
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_CLOCK_H_
