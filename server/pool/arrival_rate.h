// What a flow of the fair queue has been doing lately: ArrivalRate, how
// much work it has been sending, and RecentFraction, how much of the time
// it had work in the pool. Admission uses them to foresee what other
// tenants send while a new call waits (FairQueue::WorkAheadOf).
//
// ArrivalRate is in ns of estimated cost per ns of time: 1.0 is a
// worker's worth.
//
// An exponentially decaying sum: each arrival adds cost / kTimeConstantNs,
// and the sum decays by e^(-elapsed / kTimeConstantNs). Sending at a steady
// r, it reaches r (63% of it within one time constant); a client that
// stops is forgotten within a few. One second: a 50 ms call adds 0.05 of a
// worker, so a tenant calling now and then barely moves it, and a client
// that starts or stops is followed within seconds.
//
// Times are a monotonic clock's, in ns; a time before the last is taken as
// the last (no growth backwards).
//
// Thread-safety: none; the fair queue's owner guards it.
#ifndef COMPUTE_SERVER_POOL_ARRIVAL_RATE_H_
#define COMPUTE_SERVER_POOL_ARRIVAL_RATE_H_

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace compute {

class ArrivalRate {
 public:
  static constexpr double kTimeConstantNs = 1e9;

  void Add(int64_t cost_ns, int64_t now_ns) {
    per_ns_ = At(now_ns) + static_cast<double>(cost_ns) / kTimeConstantNs;
    at_ns_ = std::max(at_ns_, now_ns);
  }
  // The rate at `now_ns`: ns of cost per ns.
  double At(int64_t now_ns) const {
    const int64_t elapsed = std::max<int64_t>(0, now_ns - at_ns_);
    return per_ns_ * std::exp(-static_cast<double>(elapsed) / kTimeConstantNs);
  }

 private:
  double per_ns_ = 0;
  int64_t at_ns_ = 0;
};

// RecentFraction: how much of the recent time something held (a flow had
// a task queued or running), decaying with a time constant of
// kTimeConstantNs: on for long, it nears 1 (0.86 after one time constant
// from 0, 0.9 after 1.15 s); off for long, 0. A client that keeps its
// calls in the pool (a closed loop of two calls or more, whatever share it
// is given) reads about 1; one that sends now and then, about the share of
// time its calls spend in the pool.
//
// Times as ArrivalRate's.
class RecentFraction {
 public:
  static constexpr double kTimeConstantNs = 5e8;

  void Set(bool on, int64_t now_ns) {
    fraction_ = At(now_ns);
    on_ = on;
    at_ns_ = std::max(at_ns_, now_ns);
  }
  double At(int64_t now_ns) const {
    const int64_t elapsed = std::max<int64_t>(0, now_ns - at_ns_);
    const double kept =
        std::exp(-static_cast<double>(elapsed) / kTimeConstantNs);
    return fraction_ * kept + (on_ ? 1 - kept : 0);
  }

 private:
  double fraction_ = 0;
  bool on_ = false;
  int64_t at_ns_ = 0;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_ARRIVAL_RATE_H_
