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
#include "server/tasks/payload.h"

namespace compute::tasks {

struct TaskKind {
  // Dense, 0 .. kNumTaskKinds - 1, in registration order: an array index for
  // per-kind metrics.
  int index;
  // Lower-case, as in the proto oneof ("fib", "spin", ...): a metric label.
  std::string_view name;
  compute::v1::RunRequest::TaskCase task_case;
  // OK, or InvalidArgumentError naming the field and the limit. `payload`
  // (payload.h): the request's large bytes field when it was received
  // outside the request (blur's pixels); empty otherwise.
  absl::Status (*validate)(const compute::v1::RunRequest& request,
                           Payload payload);
  // Runs the task and sets the matching `result` oneof of *response (only the
  // result: the caller fills queue_time, run_time and worker). Validates
  // again first. CancelledError once `cancel` reports a stop.
  absl::Status (*run)(const compute::v1::RunRequest& request, Payload payload,
                      const CancelToken& cancel,
                      compute::v1::RunResponse* response);
  // The request's size in this kind's cost unit, for the scheduler's cost
  // model: run time ~= units x seconds per unit. Always > 0, and never less
  // for a larger request. Requires a valid request. spin, sleep: seconds
  // of a worker's time; fib: phi^n; primes: limit x ln(limit) (the sieve is
  // slightly superlinear); sha256: bytes + 576 x rounds (the data is hashed
  // once, and each round's fixed cost is worth ~576 bytes); blur: pixels (the
  // radius matters only at 0, a copy). Each kind's header gives the exact
  // formula, its constant term, and the measurements behind it.
  double (*cost_units)(const compute::v1::RunRequest& request);
  // Seconds per cost unit before any task of this kind has finished: a
  // prior measured on the development machine (release build), which the
  // cost model then replaces with what it learns.
  double default_seconds_per_unit;
  // Bytes the response's payload will hold (blur: its pixels plus a 32-byte
  // header; sha256: the digest and its hex, 96; the others 16), for the
  // scheduler's memory budget. Requires a valid request.
  int64_t (*response_bytes)(const compute::v1::RunRequest& request);
  // Bytes the kernel allocates in proportion to the request while it runs,
  // besides its response (blur: a transposed copy, or the rows straddling
  // the payload's pieces; the others 0), for the memory budget too.
  // Requires a valid request.
  int64_t (*working_bytes)(const compute::v1::RunRequest& request,
                           Payload payload);
  // The request's field that grows with it ("blur.pixels"), named when a
  // request is too large for the server; "" for kinds whose requests are
  // a few numbers.
  std::string_view large_field;
};

inline constexpr int kNumTaskKinds = 6;

// Every kind, ordered by index (AllTaskKinds()[i].index == i).
absl::Span<const TaskKind> AllTaskKinds();

// The kind for `task_case`, or nullptr (TASK_NOT_SET, or a case this build
// does not know).
const TaskKind* FindTaskKind(compute::v1::RunRequest::TaskCase task_case);

// OK if the request names a known task whose inputs (`payload` included)
// are within their limits; otherwise InvalidArgumentError saying what is
// wrong.
[[nodiscard]] absl::Status ValidateRequest(
    const compute::v1::RunRequest& request, Payload payload = {});

// Validates and runs the request's task, filling its result in *response.
[[nodiscard]] absl::Status RunTask(const compute::v1::RunRequest& request,
                                   Payload payload, const CancelToken& cancel,
                                   compute::v1::RunResponse* response);
[[nodiscard]] inline absl::Status RunTask(
    const compute::v1::RunRequest& request, const CancelToken& cancel,
    compute::v1::RunResponse* response) {
  return RunTask(request, Payload(), cancel, response);
}

}  // namespace compute::tasks

#endif  // COMPUTE_SERVER_TASKS_REGISTRY_H_
