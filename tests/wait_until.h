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
// `every`: 200 us suits a condition that reads memory; one that does I/O
// (a scrape, a query) polls less often, or its polling takes a core from
// the tests running beside it.
template <typename Pred>
bool WaitUntil(Pred pred, absl::Duration timeout = kWaitLimit,
               absl::Duration every = absl::Microseconds(200)) {
  const absl::Time end = absl::Now() + timeout;
  while (!pred()) {
    if (absl::Now() > end) return false;
    absl::SleepFor(every);
  }
  return true;
}

// For conditions that do I/O on each poll: every 10 ms.
inline constexpr absl::Duration kIoPoll = absl::Milliseconds(10);

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_WAIT_UNTIL_H_
