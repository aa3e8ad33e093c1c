#include "server/service/compute_service.h"

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "server/pool/sync.h"
#include "server/tasks/registry.h"

namespace compute::service {
namespace {

constexpr std::string_view kRunMethod = "Run";

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

absl::Time DeadlineOf(const grpc::CallbackServerContext& context) {
  auto deadline = context.deadline();
  if (deadline == std::chrono::system_clock::time_point::max()) {
    return absl::InfiniteFuture();
  }
  return absl::FromChrono(deadline);
}

// Debian's abseil has its own string_view, which std::string_view does not
// convert to.
absl::string_view Sv(std::string_view s) { return {s.data(), s.size()}; }

std::string Ms(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d));
}

std::vector<double> CostPriors() {
  std::vector<double> priors;
  for (const tasks::TaskKind& kind : tasks::AllTaskKinds()) {
    priors.push_back(kind.default_seconds_per_unit);
  }
  return priors;
}

RejectReason RejectReasonFor(RefusalReason reason) {
  switch (reason) {
    case RefusalReason::kMemory:
      return RejectReason::kMemory;
    case RefusalReason::kOverload:
      return RejectReason::kOverload;
    case RefusalReason::kDeadline:
      return RejectReason::kDeadline;
    default:
      return RejectReason::kQueueFull;
  }
}

}  // namespace

std::string_view RejectReasonName(RejectReason reason) {
  switch (reason) {
    case RejectReason::kQueueFull:
      return "queue_full";
    case RejectReason::kMemory:
      return "memory";
    case RejectReason::kOverload:
      return "overload";
    case RejectReason::kDeadline:
      return "deadline";
    case RejectReason::kDraining:
      return "draining";
  }
  return "unknown";
}

// One Run call. Lives from Run until gRPC calls OnDone.
class RunCall final : public grpc::ServerUnaryReactor {
 public:
  RunCall(ComputeService& service, grpc::CallbackServerContext* context,
          const compute::v1::RunRequest* request,
          compute::v1::RunResponse* response)
      : service_(service),
        context_(context),
        request_(request),
        response_(response),
        started_(absl::Now()),
        deadline_(DeadlineOf(*context)) {}

  void Start();

  void OnCancel() override;
  void OnDone() override { delete this; }

 private:
  void Reply(const grpc::Status& status);
  void Refuse(RejectReason reason, grpc::StatusCode code,
              const std::string& message, absl::Duration pushback);
  void Complete(const TaskResult& result);

  ComputeService& service_;
  grpc::CallbackServerContext* const context_;
  const compute::v1::RunRequest* const request_;
  compute::v1::RunResponse* const response_;
  const absl::Time started_;
  const absl::Time deadline_;
  const tasks::TaskKind* kind_ = nullptr;
  double cost_units_ = 0;  // this request's size, for the cost model

  Mutex mu_;
  TaskHandle handle_ ABSL_GUARDED_BY(mu_);
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
};

void RunCall::Start() {
  if (CallObserver* o = service_.options_.observer)
    o->OnCallStarted(kRunMethod);
  if (service_.draining()) {
    Refuse(RejectReason::kDraining, grpc::StatusCode::UNAVAILABLE,
           "server is draining (shutting down); retry on another replica",
           absl::ZeroDuration());
    return;
  }
  if (absl::Status valid = tasks::ValidateRequest(*request_); !valid.ok()) {
    Reply(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       std::string(valid.message())));
    return;
  }
  kind_ = tasks::FindTaskKind(request_->task_case());
  cost_units_ = kind_->cost_units(*request_);

  WorkerPool& pool = service_.pool_;
  TaskOptions options;
  options.deadline = deadline_;
  options.tag = static_cast<uint32_t>(kind_->index);
  options.cost = service_.cost_model_.Estimate(kind_->index, cost_units_);
  options.bytes = static_cast<int64_t>(request_->ByteSizeLong()) +
                  kind_->response_bytes(*request_);
  options.admit_by_deadline = service_.options_.admission;
  if (int64_t limit = pool.max_inflight_bytes();
      limit > 0 && options.bytes > limit) {
    Reply(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("request too large for this server: it needs ",
                     options.bytes,
                     " bytes (request + response) but the "
                     "server holds at most ",
                     limit, " bytes of calls (--max_inflight_bytes)")));
    return;
  }

  const compute::v1::RunRequest* request = request_;
  compute::v1::RunResponse* response = response_;
  const tasks::TaskKind* kind = kind_;
  // The completion may finish the call on a worker before Submit returns;
  // gRPC keeps this reactor alive until Run has returned, so `this` is valid
  // for the rest of Start.
  TaskRunner run_task = service_.options_.run_task;
  SubmitRefusal refusal;
  auto handle = pool.Submit(
      [kind, request, response, run_task](const CancelToken& cancel) {
        return run_task != nullptr ? run_task(*kind, *request, cancel, response)
                                   : kind->run(*request, cancel, response);
      },
      [this](const TaskResult& result) { Complete(result); }, options,
      &refusal);
  if (!handle.ok()) {
    const absl::Status& s = handle.status();
    switch (refusal.reason) {
      case RefusalReason::kShutDown:
        Refuse(RejectReason::kDraining, grpc::StatusCode::UNAVAILABLE,
               "server is draining (shutting down); retry on another replica",
               absl::ZeroDuration());
        return;
      case RefusalReason::kExpired:
        Reply(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                           "deadline had passed when the call arrived"));
        return;
      case RefusalReason::kDeadline:
        Refuse(RejectReason::kDeadline, grpc::StatusCode::RESOURCE_EXHAUSTED,
               absl::StrCat(s.message(),
                            "; retry later or with a longer deadline"),
               refusal.retry_after);
        return;
      default:  // a budget: queue_full, memory, overload
        Refuse(RejectReasonFor(refusal.reason),
               grpc::StatusCode::RESOURCE_EXHAUSTED,
               absl::StrCat("server busy: ", s.message(), "; retry in ",
                            Ms(refusal.retry_after), " ms"),
               refusal.retry_after);
        return;
    }
  }
  bool cancel_now;
  {
    MutexLock lock(&mu_);
    handle_ = *handle;
    cancel_now = cancelled_;
  }
  if (cancel_now) pool.Cancel(*handle);
}

