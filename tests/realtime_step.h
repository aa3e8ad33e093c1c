// Steps the wall clock for this test process alone: defines clock_gettime,
// which the libraries' calls (absl::Now's, std::chrono::system_clock's,
// gRPC's among them) bind to instead of libc's, and moves CLOCK_REALTIME by
// g_realtime_step_ns (positive: forward). Every other clock passes through.
//
// Include it in exactly one file of a test binary (it defines the function).
#ifndef COMPUTE_TESTS_REALTIME_STEP_H_
#define COMPUTE_TESTS_REALTIME_STEP_H_

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

inline std::atomic<int64_t> g_realtime_step_ns{0};

extern "C" int clock_gettime(clockid_t clock, struct timespec* ts) noexcept {
  const int result = static_cast<int>(syscall(SYS_clock_gettime, clock, ts));
  const int64_t step = g_realtime_step_ns.load(std::memory_order_relaxed);
  if (result == 0 && clock == CLOCK_REALTIME && step != 0) {
    int64_t ns = ts->tv_sec * int64_t{1000000000} + ts->tv_nsec + step;
    ts->tv_sec = ns / 1000000000;
    ts->tv_nsec = ns % 1000000000;
  }
  return result;
}

#endif  // COMPUTE_TESTS_REALTIME_STEP_H_
