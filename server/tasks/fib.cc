// fib: naive recursion; the token is polled only above kPlainBelow so that the
// exponential leaves run as tight as a textbook fib, and the work between two
// polls stays bounded by fib-calls(kPlainBelow) (about 250k calls, < 1 ms).
#include "server/tasks/fib.h"

#include <cmath>
#include <numbers>

#include "absl/strings/str_cat.h"

namespace compute::tasks {
namespace {

// At or below this n the recursion does not poll the token.
constexpr uint32_t kPlainBelow = 25;

uint64_t FibPlain(uint32_t n) {
  return n < 2 ? n : FibPlain(n - 1) + FibPlain(n - 2);
}

// Returns false (leaving *out unspecified) when a stop was requested.
bool FibCancellable(uint32_t n, const CancelToken& cancel, uint64_t* out) {
  if (n <= kPlainBelow) {
    *out = FibPlain(n);
    return true;
  }
  if (cancel.stop_requested()) return false;
  uint64_t a = 0;
  uint64_t b = 0;
  if (!FibCancellable(n - 1, cancel, &a) ||
      !FibCancellable(n - 2, cancel, &b)) {
    return false;
  }
  *out = a + b;
  return true;
}

}  // namespace

absl::Status ValidateFib(const compute::v1::FibRequest& request) {
  if (request.n() > kMaxFibN) {
    return absl::InvalidArgumentError(absl::StrCat(
        "fib.n must be <= ", kMaxFibN, " (got ", request.n(), ")"));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> Fib(uint32_t n, const CancelToken& cancel) {
  uint64_t value = 0;
  if (!FibCancellable(n, cancel, &value)) {
    return absl::CancelledError(absl::StrCat("fib(", n, ") stopped"));
  }
  return value;
}

absl::Status ValidateFibTask(const compute::v1::RunRequest& request,
                             Payload /*payload*/) {
  return ValidateFib(request.fib());
}

absl::Status RunFibTask(const compute::v1::RunRequest& request,
                        Payload /*payload*/, const CancelToken& cancel,
                        compute::v1::RunResponse* response) {
  // Re-validated so that no caller can drive the kernel past its limits.
  if (absl::Status status = ValidateFib(request.fib()); !status.ok()) {
    return status;
  }
  absl::StatusOr<uint64_t> value = Fib(request.fib().n(), cancel);
  if (!value.ok()) return value.status();
  response->mutable_fib()->set_value(*value);
  return absl::OkStatus();
}

double FibCostUnits(const compute::v1::RunRequest& request) {
  return std::pow(std::numbers::phi, request.fib().n()) + kFibFixedCostUnits;
}

int64_t FibResponseBytes(const compute::v1::RunRequest& /*request*/) {
  return kFibResponseBytes;
}

}  // namespace compute::tasks
