// Admission: refuse at once the work that cannot finish in time.
//
// A call with a deadline that will expire in the queue costs a queue slot,
// memory and, if it reaches a worker just before expiring, CPU, and still
// fails. So before queueing we estimate its completion time from what the
// pool is doing now and what tasks of each kind have recently cost:
//
//   wait  = max(0, queued + busy - workers + 1) / workers * mean run (any kind)
//   total = wait + mean run of this kind
//
// and refuse with RESOURCE_EXHAUSTED (reason "deadline") when now + total is
// past the deadline. Means are exponentially weighted (alpha 1/8) so they
// follow load changes within tens of tasks. A kind never seen yet costs 0:
// we admit optimistically rather than refuse on no evidence.
//
// The same means give the retry pushback (gRFC A6), bounded to [1 ms, 10 s]:
// for a full queue, how long until its head starts (a slot frees up); for a
// deadline refusal, the expected wait itself.
//
// Thread-safety: all methods may be called concurrently. Updates are
// lock-free and may lose one of two racing samples; that is noise in an
// average, not an error.
#ifndef COMPUTE_SERVER_SERVICE_ADMISSION_H_
#define COMPUTE_SERVER_SERVICE_ADMISSION_H_

#include <array>
#include <atomic>

#include "absl/time/time.h"
#include "server/pool/worker_pool.h"
#include "server/tasks/registry.h"

namespace compute::service {

class RunTimeEstimator {
 public:
  void Record(int kind, absl::Duration run_time);
  // Zero until a task of that kind has finished.
  absl::Duration MeanRunTime(int kind) const;
  absl::Duration MeanRunTimeAllKinds() const;

  // Expected wait in the queue for a task submitted now.
  absl::Duration ExpectedWait(const PoolStats& stats) const;

  // Expected time until a queue slot frees up (the head of the queue starts):
  // mean run time / workers, clamped to [1 ms, 10 s].
  absl::Duration SlotPushback(const PoolStats& stats) const;
  // ExpectedWait, clamped to [1 ms, 10 s].
  absl::Duration WaitPushback(const PoolStats& stats) const;

 private:
  static void Update(std::atomic<double>& mean, double sample);
  std::array<std::atomic<double>, tasks::kNumTaskKinds> mean_ns_{};
  std::atomic<double> mean_all_ns_{0};
};

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_ADMISSION_H_
