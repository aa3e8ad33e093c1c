// Jittered: a wait stretched by a random share of itself, [1, 1.2) times.
//
// Closed-loop lanes and retries that were refused or cut off together would
// otherwise wait the same time and come back together: every lane paused
// until the same replica's pause ends went to that replica at the same
// instant, which refused most of them and paused again (bursts of N), and
// after a server restart every lane reconnected on the same backoff ticks.
// Never shorter than asked: a pushback is the server's minimum (gRFC A6).
//
// Thread-safety: any thread; each has its own generator.
#ifndef COMPUTE_CLIENT_JITTER_H_
#define COMPUTE_CLIENT_JITTER_H_

#include <random>

#include "absl/time/time.h"

namespace compute::client {

inline constexpr double kMaxJitter = 0.2;

inline absl::Duration Jittered(absl::Duration wait) {
  thread_local std::minstd_rand generator(std::random_device{}());
  std::uniform_real_distribution<double> stretch(1.0, 1.0 + kMaxJitter);
  return wait * stretch(generator);
}

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_JITTER_H_
