// CallObserver: what the service tells metrics about each call, so that the
// service knows nothing of Prometheus (server/metrics implements this).
#ifndef COMPUTE_SERVER_SERVICE_CALL_OBSERVER_H_
#define COMPUTE_SERVER_SERVICE_CALL_OBSERVER_H_

#include <string_view>

#include "absl/time/time.h"
#include "grpcpp/support/status.h"
#include "server/pool/fair_queue.h"
#include "server/pool/worker_pool.h"

namespace compute::service {

// Why a call was refused before reaching the pool's queue: a budget of the
// scheduler (see server/pool/worker_pool.h), the drain, a deadline already
// passed, or input the server will not run (INVALID_ARGUMENT).
// kPreempted: displaced from the queue after being accepted (for critical
// work; for a tenant under its share it is kTenantShare).
// Every Run call the service answers is counted once: in
// compute_tasks_total (its task completed) or here (it never became one);
// except a displaced call (kPreempted, or kTenantShare when a tenant under
// its share displaced it), counted in both: its task completed preempted,
// and it is refused.
enum class RejectReason {
  kQueueFull,
  kMemory,
  kOverload,
  kDeadline,
  kDraining,
  kTenantShare,
  kShed,
  kPreempted,
  kExpiredOnArrival,  // the deadline had passed when the call arrived
  // INVALID_ARGUMENT: bad input, a request too large for the memory budget,
  // or a response that would be over --max_message_bytes.
  kInvalid,
};
inline constexpr int kNumRejectReasons = 10;
// "queue_full", "memory", "overload", "deadline", "draining",
// "tenant_share", "shed", "preempted", "expired_on_arrival", "invalid": a
// metric label.
std::string_view RejectReasonName(RejectReason reason);

// Called on gRPC and worker threads, concurrently: implementations must be
// thread-safe and cheap.
class CallObserver {
 public:
  virtual ~CallObserver() = default;
  virtual void OnCallStarted(std::string_view method) = 0;
  // Exactly once per started call, when its status is sent.
  virtual void OnCallHandled(std::string_view method, grpc::StatusCode code,
                             absl::Duration elapsed) = 0;
  // A call refused (or displaced from the queue), with its priority class.
  virtual void OnRejected(RejectReason reason, Priority priority) = 0;
  // A call refused on arrival, never queued (RESOURCE_EXHAUSTED or
  // UNAVAILABLE): the time from its arrival at the service to its answer,
  // what a refusal costs the server. Default: not measured.
  virtual void OnRefusalAnswered(absl::Duration /*elapsed*/) {}
  // A Run call answered OK (so counted by OnCallHandled) whose answer was
  // not out when the call ended: the client cancelled, its deadline passed
  // or its connection closed before gRPC had handed the whole answer to the
  // connection (one larger than the client's flow-control window, say). Work
  // done for nothing, which the handled count alone reports as a success.
  // Default: not counted.
  virtual void OnAnswerUndelivered() {}

  // The calls of the server's other services (health, reflection), which
  // CallInterceptor sees: full service name ("grpc.health.v1.Health") and
  // method ("Check"). Handled exactly once per started call. Default: not
  // counted.
  virtual void OnOtherCallStarted(std::string_view /*service*/,
                                  std::string_view /*method*/) {}
  virtual void OnOtherCallHandled(std::string_view /*service*/,
                                  std::string_view /*method*/,
                                  grpc::StatusCode /*code*/,
                                  absl::Duration /*elapsed*/) {}
};

// Per-tenant accounting (compute-server --tenant_metrics), told about every
// Run call that reached the scheduler, whose tenant is known: once per call
// (twice for a call displaced from the queue: its task's outcome,
// kPreempted, then its refusal with a zero cost, as the call observer counts
// it in both), on gRPC and worker threads, concurrently. `cost` is the
// call's estimated run time (TaskOptions::cost). Implementations must be
// thread-safe.
class TenantObserver {
 public:
  virtual ~TenantObserver() = default;
  // The pool completed the call's task (run_time: zero if it never ran).
  virtual void OnTenantTask(std::string_view tenant, TaskOutcome outcome,
                            absl::Duration cost, absl::Duration run_time) = 0;
  // The scheduler refused the call: at admission (any reason), or by
  // displacing it from the queue (after OnTenantTask, kPreempted).
  virtual void OnTenantRejected(std::string_view tenant,
                                absl::Duration cost) = 0;
};

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_CALL_OBSERVER_H_
