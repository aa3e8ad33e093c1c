// ComputeService: compute.v1.Compute over the WorkerPool, on gRPC's callback
// API, so that no gRPC thread ever waits for a task.
//
// Run = validate -> admission -> pool.Submit -> (worker runs the task) ->
// the pool's completion callback finishes the reactor, on the worker thread.
//
// Invariants
//   - Every call is finished exactly once: either in Run itself (bad input,
//     refusal, draining), with no pool task, or by the pool's completion
//     callback, which the pool calls exactly once per accepted task.
//   - A client cancel (OnCancel) cancels the task, queued or running; the
//     pool then completes it and that completion finishes the call.
//   - The call's deadline is the task's deadline.
//   - The reactor (RunCall) deletes itself in OnDone, which gRPC calls only
//     after Finish and after every other reaction has returned.
// The status mapping is the table in DESIGN.md and the README.
//
// Thread-safety: all methods are thread-safe.
#ifndef COMPUTE_SERVER_SERVICE_COMPUTE_SERVICE_H_
#define COMPUTE_SERVER_SERVICE_COMPUTE_SERVICE_H_

#include <array>
#include <atomic>
#include <cstdint>

#include "compute/v1/compute.grpc.pb.h"
#include "server/pool/worker_pool.h"
#include "server/service/admission.h"
#include "server/service/call_observer.h"

namespace compute::service {

// Runs a validated request's task on a worker. The default is the kind's
// own `run`; tests inject faults here.
using TaskRunner = absl::Status (*)(const tasks::TaskKind& kind,
                                    const compute::v1::RunRequest& request,
                                    const CancelToken& cancel,
                                    compute::v1::RunResponse* response);

struct ComputeServiceOptions {
  // Refuse at once a call whose deadline cannot be met (see admission.h).
  bool admission = true;
  CallObserver* observer = nullptr;  // optional; must outlive the service
  TaskRunner run_task = nullptr;     // nullptr: kind.run
};

class ComputeService final : public compute::v1::Compute::CallbackService {
 public:
  // `pool` must outlive the service.
  ComputeService(WorkerPool& pool, ComputeServiceOptions options);

  grpc::ServerUnaryReactor* Run(grpc::CallbackServerContext* context,
                                const compute::v1::RunRequest* request,
                                compute::v1::RunResponse* response) override;

  // From now on Run answers UNAVAILABLE; calls already accepted go on.
  void StartDraining() { draining_.store(true, std::memory_order_release); }
  bool draining() const { return draining_.load(std::memory_order_acquire); }

  uint64_t rejected(RejectReason reason) const {
    return rejected_[static_cast<int>(reason)].load(std::memory_order_relaxed);
  }

 private:
  friend class RunCall;
  void CountRejected(RejectReason reason);

  WorkerPool& pool_;
  const ComputeServiceOptions options_;
  RunTimeEstimator estimator_;
  std::atomic<bool> draining_{false};
  std::array<std::atomic<uint64_t>, kNumRejectReasons> rejected_{};
};

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_COMPUTE_SERVICE_H_
