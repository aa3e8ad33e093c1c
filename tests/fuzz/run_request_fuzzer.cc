// Fuzzes what a request's bytes go through in the tasks layer: protobuf
// parse -> ValidateRequest -> the kind's cost units and response size (what
// admission charges) -> RunTask.
//
// Properties checked (abort() is the finding):
//   - an invalid request is INVALID_ARGUMENT with a message, and RunTask
//     refuses it too without producing a result;
//   - a valid request has finite cost units > 0 and response bytes >= 0,
//     and its result fits the response bytes it was charged (plus framing);
//   - a valid task either completes OK with the matching result, or, when
//     it was told to stop, stops: CANCELLED (or OK) within a bound.
// Small limits: a task whose prior estimate is over kMaxRunSeconds is run
// with its stop already requested, as a passed deadline would leave it, so
// an input costs milliseconds and a kernel that ignores its token is found
// (it would run for seconds to minutes). Allocation beyond the limits is
// left to libFuzzer's -malloc_limit_mb (run.sh).
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "compute/v1/compute.pb.h"
#include "server/pool/cancel_token.h"
#include "server/tasks/registry.h"

namespace {

using compute::CancelSource;
using compute::CancelToken;
using compute::v1::RunRequest;
using compute::v1::RunResponse;

constexpr double kMaxRunSeconds = 0.002;
// Generous: a kernel checks its token every few milliseconds at most; this
// bound only catches one that does not check it at all.
constexpr absl::Duration kStoppedTaskLimit = absl::Seconds(2);
// response_bytes counts the payload; the protobuf encoding adds a tag and a
// length per field, a few bytes per message.
constexpr int64_t kFramingBytes = 16;

[[noreturn]] void Fail(const char* what, const RunRequest& request,
                       const absl::Status& status = absl::OkStatus()) {
  std::fprintf(
      stderr, "run_request_fuzzer: %s\n  request: %.500s\n  status: %s\n", what,
      request.ShortDebugString().c_str(), status.ToString().c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  RunRequest request;
  if (!request.ParseFromArray(data, static_cast<int>(size))) return 0;
  RunResponse response;
  absl::Status valid = compute::tasks::ValidateRequest(request);
  if (!valid.ok()) {
    if (valid.code() != absl::StatusCode::kInvalidArgument ||
        valid.message().empty()) {
      Fail("validation error is not INVALID_ARGUMENT with a message", request,
           valid);
    }
    absl::Status run =
        compute::tasks::RunTask(request, CancelToken(), &response);
    if (run.code() != absl::StatusCode::kInvalidArgument ||
        response.result_case() != RunResponse::RESULT_NOT_SET) {
      Fail("RunTask ran an invalid request", request, run);
    }
    return 0;
  }

  const compute::tasks::TaskKind* kind =
      compute::tasks::FindTaskKind(request.task_case());
  if (kind == nullptr) Fail("valid request of no known kind", request);
  const double units = kind->cost_units(request);
  if (!std::isfinite(units) || !(units > 0)) {
    Fail("cost units are not finite and > 0", request);
  }
  const int64_t response_bytes = kind->response_bytes(request);
  if (response_bytes < 0) Fail("negative response bytes", request);

  CancelSource stop;
  const bool stopped = units * kind->default_seconds_per_unit > kMaxRunSeconds;
  if (stopped) stop.request_stop();
  const absl::Time start = absl::Now();
  absl::Status run = compute::tasks::RunTask(request, stop.token(), &response);
  const absl::Duration took = absl::Now() - start;
  if (stopped) {
    if (took > kStoppedTaskLimit) Fail("a stopped task ran on", request, run);
    if (!run.ok() && run.code() != absl::StatusCode::kCancelled) {
      Fail("a stopped task ended other than CANCELLED or OK", request, run);
    }
  } else if (!run.ok()) {
    Fail("a valid task failed", request, run);
  }
  if (!run.ok()) return 0;
  if (static_cast<int>(response.result_case()) !=
      static_cast<int>(request.task_case())) {
    Fail("the result is not the request's kind", request);
  }
  if (static_cast<int64_t>(response.ByteSizeLong()) >
      response_bytes + kFramingBytes) {
    Fail("the result is larger than the bytes admission charged", request);
  }
  return 0;
}
