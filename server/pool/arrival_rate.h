// ArrivalRate: how much work a flow of the fair queue (a tenant's calls of
// one class), or a whole class, has been sending lately, in ns of
// estimated cost per ns of time: 1.0 is a worker's worth. Admission uses
// it to foresee what other tenants and higher classes send while a new
// call waits (FairQueue::WorkAheadOf).
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
    if (per_ns_ == 0) return 0;  // never sent: no exp() on the common path
    const int64_t elapsed = std::max<int64_t>(0, now_ns - at_ns_);
    return per_ns_ * std::exp(-static_cast<double>(elapsed) / kTimeConstantNs);
  }

 private:
  double per_ns_ = 0;
  int64_t at_ns_ = 0;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_ARRIVAL_RATE_H_
