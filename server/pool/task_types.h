// The vocabulary of WorkerPool (worker_pool.h): what a task is given
// (TaskFn, TaskOptions), how it ends (TaskOutcome, TaskResult, DoneFn) and
// why a task is refused (RefusalReason, SubmitRefusal). Plain types, shared
// by the pool, its admission policy (admission.h) and the service.
#ifndef COMPUTE_SERVER_POOL_TASK_TYPES_H_
#define COMPUTE_SERVER_POOL_TASK_TYPES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/pool/cancel_token.h"
#include "server/pool/fair_queue.h"

namespace compute {

enum class TaskOutcome : int {
  kOk = 0,
  kCancelled,
  kDeadlineExceeded,
  kFailed,
  kShutDown,
  kPreempted,  // displaced from the queue to make room (never ran)
};
inline constexpr int kNumTaskOutcomes = 6;

// "ok", "cancelled", "deadline_exceeded", "failed", "shut_down",
// "preempted".
std::string_view TaskOutcomeName(TaskOutcome outcome);

// Why Submit refused a task.
enum class RefusalReason : int {
  kQueueFull = 0,  // the count budget
  kMemory,         // the bytes budget
  kOverload,       // standing queue: expected wait over the target
  kDeadline,       // cannot finish before its deadline
  kExpired,        // its deadline had already passed
  kShutDown,       // the pool is shutting down
  kTenantShare,    // a budget is spent and this tenant holds over its share
  kShed,           // sheddable work, expected wait over half the target
  kPreempted,      // (TaskResult::displaced_for only) for a higher class
};
inline constexpr int kNumRefusalReasons = 9;

// "queue_full", "memory", "overload", "deadline", "expired", "shut_down",
// "tenant_share", "shed", "preempted".
std::string_view RefusalReasonName(RefusalReason reason);

// What Submit says about a refusal, beside its status.
struct SubmitRefusal {
  RefusalReason reason = RefusalReason::kQueueFull;
  // The wait the task would have had (zero when a worker was free).
  absl::Duration expected_wait;
  // When a retry may succeed: for a budget refusal, the expected wait,
  // clamped to [1 ms, 10 s]; zero for kExpired and kShutDown.
  absl::Duration retry_after;
  // kDeadline only: the task's own estimated cost alone is longer than its
  // deadline allows, so no wait, here or elsewhere, makes it fit.
  bool own_cost = false;
};

struct TaskResult {
  TaskOutcome outcome = TaskOutcome::kOk;
  // OK for kOk; otherwise the error (for kFailed, the task's own error or
  // exception message).
  absl::Status status;
  absl::Duration queue_wait;  // submitted -> started (or -> completed)
  absl::Duration run_time;    // zero when it never ran
  // Index of the worker that ran it, or -1 when it never ran, or
  // max_workers when it ran on the caller's thread (RunInlineIfFree).
  int worker = -1;
  uint32_t tag = 0;                        // TaskOptions::tag
  Priority priority = Priority::kDefault;  // TaskOptions::priority
  // For kPreempted: why it was displaced (kPreempted: for more critical
  // work; kTenantShare: for a tenant under its fair share).
  RefusalReason displaced_for = RefusalReason::kPreempted;
};

using TaskFn = absl::AnyInvocable<absl::Status(const CancelToken&)>;
using DoneFn = absl::AnyInvocable<void(const TaskResult&)>;

// What the pool counts of one task at most: its sums of cost (ns) and bytes
// stay within int64 for the largest queue the server takes (2^20 tasks plus
// 4,096 workers: 2^21 x 1 h is 7.6e18 ns, 2^21 x 1 TiB is 2^61 bytes).
inline constexpr absl::Duration kMaxTaskCost = absl::Hours(1);
inline constexpr int64_t kMaxTaskBytes = int64_t{1} << 40;
// The weights the pool counts (--tenant_weights' range); one outside them
// counts as the nearest, one that is not a number > 0 as 1.
inline constexpr double kMinTaskWeight = 0.001;
inline constexpr double kMaxTaskWeight = 1000;

struct TaskOptions {
  absl::Time deadline = absl::InfiniteFuture();
  // Opaque to the pool; handed back in TaskResult (the service puts the task
  // kind here so observers can label by it).
  uint32_t tag = 0;
  // Estimated run time (>= 0): what this task adds to the expected wait of
  // the tasks behind it, and what the deadline budget charges it. The pool
  // counts it within [0, kMaxTaskCost].
  absl::Duration cost = absl::ZeroDuration();
  // Bytes the task holds while queued or running (request and response),
  // charged to max_inflight_bytes until it completes. >= 0; the pool counts
  // it within [0, kMaxTaskBytes].
  int64_t bytes = 0;
  // Refuse (kDeadline) a task that cannot finish before its deadline.
  bool admit_by_deadline = true;
  // Who the task is for, its class, and the tenant's weight (> 0, counted
  // within [kMinTaskWeight, kMaxTaskWeight]): the queue is fair by cost
  // across tenants within a class (fair_queue.h).
  std::string tenant;
  Priority priority = Priority::kDefault;
  double weight = 1;
};

// Receives every finished task, on the completing thread, just before its
// DoneFn. Must be thread-safe and cheap: it runs on the hot path.
class PoolObserver {
 public:
  virtual ~PoolObserver() = default;
  virtual void OnTaskFinished(const TaskResult& result) = 0;
};

// The status a task that ended with `outcome` completes with, when the task
// itself gave none (cancelled, deadline exceeded, shut down, preempted); OK
// for kOk and kFailed.
absl::Status OutcomeStatus(TaskOutcome outcome);

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_TASK_TYPES_H_