void RunCall::OnCancel() {
  // The client cancelled, or the deadline passed (gRPC calls this for
  // both); the pool decides which by its clock when the task completes.
  TaskHandle handle;
  {
    MutexLock lock(&mu_);
    cancelled_ = true;
    handle = handle_;
  }
  // No handle yet: Start cancels once it has one. Finished: a no-op.
  if (handle.valid()) service_.pool_.Cancel(handle);
}

void RunCall::Refuse(RejectReason reason, grpc::StatusCode code,
                     const std::string& message, absl::Duration pushback) {
  service_.CountRejected(reason);
  if (pushback > absl::ZeroDuration()) {
    context_->AddTrailingMetadata("grpc-retry-pushback-ms", Ms(pushback));
  }
  Reply(grpc::Status(code, message));
}

void RunCall::Complete(const TaskResult& result) {
  if (result.worker >= 0) {
    SetDuration(result.queue_wait, response_->mutable_queue_time());
    SetDuration(result.run_time, response_->mutable_run_time());
    response_->set_worker(static_cast<uint32_t>(result.worker));
  }
  if ((result.outcome == TaskOutcome::kCancelled ||
       result.outcome == TaskOutcome::kDeadlineExceeded) &&
      result.worker >= 0) {
    // Stopped after running a while: it costs at least that.
    service_.cost_model_.Record(kind_->index, cost_units_, result.run_time,
                                /*lower_bound=*/true);
  }
  switch (result.outcome) {
    case TaskOutcome::kOk:
      service_.cost_model_.Record(kind_->index, cost_units_, result.run_time);
      Reply(grpc::Status::OK);
      return;
    case TaskOutcome::kCancelled:
      Reply(grpc::Status(grpc::StatusCode::CANCELLED,
                         "call cancelled by the client"));
      return;
    case TaskOutcome::kDeadlineExceeded:
      Reply(grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          result.worker < 0
              ? absl::StrCat("deadline exceeded after ", Ms(result.queue_wait),
                             " ms in the queue; the task never ran")
              : absl::StrCat("deadline exceeded after ", Ms(result.run_time),
                             " ms of running; the task was stopped")));
      return;
    case TaskOutcome::kFailed:
      Reply(grpc::Status(grpc::StatusCode::INTERNAL,
                         absl::StrCat(Sv(kind_->name), " task failed: ",
                                      result.status.message())));
      return;
    case TaskOutcome::kShutDown:
      Reply(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                         "server shut down before the task could finish; "
                         "retry on another replica"));
      return;
  }
}

void RunCall::Reply(const grpc::Status& status) {
  if (CallObserver* o = service_.options_.observer) {
    o->OnCallHandled(kRunMethod, status.error_code(), absl::Now() - started_);
  }
  Finish(status);
}

ComputeService::ComputeService(WorkerPool& pool, ComputeServiceOptions options)
    : pool_(pool), options_(options), cost_model_(CostPriors()) {}

grpc::ServerUnaryReactor* ComputeService::Run(
    grpc::CallbackServerContext* context,
    const compute::v1::RunRequest* request,
    compute::v1::RunResponse* response) {
  auto* call = new RunCall(*this, context, request, response);
  call->Start();
  return call;
}

void ComputeService::CountRejected(RejectReason reason) {
  rejected_[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  if (options_.observer != nullptr) options_.observer->OnRejected(reason);
}

}  // namespace compute::service
