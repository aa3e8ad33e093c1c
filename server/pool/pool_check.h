// POOL_CHECK(cond): the scheduler's invariant and state-transition checks,
// compiled in for debug and sanitizer builds (COMPUTE_POOL_CHECKS), where a
// failure prints the condition and aborts; nothing in release builds.
#ifndef COMPUTE_SERVER_POOL_POOL_CHECK_H_
#define COMPUTE_SERVER_POOL_POOL_CHECK_H_

// State checks are compiled in for debug and sanitizer builds.
#if !defined(NDEBUG) || defined(__SANITIZE_ADDRESS__) || \
    defined(__SANITIZE_THREAD__)
#define COMPUTE_POOL_CHECKS 1
#else
#define COMPUTE_POOL_CHECKS 0
#endif

#if COMPUTE_POOL_CHECKS
#include "server/base/crash_line.h"
// The line goes out without blocking on a stalled stderr (crash_line.h).
#define POOL_CHECK(cond)                                                   \
  do {                                                                     \
    if (!(cond)) {                                                         \
      ::compute::base::AbortOnFailedCheck(__FILE__, __LINE__,              \
                                          "pool invariant failed", #cond); \
    }                                                                      \
  } while (0)
#else
#define POOL_CHECK(cond) \
  do {                   \
  } while (0)
#endif

#endif  // COMPUTE_SERVER_POOL_POOL_CHECK_H_
