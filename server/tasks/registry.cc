// registry: a constexpr array, so that the table is built at compile time (no
// static-initialization order issues), and a linear lookup, which for a
// handful of kinds is as fast as any map.
#include "server/tasks/registry.h"

#include <cstddef>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "server/tasks/blur.h"
#include "server/tasks/fib.h"
#include "server/tasks/primes.h"
#include "server/tasks/sha256.h"
#include "server/tasks/spin.h"

namespace compute::tasks {
namespace {

using compute::v1::RunRequest;

// Registration: one line per kind; the index is the position.
constexpr TaskKind kTaskKinds[] = {
    {0, "fib", RunRequest::kFib, &ValidateFibTask, &RunFibTask},
    {1, "spin", RunRequest::kSpin, &ValidateSpinTask, &RunSpinTask},
    {2, "sha256", RunRequest::kSha256, &ValidateSha256Task, &RunSha256Task},
    {3, "primes", RunRequest::kPrimes, &ValidatePrimesTask, &RunPrimesTask},
    {4, "blur", RunRequest::kBlur, &ValidateBlurTask, &RunBlurTask},
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

absl::Status TaskNotSetError() {
  return absl::InvalidArgumentError(absl::StrCat(
      "task must be set: one of ",
      absl::StrJoin(kTaskKinds, ", ", [](std::string* out, const TaskKind& k) {
        out->append(k.name);
      })));
}

}  // namespace

absl::Span<const TaskKind> AllTaskKinds() { return kTaskKinds; }

const TaskKind* FindTaskKind(RunRequest::TaskCase task_case) {
  for (const TaskKind& kind : kTaskKinds) {
    if (kind.task_case == task_case) return &kind;
  }
  return nullptr;
}

absl::Status ValidateRequest(const RunRequest& request) {
  const TaskKind* kind = FindTaskKind(request.task_case());
  if (kind == nullptr) return TaskNotSetError();
  return kind->validate(request);
}

absl::Status RunTask(const RunRequest& request, const CancelToken& cancel,
                     compute::v1::RunResponse* response) {
  const TaskKind* kind = FindTaskKind(request.task_case());
  if (kind == nullptr) return TaskNotSetError();
  return kind->run(request, cancel, response);
}

}  // namespace compute::tasks
