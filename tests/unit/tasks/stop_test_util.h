// Helpers for the kernels' cancellation tests.
//
// To prove that a kernel notices a stop *while it runs* (not only at entry),
// the test waits until the kernel's thread has burnt some CPU time, read from
// that thread's own CPU clock: a condition, not a sleep, so it holds on a
// loaded machine too. Then it requests the stop and measures, on a steady
// clock, how long the kernel takes to return.
#ifndef COMPUTE_TESTS_UNIT_TASKS_STOP_TEST_UTIL_H_
#define COMPUTE_TESTS_UNIT_TASKS_STOP_TEST_UTIL_H_

#include <pthread.h>
#include <time.h>

#include <chrono>
#include <functional>
#include <thread>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "server/pool/cancel_token.h"

namespace compute::tasks::testing {

// Generous, to tolerate a loaded CI machine; the design target is 10 ms.
inline constexpr absl::Duration kStopBound = absl::Milliseconds(500);

struct StopOutcome {
  absl::Status status;
  // From request_stop() until the kernel returned.
  absl::Duration latency;
  // Whether the kernel had used `cpu_before_stop` of CPU when stopped (false:
  // it returned first, or the thread's clock could not be read).
  bool stopped_mid_run = false;
};

// Runs `kernel` on a new thread, requests a stop once the thread has used
// `cpu_before_stop` of CPU time, and returns what the kernel returned.
inline StopOutcome RunAndStop(
    const std::function<absl::Status(const CancelToken&)>& kernel,
    absl::Duration cpu_before_stop) {
  CancelSource source;
  StopOutcome outcome;
  absl::Notification done;
  std::thread thread([&] {
    outcome.status = kernel(source.token());
    done.Notify();
  });
  clockid_t cpu_clock;
  const bool have_clock =
      pthread_getcpuclockid(thread.native_handle(), &cpu_clock) == 0;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (have_clock && !done.HasBeenNotified() && absl::Now() < give_up) {
    timespec used;
    if (clock_gettime(cpu_clock, &used) != 0) break;
    if (absl::DurationFromTimespec(used) >= cpu_before_stop) {
      outcome.stopped_mid_run = true;
      break;
    }
    std::this_thread::yield();
  }
  const auto start = std::chrono::steady_clock::now();
  source.request_stop();
  done.WaitForNotificationWithTimeout(absl::Seconds(30));
  outcome.latency = absl::FromChrono(std::chrono::steady_clock::now() - start);
  thread.join();
  ::testing::Test::RecordProperty(
      "stop_latency_us",
      static_cast<int>(absl::ToInt64Microseconds(outcome.latency)));
  return outcome;
}

// Runs `kernel` with a token stopped before the call; returns its status and
// the time it took.
inline StopOutcome RunStopped(
    const std::function<absl::Status(const CancelToken&)>& kernel) {
  CancelSource source;
  source.request_stop();
  StopOutcome outcome;
  const auto start = std::chrono::steady_clock::now();
  outcome.status = kernel(source.token());
  outcome.latency = absl::FromChrono(std::chrono::steady_clock::now() - start);
  return outcome;
}

}  // namespace compute::tasks::testing

#endif  // COMPUTE_TESTS_UNIT_TASKS_STOP_TEST_UTIL_H_
