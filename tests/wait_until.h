// WaitUntil: how every test waits for state it cannot be told about (pool
// stats, a scrape): polls a condition until it holds, with a timeout that
// fails the test. It waits for a condition; the poll interval is not a
// guess at how long anything takes.
#ifndef COMPUTE_TESTS_WAIT_UNTIL_H_
#define COMPUTE_TESTS_WAIT_UNTIL_H_

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace compute::testing {

// Generous: the bound only fails a test that is stuck, never a slow machine.
inline constexpr absl::Duration kWaitLimit = absl::Seconds(30);

// True once `pred()` holds; false if it still does not after `timeout`.
template <typename Pred>
bool WaitUntil(Pred pred, absl::Duration timeout = kWaitLimit) {
  const absl::Time end = absl::Now() + timeout;
  while (!pred()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(absl::Microseconds(200));
  }
  return true;
}

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_WAIT_UNTIL_H_
