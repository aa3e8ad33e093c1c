#include "server/pool/task_types.h"

namespace compute {

std::string_view TaskOutcomeName(TaskOutcome outcome) {
  switch (outcome) {
    case TaskOutcome::kOk:
      return "ok";
    case TaskOutcome::kCancelled:
      return "cancelled";
    case TaskOutcome::kDeadlineExceeded:
      return "deadline_exceeded";
    case TaskOutcome::kFailed:
      return "failed";
    case TaskOutcome::kShutDown:
      return "shut_down";
    case TaskOutcome::kPreempted:
      return "preempted";
  }
  return "unknown";
}

std::string_view RefusalReasonName(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::kQueueFull:
      return "queue_full";
    case RefusalReason::kMemory:
      return "memory";
    case RefusalReason::kOverload:
      return "overload";
    case RefusalReason::kDeadline:
      return "deadline";
    case RefusalReason::kExpired:
      return "expired";
    case RefusalReason::kShutDown:
      return "shut_down";
    case RefusalReason::kTenantShare:
      return "tenant_share";
    case RefusalReason::kShed:
      return "shed";
    case RefusalReason::kPreempted:
      return "preempted";
  }
  return "unknown";
}

absl::Status OutcomeStatus(TaskOutcome outcome) {
  switch (outcome) {
    case TaskOutcome::kCancelled:
      return absl::CancelledError("task cancelled");
    case TaskOutcome::kDeadlineExceeded:
      return absl::DeadlineExceededError("task deadline exceeded");
    case TaskOutcome::kShutDown:
      return absl::UnavailableError("worker pool shut down");
    case TaskOutcome::kPreempted:
      return absl::ResourceExhaustedError("displaced from the queue");
    default:
      return absl::OkStatus();
  }
}

}  // namespace compute
