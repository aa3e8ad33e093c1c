// Mutex, SpinLock, CondVar and Notification over pthreads, with abseil's
// thread-safety annotations.
//
// Why not absl::Mutex: Debian's abseil is not built with ThreadSanitizer, so
// TSan cannot see absl::Mutex's happens-before edges and reports every
// guarded access as a race. pthread calls are intercepted by TSan. The wrappers
// keep abseil's spelling (Lock, MutexLock, CondVar::Wait(&mu)) and its
// annotations (ABSL_GUARDED_BY works on Mutex) so the locking stays visible in
// the types.
#ifndef COMPUTE_SERVER_POOL_SYNC_H_
#define COMPUTE_SERVER_POOL_SYNC_H_

#include <errno.h>
#include <pthread.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace compute {

// A pthread mutex of the adaptive kind: under contention it spins briefly
// before sleeping in the kernel. The pool's critical sections are a few
// dozen instructions, so a contending worker or submitter usually gets the
// lock within that spin instead of paying a futex sleep and wake-up.
class ABSL_LOCKABLE Mutex {
 public:
  Mutex() {
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
#if defined(PTHREAD_ADAPTIVE_MUTEX_INITIALIZER_NP)
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
#endif
    pthread_mutex_init(&mu_, &attr);
    pthread_mutexattr_destroy(&attr);
  }
  ~Mutex() { pthread_mutex_destroy(&mu_); }
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() { pthread_mutex_lock(&mu_); }
  void Unlock() ABSL_UNLOCK_FUNCTION() { pthread_mutex_unlock(&mu_); }
  // Tells clang's analysis the caller holds the lock where it cannot see
  // it (in a lambda run under the lock); checks nothing at run time.
  void AssertHeld() const ABSL_ASSERT_EXCLUSIVE_LOCK() {}

 private:
  friend class CondVar;
  pthread_mutex_t mu_;
};

// Holds a Mutex or a SpinLock for its scope.
template <typename Lockable>
class ABSL_SCOPED_LOCKABLE ScopedLock {
 public:
  explicit ScopedLock(Lockable* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~ScopedLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  ScopedLock(const ScopedLock&) = delete;
  ScopedLock& operator=(const ScopedLock&) = delete;

 private:
  Lockable* const mu_;
};
using MutexLock = ScopedLock<Mutex>;

// One spin-wait step: tells the core this is a busy-wait loop.
inline void CpuRelax() {
#if defined(__x86_64__)
  __builtin_ia32_pause();
#endif
}

// A test-and-test-and-set spin lock for critical sections of a few
// instructions that are rarely contended (the pool's record allocator):
// cheaper than a pthread mutex's call, and TSan understands its atomics.
// Never hold it across anything that may block.
class ABSL_LOCKABLE SpinLock {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    while (locked_.exchange(true, std::memory_order_acquire)) {
      while (locked_.load(std::memory_order_relaxed)) CpuRelax();
    }
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    locked_.store(false, std::memory_order_release);
  }

 private:
  std::atomic<bool> locked_{false};
};

using SpinLockHolder = ScopedLock<SpinLock>;

// The time every deadline and timed wait in the server is measured in:
// the monotonic clock (CLOCK_MONOTONIC), which a step of the wall clock
// (NTP, a VM resumed, `date -s`) does not move, written as an absl::Time
// anchored at the wall clock's reading when the process first asks. So it
// prints as a plausible date, and a wall time passed by mistake is off only
// by the wall clock's drift since start-up, not by decades. Before, the
// server's deadlines and waits were wall-clock time: a step forward of an
// hour expired every queued and running call at once (DEADLINE_EXCEEDED,
// though gRPC's own deadline was far off), a step back stopped the memory
// returner and the load report for an hour.
//
// Not for what must be a date (log timestamps) nor for deadlines handed to
// gRPC's API (wall time there: absl::Now()).
struct MonotonicAnchor {
  absl::Time wall;
  int64_t monotonic_ns;
};
inline int64_t MonotonicNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}
inline const MonotonicAnchor& TheMonotonicAnchor() {
  static const MonotonicAnchor anchor = [] {
    timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    return MonotonicAnchor{absl::TimeFromTimespec(wall), MonotonicNanos()};
  }();
  return anchor;
}
inline absl::Time MonotonicNow() {
  const MonotonicAnchor& anchor = TheMonotonicAnchor();
  return anchor.wall +
         absl::Nanoseconds(MonotonicNanos() - anchor.monotonic_ns);
}
// `t` on CLOCK_MONOTONIC, for pthread_cond_timedwait; clamped at 0.
inline timespec ToMonotonicTimespec(absl::Time t) {
  const MonotonicAnchor& anchor = TheMonotonicAnchor();
  absl::Duration since_boot =
      absl::Nanoseconds(anchor.monotonic_ns) + (t - anchor.wall);
  if (since_boot < absl::ZeroDuration()) since_boot = absl::ZeroDuration();
  return absl::ToTimespec(since_boot);
}

// Waits may return spuriously: callers re-check their condition in a loop.
// Deadlines are MonotonicNow() time (above).
class CondVar {
 public:
  CondVar() {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cv_, &attr);
    pthread_condattr_destroy(&attr);
  }
  ~CondVar() { pthread_cond_destroy(&cv_); }
  CondVar(const CondVar&) = delete;
  CondVar& operator=(const CondVar&) = delete;

  void Wait(Mutex* mu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    pthread_cond_wait(&cv_, &mu->mu_);
  }
  // Returns true when `deadline` has passed.
  bool WaitWithDeadline(Mutex* mu, absl::Time deadline)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (deadline == absl::InfiniteFuture()) {
      Wait(mu);
      return false;
    }
    timespec ts = ToMonotonicTimespec(deadline);
    return pthread_cond_timedwait(&cv_, &mu->mu_, &ts) == ETIMEDOUT;
  }
  bool WaitWithTimeout(Mutex* mu, absl::Duration timeout)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    return WaitWithDeadline(mu, MonotonicNow() + timeout);
  }
  void Signal() { pthread_cond_signal(&cv_); }
  void SignalAll() { pthread_cond_broadcast(&cv_); }

 private:
  pthread_cond_t cv_;
};

// One-shot event, like absl::Notification.
class Notification {
 public:
  void Notify() {
    MutexLock lock(&mu_);
    notified_ = true;
    cv_.SignalAll();
  }
  bool HasBeenNotified() {
    MutexLock lock(&mu_);
    return notified_;
  }
  void WaitForNotification() {
    MutexLock lock(&mu_);
    while (!notified_) cv_.Wait(&mu_);
  }
  bool WaitForNotificationWithTimeout(absl::Duration timeout) {
    absl::Time deadline = MonotonicNow() + timeout;
    MutexLock lock(&mu_);
    while (!notified_) {
      if (cv_.WaitWithDeadline(&mu_, deadline)) return notified_;
    }
    return true;
  }

 private:
  Mutex mu_;
  CondVar cv_;
  bool notified_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_SYNC_H_
