// registry: a constexpr array, so that the table is built at compile time (no
// static-initialization order issues), and a linear lookup, which for a
// handful of kinds is as fast as any map.
#include "server/tasks/registry.h"

#include <cstddef>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/unknown_field_set.h"
#include "server/tasks/blur.h"
#include "server/tasks/fib.h"
#include "server/tasks/primes.h"
#include "server/tasks/sha256.h"
#include "server/tasks/sleep.h"
#include "server/tasks/spin.h"

namespace compute::tasks {
namespace {

using compute::v1::RunRequest;

// Seconds per cost unit, the cost model's priors: measured on the
// development machine (Xeon with SHA extensions, 2 vCPUs; RelWithDebInfo
// build) by timing each kernel directly, best of several runs, at 5 to 37
// sizes, then fitting seconds = units x this by least squares on relative
// error. Each line says how well the fit predicts the measured times; the
// kinds' headers explain their units.
// fib, n = 25..40: measured/predicted 0.99-1.01 (n = 0..20: 0.68-0.87).
constexpr double kFibSecondsPerUnit = 4.7e-10;
// spin, 1 ms to 0.5 s: the unit is a second; measured 1.000001.
constexpr double kSpinSecondsPerUnit = 1.0;
// sha256, 0 B to 4 MiB x 1 to 1e6 rounds: 0.96-1.05.
constexpr double kSha256SecondsPerUnit = 4.9e-10;
// primes (the pre-sieved kernel; kernel_bench's medians), limit 1e6: 0.92,
// 1e8: 0.98, 2e9: 0.97. The sieve before it: 3.4e-11.
constexpr double kPrimesSecondsPerUnit = 2.6e-11;
// blur (the fused kernel; kernel_bench's medians, radius 1 to 64): 256x256
// to 2048x2048 and 1920x1080 0.92-1.05, 65536x16 1.00, 4096x4096 1.15-1.20,
// narrow images 2.2-3.1 when their units were their pixels, 1.1-1.6 in the
// units that count the transpose and the rows (blur.h); radius 0: 0.5-1.1.
// The kernel before it: 2.4e-9.
constexpr double kBlurSecondsPerUnit = 0.5e-9;
// sleep: the unit is a second, as spin's (the 1 ms slices overshoot by the
// timer's slack, tens of microseconds).
constexpr double kSleepSecondsPerUnit = 1.0;

// working_bytes of the kinds whose kernels allocate nothing that grows with
// the request.
int64_t NoWorkingBytes(const compute::v1::RunRequest& /*request*/,
                       Payload /*payload*/) {
  return 0;
}

// Registration: one line per kind; the index is the position.
constexpr TaskKind kTaskKinds[] = {
    {0, "fib", RunRequest::kFib, &ValidateFibTask, &RunFibTask, &FibCostUnits,
     kFibSecondsPerUnit, &FibResponseBytes, &NoWorkingBytes, ""},
    {1, "spin", RunRequest::kSpin, &ValidateSpinTask, &RunSpinTask,
     &SpinCostUnits, kSpinSecondsPerUnit, &SpinResponseBytes, &NoWorkingBytes,
     ""},
    {2, "sha256", RunRequest::kSha256, &ValidateSha256Task, &RunSha256Task,
     &Sha256CostUnits, kSha256SecondsPerUnit, &Sha256ResponseBytes,
     &NoWorkingBytes, "sha256.data"},
    {3, "primes", RunRequest::kPrimes, &ValidatePrimesTask, &RunPrimesTask,
     &PrimesCostUnits, kPrimesSecondsPerUnit, &PrimesResponseBytes,
     &NoWorkingBytes, ""},
    {4, "blur", RunRequest::kBlur, &ValidateBlurTask, &RunBlurTask,
     &BlurCostUnits, kBlurSecondsPerUnit, &BlurResponseBytes, &BlurWorkingBytes,
     "blur.pixels"},
    {5, "sleep", RunRequest::kSleep, &ValidateSleepTask, &RunSleepTask,
     &SleepCostUnits, kSleepSecondsPerUnit, &SleepResponseBytes,
     &NoWorkingBytes, ""},
};

static_assert(std::size(kTaskKinds) == kNumTaskKinds,
              "update kNumTaskKinds in registry.h");

constexpr bool IndicesAreDense() {
  for (size_t i = 0; i < std::size(kTaskKinds); ++i) {
    if (kTaskKinds[i].index != static_cast<int>(i)) return false;
  }
  return true;
}
static_assert(IndicesAreDense(), "kTaskKinds[i].index must be i");

// A prior <= 0 would predict free (or negative) run times. (A missing
// cost_units or response_bytes adapter is caught by registry_test: GCC
// does not treat a function pointer's comparison with nullptr as a
// constant under ASan.)
constexpr bool PriorsArePositive() {
  for (const TaskKind& kind : kTaskKinds) {
    if (!(kind.default_seconds_per_unit > 0)) return false;
  }
  return true;
}
static_assert(PriorsArePositive(), "every kind needs a prior > 0");

// No task this server knows. A task field that compute.v1 does not declare
// (a client built from a newer API) is named as such, not as no task.
absl::Status TaskNotSetError(const RunRequest& request) {
  const std::string known = absl::StrJoin(
      kTaskKinds, ", ",
      [](std::string* out, const TaskKind& k) { out->append(k.name); });
  const google::protobuf::UnknownFieldSet& unknown =
      request.GetReflection()->GetUnknownFields(request);
  for (int i = 0; i < unknown.field_count(); ++i) {
    if (unknown.field(i).type() ==
        google::protobuf::UnknownField::TYPE_LENGTH_DELIMITED) {
      return absl::InvalidArgumentError(absl::StrCat(
          "task: field ", unknown.field(i).number(),
          " is not a task this server knows (a client of a newer API?): one "
          "of ",
          known));
    }
  }
  return absl::InvalidArgumentError(
      absl::StrCat("task must be set: one of ", known));
}

}  // namespace

absl::Span<const TaskKind> AllTaskKinds() { return kTaskKinds; }

const TaskKind* FindTaskKind(RunRequest::TaskCase task_case) {
  for (const TaskKind& kind : kTaskKinds) {
    if (kind.task_case == task_case) return &kind;
  }
  return nullptr;
}

absl::Status ValidateRequest(const RunRequest& request, Payload payload) {
  const TaskKind* kind = FindTaskKind(request.task_case());
  if (kind == nullptr) return TaskNotSetError(request);
  return kind->validate(request, payload);
}

absl::Status RunTask(const RunRequest& request, Payload payload,
                     const CancelToken& cancel,
                     compute::v1::RunResponse* response) {
  const TaskKind* kind = FindTaskKind(request.task_case());
  if (kind == nullptr) return TaskNotSetError(request);
  return kind->run(request, payload, cancel, response);
}

}  // namespace compute::tasks
