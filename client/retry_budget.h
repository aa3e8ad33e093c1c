// RetryBudget: how many retries a client may send, so that retries cannot
// multiply the load of a fleet that is refusing it (Finagle's retry budget,
// gRPC's retry throttling).
//
// A token bucket: every first attempt sent deposits `share` of a token, up
// to a cap; a retry spends one. The cap is the larger of `cap` and the calls
// in flight when the attempt was sent, so that a replica that dies holding
// more calls than `cap` loses none of them to the budget (with a fixed cap
// of 10, a replica killed with 30 calls in flight lost 20). So, over any
// stretch of time, retries <= the most calls in flight (at least `cap`) +
// share * first attempts in it: a fleet that refuses everything sees (1 +
// share) times the load, plus what was in flight. The cap is what makes it
// a window: a long healthy run does not bank retries that an outage would
// then spend at up to max_attempts per call (the first version counted
// from the start of the run, and a 5 s healthy phase let an outage see
// 1.7x the load), and when fewer calls are in flight the bucket shrinks
// back to the new cap with the next attempt.
//
//   RetryBudget budget;                 // 20% + 10, full at the start
//   budget.Sent(in_flight);             // each first attempt
//   if (budget.TrySpend()) { ... }      // before each retry
//
// Thread-safety: every method may be called from any thread.
#ifndef COMPUTE_CLIENT_RETRY_BUDGET_H_
#define COMPUTE_CLIENT_RETRY_BUDGET_H_

#include <algorithm>
#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "server/pool/sync.h"

namespace compute::client {

class RetryBudget {
 public:
  static constexpr double kDefaultShare = 0.2;
  static constexpr double kDefaultCap = 10;

  explicit RetryBudget(double share = kDefaultShare, double cap = kDefaultCap)
      : share_(share), cap_(cap), tokens_(cap) {}

  // A first attempt went out, with `in_flight` calls in flight counting
  // it: it earns `share` of a retry, up to max(cap, in_flight).
  void Sent(uint64_t in_flight = 0) {
    const double cap = std::max(cap_, static_cast<double>(in_flight));
    MutexLock lock(&mu_);
    tokens_ = std::min(cap, tokens_ + share_);
  }

  // True, and one retry spent, if the budget holds one.
  bool TrySpend() {
    MutexLock lock(&mu_);
    if (tokens_ < 1) return false;
    tokens_ -= 1;
    return true;
  }

 private:
  const double share_;
  const double cap_;
  Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
};

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_RETRY_BUDGET_H_
