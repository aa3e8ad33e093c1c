// registry: the catalog of task kinds, keyed by RunRequest's `task` oneof.
//
// The service layer knows tasks only through this table: it validates a
// request before queueing it, runs it on a worker, and labels metrics with the
// kind's name and dense index. Each kind lives in its own file pair (kernel,
// validator, and the two adapters stored here), so adding a kind is one new
// file pair plus one line in registry.cc (and kNumTaskKinds, which a
// static_assert there keeps honest).
//
// Thread-safety: the table is immutable (constant-initialized); every function
// here may be called from any thread. A TaskKind's `run` is as thread-safe as
// its kernel, and every kernel is pure.
#ifndef COMPUTE_SERVER_TASKS_REGISTRY_H_
#define COMPUTE_SERVER_TASKS_REGISTRY_H_

#include <string_view>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"

namespace compute::tasks {

struct TaskKind {
  // Dense, 0 .. kNumTaskKinds - 1, in registration order: an array index for
  // per-kind metrics.
  int index;
  // Lower-case, as in the proto oneof ("fib", "spin", ...): a metric label.
  std::string_view name;
  compute::v1::RunRequest::TaskCase task_case;
  // OK, or InvalidArgumentError naming the field and the limit.
  absl::Status (*validate)(const compute::v1::RunRequest& request);
  // Runs the task and sets the matching `result` oneof of *response (only the
  // result: the caller fills queue_time, run_time and worker). Validates
  // again first. CancelledError once `cancel` reports a stop.
  absl::Status (*run)(const compute::v1::RunRequest& request,
                      const CancelToken& cancel,
                      compute::v1::RunResponse* response);
};

inline constexpr int kNumTaskKinds = 5;

// Every kind, ordered by index (AllTaskKinds()[i].index == i).
absl::Span<const TaskKind> AllTaskKinds();

// The kind for `task_case`, or nullptr (TASK_NOT_SET, or a case this build
// does not know).
const TaskKind* FindTaskKind(compute::v1::RunRequest::TaskCase task_case);

// OK if the request names a known task whose inputs are within their limits;
// otherwise InvalidArgumentError saying what is wrong.
[[nodiscard]] absl::Status ValidateRequest(
    const compute::v1::RunRequest& request);

// Validates and runs the request's task, filling its result in *response.
[[nodiscard]] absl::Status RunTask(const compute::v1::RunRequest& request,
                                   const CancelToken& cancel,
                                   compute::v1::RunResponse* response);

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_REGISTRY_H_
