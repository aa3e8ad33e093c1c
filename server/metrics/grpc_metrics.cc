#include "server/metrics/grpc_metrics.h"

#include <utility>

#include "server/metrics/families.h"

namespace compute::metrics {
namespace {

using prometheus::MetricType;

constexpr size_t kStarted = 0;
constexpr size_t kHandled = 1;  // + code
constexpr size_t kHandling = kHandled + kNumGrpcCodes;

}  // namespace

std::string_view GrpcCodeName(grpc::StatusCode code) {
  static constexpr std::string_view kNames[kNumGrpcCodes] = {
      "OK",
      "Canceled",
      "Unknown",
      "InvalidArgument",
      "DeadlineExceeded",
      "NotFound",
      "AlreadyExists",
      "PermissionDenied",
      "ResourceExhausted",
      "FailedPrecondition",
      "Aborted",
      "OutOfRange",
      "Unimplemented",
      "Internal",
      "Unavailable",
      "DataLoss",
      "Unauthenticated",
  };
  int i = static_cast<int>(code);
  return i >= 0 && i < kNumGrpcCodes ? kNames[i] : kNames[2];
}

std::vector<GrpcMethod> StandardServiceMethods() {
  return {
      {"grpc.health.v1.Health", "Check", "unary"},
      {"grpc.health.v1.Health", "Watch", "server_stream"},
      {"grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo",
       "bidi_stream"},
  };
}

namespace {

std::vector<GrpcMethod> AllMethods(const std::string& service,
                                   std::vector<std::string> methods,
                                   std::vector<GrpcMethod> others) {
  std::vector<GrpcMethod> all;
  for (std::string& m : methods) {
    all.push_back({service, std::move(m), "unary"});
  }
  for (GrpcMethod& m : others) all.push_back(std::move(m));
  return all;
}

}  // namespace

GrpcMetrics::GrpcMetrics(std::string service, std::vector<std::string> methods,
                         std::vector<GrpcMethod> others)
    : service_(std::move(service)),
      methods_(AllMethods(service_, std::move(methods), std::move(others))),
      histogram_(DurationHistogram::Latency()),
      per_method_(kHandling + histogram_.slots()),
      rejected_base_(methods_.size() * per_method_),
      priority_rejected_base_(rejected_base_ + service::kNumRejectReasons),
      refusal_base_(priority_rejected_base_ +
                    kNumPriorities * service::kNumRejectReasons),
      undelivered_(refusal_base_ + histogram_.slots()),
      counters_(undelivered_ + 1) {}

size_t GrpcMetrics::Find(std::string_view service,
                         std::string_view method) const {
  // Names are a few bytes: an inline compare beats a call to memcmp.
  auto equal = [](const std::string& name, std::string_view text) {
    if (name.size() != text.size()) return false;
    for (size_t i = 0; i < name.size(); ++i) {
      if (name[i] != text[i]) return false;
    }
    return true;
  };
  size_t i = 0;
  while (i < methods_.size() && !(equal(methods_[i].method, method) &&
                                  equal(methods_[i].service, service))) {
    ++i;
  }
  return i;
}

void GrpcMetrics::OnCallStarted(std::string_view method) {
  Started(Find(service_, method));
}

void GrpcMetrics::OnCallHandled(std::string_view method, grpc::StatusCode code,
                                absl::Duration elapsed) {
  Handled(Find(service_, method), code, elapsed);
}

void GrpcMetrics::OnOtherCallStarted(std::string_view service,
                                     std::string_view method) {
  Started(Find(service, method));
}

void GrpcMetrics::OnOtherCallHandled(std::string_view service,
                                     std::string_view method,
                                     grpc::StatusCode code,
                                     absl::Duration elapsed) {
  Handled(Find(service, method), code, elapsed);
}

void GrpcMetrics::Started(size_t m) {
  if (m == methods_.size()) return;
  counters_.Add(MethodBase(m) + kStarted);
}

void GrpcMetrics::Handled(size_t m, grpc::StatusCode code,
                          absl::Duration elapsed) {
  if (m == methods_.size()) return;
  int c = static_cast<int>(code);
  if (c < 0 || c >= kNumGrpcCodes) c = grpc::StatusCode::UNKNOWN;
  ShardedCounters::Stripe& stripe = counters_.Local();
  stripe.Add(MethodBase(m) + kHandled + static_cast<size_t>(c));
  histogram_.Observe(stripe, MethodBase(m) + kHandling, elapsed);
}

void GrpcMetrics::OnRejected(service::RejectReason reason, Priority priority) {
  int r = static_cast<int>(reason);
  int p = static_cast<int>(priority);
  if (r < 0 || r >= service::kNumRejectReasons || p < 0 ||
      p >= kNumPriorities) {
    return;
  }
  ShardedCounters::Stripe& stripe = counters_.Local();
  stripe.Add(rejected_base_ + static_cast<size_t>(r));
  stripe.Add(PriorityRejectedIndex(priority, reason));
}

void GrpcMetrics::OnRefusalAnswered(absl::Duration elapsed) {
  histogram_.Observe(counters_.Local(), refusal_base_, elapsed);
}

void GrpcMetrics::OnAnswerUndelivered() { counters_.Add(undelivered_); }

std::vector<prometheus::MetricFamily> GrpcMetrics::Collect() const {
  const std::vector<uint64_t> snapshot = counters_.Snapshot();
  auto started = MakeFamily("grpc_server_started_total",
                            "Total number of RPCs started on the server.",
                            MetricType::Counter);
  auto handled = MakeFamily(
      "grpc_server_handled_total",
      "Total number of RPCs completed on the server, regardless of success "
      "or failure.",
      MetricType::Counter);
  auto handling = MakeFamily(
      "grpc_server_handling_seconds",
      "Histogram of response latency (seconds) of gRPC that had been "
      "application-level handled by the server.",
      MetricType::Histogram);
  for (size_t m = 0; m < methods_.size(); ++m) {
    const size_t base = MethodBase(m);
    LabelList labels = {{"grpc_method", methods_[m].method},
                        {"grpc_service", methods_[m].service},
                        {"grpc_type", methods_[m].type}};
    AddValue(started, labels, static_cast<double>(snapshot[base + kStarted]));
    for (int c = 0; c < kNumGrpcCodes; ++c) {
      LabelList with_code = labels;
      with_code.insert(
          with_code.begin(),
          {"grpc_code",
           std::string(GrpcCodeName(static_cast<grpc::StatusCode>(c)))});
      AddValue(handled, std::move(with_code),
               static_cast<double>(snapshot[base + kHandled + c]));
    }
    AddHistogram(handling, labels,
                 histogram_.ToHistogram(snapshot, base + kHandling));
  }

  auto rejected = MakeFamily(
      "compute_tasks_rejected_total",
      "Calls refused by the scheduler, or displaced from its queue, by "
      "reason: queue_full, memory, overload, deadline, tenant_share, shed, "
      "preempted (RESOURCE_EXHAUSTED), draining (UNAVAILABLE), "
      "expired_on_arrival (DEADLINE_EXCEEDED: the deadline had passed on "
      "arrival), invalid (INVALID_ARGUMENT).",
      MetricType::Counter);
  for (int r = 0; r < service::kNumRejectReasons; ++r) {
    AddValue(rejected,
             {{"reason", std::string(service::RejectReasonName(
                             static_cast<service::RejectReason>(r)))}},
             static_cast<double>(snapshot[rejected_base_ + r]));
  }

  auto by_priority = MakeFamily(
      "compute_priority_rejected_total",
      "compute_tasks_rejected_total by the call's priority class (critical, "
      "default, sheddable).",
      MetricType::Counter);
  for (int p = 0; p < kNumPriorities; ++p) {
    auto priority = static_cast<Priority>(p);
    for (int r = 0; r < service::kNumRejectReasons; ++r) {
      auto reason = static_cast<service::RejectReason>(r);
      AddValue(by_priority,
               {{"priority", std::string(PriorityName(priority))},
                {"reason", std::string(service::RejectReasonName(reason))}},
               static_cast<double>(
                   snapshot[PriorityRejectedIndex(priority, reason)]));
    }
  }

  auto refusal = MakeFamily(
      "compute_refusal_seconds",
      "Time from a call's arrival at the service to its refusal, for calls "
      "refused on arrival without queueing (RESOURCE_EXHAUSTED, "
      "UNAVAILABLE).",
      MetricType::Histogram);
  AddHistogram(refusal, {}, histogram_.ToHistogram(snapshot, refusal_base_));

  auto undelivered = MakeFamily(
      "compute_answers_undelivered_total",
      "Run calls answered OK (so counted in grpc_server_handled_total) whose "
      "answer was not out when the call ended: the client cancelled, its "
      "deadline passed or its connection closed before gRPC had handed the "
      "whole answer to the connection.",
      MetricType::Counter);
  AddValue(undelivered, {}, static_cast<double>(snapshot[undelivered_]));

  std::vector<prometheus::MetricFamily> families;
  families.push_back(std::move(started));
  families.push_back(std::move(handled));
  families.push_back(std::move(handling));
  families.push_back(std::move(rejected));
  families.push_back(std::move(by_priority));
  families.push_back(std::move(refusal));
  families.push_back(std::move(undelivered));
  return families;
}

}  // namespace compute::metrics
