#include "server/service/compute_service.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "grpc/support/time.h"
#include "server/base/string_view.h"
#include "server/pool/sync.h"
#include "server/tasks/registry.h"

namespace compute::service {
namespace {

constexpr std::string_view kRunMethod = "Run";
constexpr char kTenantHeader[] = "compute-tenant";

void SetDuration(absl::Duration d, google::protobuf::Duration* out) {
  int64_t ns = absl::ToInt64Nanoseconds(d);
  out->set_seconds(ns / 1000000000);
  out->set_nanos(static_cast<int32_t>(ns % 1000000000));
}

// The call's deadline in the pool's time (clock.h). gRPC keeps it on its
// monotonic clock (raw_deadline): what is left of it is carried over, not
// the wall-clock time that deadline() would make of it, which a step of the
// wall clock moves (before, a step forward of an hour expired every queued
// and running call at once). With a deadline, *now is the pool's time it
// was read at.
absl::Time DeadlineOf(const grpc::ServerContextBase& context,
                      const Clock& clock, absl::Time* now) {
  const gpr_timespec deadline = context.raw_deadline();
  if (gpr_time_cmp(deadline, gpr_inf_future(deadline.clock_type)) == 0) {
    return absl::InfiniteFuture();
  }
  const gpr_timespec left =
      gpr_time_sub(deadline, gpr_now(deadline.clock_type));
  *now = clock.Now();
  return *now + absl::Seconds(left.tv_sec) + absl::Nanoseconds(left.tv_nsec);
}

// Whole milliseconds, for messages and the pushback trailer.
std::string WholeMillis(absl::Duration d) {
  return absl::StrCat(absl::ToInt64Milliseconds(d));
}

// The pushback that asks a client not to retry at all: gRFC A6 reads any
// negative value so. gRPC's retries share the call's deadline, so a call
// refused for its own estimate fits its retry even less.
constexpr absl::Duration kDoNotRetry = -absl::Milliseconds(1);

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
    case RefusalReason::kTenantShare:
      return RejectReason::kTenantShare;
    case RefusalReason::kShed:
      return RejectReason::kShed;
    case RefusalReason::kPreempted:
      return RejectReason::kPreempted;
    default:
      return RejectReason::kQueueFull;
  }
}

std::string_view Metadata(const grpc::ServerContextBase& context,
                          std::string_view key) {
  const auto& metadata = context.client_metadata();
  auto it = metadata.find(grpc::string_ref(key.data(), key.size()));
  if (it == metadata.end()) return {};
  return std::string_view(it->second.data(), it->second.size());
}

// A header the service reads must come once: which of two values counts
// would be up to us, and a proxy that adds its value instead of replacing
// the client's (Envoy's request_headers_to_add appends by default) left
// the client's first, which won: the client chose its own tenant.
absl::Status CheckSingleValued(const grpc::ServerContextBase& context,
                               std::string_view key) {
  const size_t n =
      context.client_metadata().count(grpc::string_ref(key.data(), key.size()));
  if (n <= 1) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(AbslView(key), " was sent ", n,
                   " times: at most once (a proxy that sets it must replace "
                   "the client's value, not add to it)"));
}

// 0-15, or -1 for a character that is not a hex digit.
int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Bytes a RunResponse holds besides its `result`: queue_time and run_time
// (fields 16 and 17: a Duration each, at most 11 + 6 bytes, after a 2-byte
// tag and a 1-byte length) and worker (field 18: a 2-byte tag and at most
// 5 bytes).
constexpr int64_t kTimingFieldsBytes = 2 * 20 + 7;
// And the `result` field's own tag and length (at most 6), over the
// payload that TaskKind::response_bytes estimates.
constexpr int64_t kResponseFieldsBytes = kTimingFieldsBytes + 6;

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
    case RejectReason::kTenantShare:
      return "tenant_share";
    case RejectReason::kShed:
      return "shed";
    case RejectReason::kPreempted:
      return "preempted";
    case RejectReason::kExpiredOnArrival:
      return "expired_on_arrival";
    case RejectReason::kInvalid:
      return "invalid";
  }
  return "unknown";
}

absl::Status CheckTenantHeader(std::string_view value) {
  // Printable ASCII is all gRPC's spec allows in a metadata value, but gRPC
  // 1.51 passes any byte through; a tenant is a label value on /metrics,
  // where one byte that is not UTF-8 fails the whole scrape.
  // (The rule is spelled out only for a refusal: a valid tenant costs no
  // allocation.)
  auto rule = [] {
    return absl::StrCat(kTenantHeader, " must be at most ", kMaxTenantBytes,
                        " bytes of printable ASCII (space to ~)");
  };
  if (value.size() > kMaxTenantBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat(rule(), " (got ", value.size(), " bytes)"));
  }
  for (size_t i = 0; i < value.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c < 0x20 || c > 0x7e) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s (byte %d is 0x%02x)", rule(), i + 1, c));
    }
  }
  // A proxy that joins its value to the client's ("mine,proxy", as HTTP/1
  // folds a header sent twice) would have left the client's value in
  // charge; and no --tenant_weights entry can name a tenant with a comma.
  if (value.find(',') != std::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        kTenantHeader,
        " must not hold a comma (values joined: a proxy that sets it must "
        "replace the client's value, not add to it)"));
  }
  return absl::OkStatus();
}

std::string TenantFromIdentity(std::string_view identity) {
  // The CA vouches for who the client is, not for what its certificate's
  // name holds: a CN is any UTF-8, and a SAN as long as the CA allowed. So
  // the call is not refused; its name is made to fit. Two names that
  // differ only past byte 128, or only in bytes made '?', share a tenant:
  // both are the CA's to issue.
  std::string tenant(identity.substr(0, kMaxTenantBytes));
  for (char& c : tenant) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u > 0x7e) c = '?';
  }
  return tenant;
}

std::string PeerAddress(std::string_view peer) {
  if (size_t colon = peer.find(':');
      colon != std::string_view::npos &&
      (peer.substr(0, colon) == "ipv4" || peer.substr(0, colon) == "ipv6")) {
    peer.remove_prefix(colon + 1);
  }
  // gRPC percent-encodes the URI it makes of the address (1.51 writes
  // "ipv6:%5B::1%5D:5678"); %XX that is not two hex digits stays as it is.
  std::string address;
  address.reserve(peer.size());
  for (size_t i = 0; i < peer.size(); ++i) {
    const bool escape = peer[i] == '%' && i + 2 < peer.size();
    const int hi = escape ? HexDigit(peer[i + 1]) : -1;
    const int lo = escape ? HexDigit(peer[i + 2]) : -1;
    if (hi >= 0 && lo >= 0) {
      address.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      address.push_back(peer[i]);
    }
  }
  std::string_view a = address;
  if (!a.empty() && a.front() == '[') {
    // "[::1]:5678": the address is what the brackets hold.
    size_t close = a.find(']');
    return std::string(a.substr(1, close == std::string_view::npos
                                       ? std::string_view::npos
                                       : close - 1));
  }
  // An IPv6 address without brackets has no port after it ("::1").
  if (std::count(a.begin(), a.end(), ':') == 1) a = a.substr(0, a.find(':'));
  return std::string(a);
}

absl::Duration ClientDeadlineSlack(absl::Duration timeout) {
  return kLateCancelSlack + std::min(timeout / 100, kMaxRoundingSlack);
}

TaskOutcome CancelOutcome(absl::Time now, absl::Time deadline,
                          absl::Duration timeout) {
  if (deadline == absl::InfiniteFuture()) return TaskOutcome::kCancelled;
  return now >= deadline - ClientDeadlineSlack(timeout)
             ? TaskOutcome::kDeadlineExceeded
             : TaskOutcome::kCancelled;
}

CostModel::ProbeEnd ProbeEndOf(TaskOutcome outcome, bool ran, absl::Time now,
                               absl::Time deadline) {
  // The client's cancel at its own copy of the deadline comes as
  // kDeadlineExceeded (CancelOutcome; before, 1 of 8 runs of the
  // slow-machine service test counted 2 of 7 such probes as no sample, and
  // their wait for the next did not double).
  const bool late = (outcome == TaskOutcome::kDeadlineExceeded && ran) ||
                    (outcome == TaskOutcome::kOk && now > deadline);
  if (late) return CostModel::ProbeEnd::kLate;
  return outcome == TaskOutcome::kOk ? CostModel::ProbeEnd::kInTime
                                     : CostModel::ProbeEnd::kNoSample;
}

std::optional<std::string> Ipv6Tenant(std::string_view address,
                                      int ipv6_prefix) {
  // A link-local address has a zone (RFC 4007: "fe80::1%2"; gRPC writes
  // the interface's number): the network is grouped like any other and
  // keeps its zone, since the same fe80::/64 on two interfaces is two
  // links. Ungrouped, a client on the link could be a tenant per address.
  std::string_view zone;
  if (size_t percent = address.find('%'); percent != std::string_view::npos) {
    zone = address.substr(percent + 1);
    address = address.substr(0, percent);
    if (zone.empty()) return std::nullopt;
  }
  in6_addr ip;
  // Not IPv6 (IPv4, another scheme).
  if (address.find(':') == std::string_view::npos ||
      inet_pton(AF_INET6, std::string(address).c_str(), &ip) != 1) {
    return std::nullopt;
  }
  char text[INET6_ADDRSTRLEN] = {};
  // gRPC writes these as ipv4: already; any other writer may not.
  if (IN6_IS_ADDR_V4MAPPED(&ip)) {
    inet_ntop(AF_INET, &ip.s6_addr[12], text, sizeof(text));
    return text;
  }
  const int prefix = std::clamp(ipv6_prefix, 0, 128);
  for (int bit = prefix; bit < 128; ++bit) {
    ip.s6_addr[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
  }
  inet_ntop(AF_INET6, &ip, text, sizeof(text));
  const std::string network = zone.empty()
                                  ? std::string(text)
                                  : absl::StrCat(text, "%", AbslView(zone));
  if (prefix == 128) return network;
  return absl::StrCat(network, "/", prefix);
}

std::string TenantFromPeer(std::string_view peer, int ipv6_prefix) {
  std::string address = PeerAddress(peer);
  // Each address its own tenant (the default): no parsing at all.
  if (ipv6_prefix >= 128) return address;
  std::optional<std::string> network = Ipv6Tenant(address, ipv6_prefix);
  return network.has_value() ? *std::move(network) : address;
}

ComputeService::ComputeService(WorkerPool& pool, ComputeServiceOptions options)
    : pool_(pool),
      options_(options),
      cost_model_(CostPriors()),
      load_(options.load_report_interval != absl::InfiniteDuration()
                ? std::make_unique<LoadReporter>(pool, options.cpus,
                                                 options.load_report_interval)
                : nullptr) {}

std::optional<grpc::Status> ComputeService::Handle(CallInfo& call, DoneFn done,
                                                   TaskHandle* handle) {
  call.started = std::chrono::steady_clock::now();
  absl::Time arrived = absl::InfinitePast();  // read only with a deadline
  call.deadline = DeadlineOf(*call.context, pool_.clock(), &arrived);
  call.timeout = call.deadline == absl::InfiniteFuture()
                     ? absl::InfiniteDuration()
                     : call.deadline - arrived;
  if (options_.observer != nullptr) {
    options_.observer->OnCallStarted(kRunMethod);
  }
  if (std::optional<grpc::Status> answer = Prepare(call)) return answer;
  // A call whose own estimate is longer than its deadline allows runs now
  // and then anyway, as a probe charged the best rate its kind has shown:
  // refused, it would never teach the cost model that a raised rate is past
  // (cost_model.h). (By the time left on arrival, a few microseconds more
  // than now: no second read of the clock on every call.)
  if (call.options.admit_by_deadline && call.options.cost > call.timeout &&
      cost_model_.TakeProbe(call.kind->index, call.cost_units, call.timeout,
                            arrived)) {
    call.options.cost =
        cost_model_.ProbeEstimate(call.kind->index, call.cost_units);
    call.probe = true;
  }
  // Tenants cost an allocation or two: only calls that may queue, or every
  // call when per-tenant series are kept, resolve theirs.
  if (options_.tenant_observer != nullptr) ResolveTenant(call);
  TaskFn task = TaskFor(call);
  // Run here, `done` finishes the call before the task leaves the pool, as
  // a worker's completion does: a drain then waits for its answer.
  // Not a probe: a task run inline is not stopped at its deadline, and a
  // probe is a call whose estimate says it may run long.
  if (!call.probe && pool_.RunInlineIfFree(task, done, call.options)) {
    return std::nullopt;
  }
  if (options_.tenant_observer == nullptr) ResolveTenant(call);
  SubmitRefusal refusal;
  // Set before Submit: once the task is in the pool its completion may run
  // at once on another thread (displaced, shut down) and read it.
  call.queued = true;
  absl::StatusOr<TaskHandle> submitted =
      pool_.Submit(std::move(task), std::move(done), call.options, &refusal);
  if (!submitted.ok()) {
    call.queued = false;
    if (call.probe) {
      cost_model_.ProbeRefused(call.kind->index, pool_.clock().Now());
    }
    return Refused(call, submitted.status(), refusal);
  }
  *handle = *submitted;
  return std::nullopt;
}

void ComputeService::Answered(const CallInfo& call,
                              const grpc::Status& status) {
  // A refusal always says why (a balancer then avoids this replica);
  // other answers as often as the interval allows: two trailers cost gRPC
  // ~15% of a trivial call.
  const grpc::StatusCode code = status.error_code();
  if (load_ != nullptr &&
      (code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
       code == grpc::StatusCode::UNAVAILABLE || load_->Due())) {
    std::shared_ptr<const LoadReporter::Report> load = load_->Current();
    call.context->AddTrailingMetadata(kOrcaTrailer, load->orca);
    call.context->AddTrailingMetadata(kLoadTrailer, load->text);
  }
  if (options_.observer == nullptr) return;
  const absl::Duration elapsed =
      absl::FromChrono(std::chrono::steady_clock::now() - call.started);
  options_.observer->OnCallHandled(kRunMethod, code, elapsed);
  if (!call.queued && (code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
                       code == grpc::StatusCode::UNAVAILABLE)) {
    options_.observer->OnRefusalAnswered(elapsed);
  }
}

void ComputeService::AnswerUndelivered() {
  if (options_.observer != nullptr) options_.observer->OnAnswerUndelivered();
}

std::optional<grpc::Status> ComputeService::Prepare(CallInfo& call) {
  const compute::v1::RunRequest& request = *call.request;
  if (!call.parsed.ok()) {
    return Invalid(call, std::string(call.parsed.message()));
  }
  if (absl::Status valid = tasks::ValidateRequest(request, call.payload);
      !valid.ok()) {
    return Invalid(call, std::string(valid.message()));
  }
  if (absl::Status once = CheckSingleValued(*call.context, "compute-priority");
      !once.ok()) {
    return Invalid(call, std::string(once.message()));
  }
  if (std::string_view priority = Metadata(*call.context, "compute-priority");
      !priority.empty()) {
    if (priority == "critical") {
      call.options.priority = Priority::kCritical;
    } else if (priority == "sheddable") {
      call.options.priority = Priority::kSheddable;
    } else if (priority != "default") {
      return Invalid(call,
                     absl::StrCat("compute-priority must be critical, default "
                                  "or sheddable (got '",
                                  AbslView(priority.substr(0, 64)), "')"));
    }
  }
  // After the priority: a refusal is counted by priority class.
  if (draining()) {
    return Refuse(call, RejectReason::kDraining, grpc::StatusCode::UNAVAILABLE,
                  "server is draining (shutting down); retry on another "
                  "replica",
                  absl::ZeroDuration());
  }
  if (options_.trust_tenant_header) {
    absl::Status valid = CheckSingleValued(*call.context, kTenantHeader);
    if (valid.ok()) {
      valid = CheckTenantHeader(Metadata(*call.context, kTenantHeader));
    }
    // Not for a verified client certificate: the header is not read then
    // (asked only here, on a refusal: it costs an allocation).
    if (!valid.ok() && !CertificateTenant(call).has_value()) {
      return Invalid(call, std::string(valid.message()));
    }
  }
  call.kind = tasks::FindTaskKind(request.task_case());
  call.cost_units = call.kind->cost_units(request);
  TaskOptions& options = call.options;
  options.deadline = call.deadline;
  options.tag = static_cast<uint32_t>(call.kind->index);
  options.cost = cost_model_.Estimate(call.kind->index, call.cost_units);
  const int64_t response_bytes = call.kind->response_bytes(request);
  const int64_t message_bytes =
      static_cast<int64_t>(request.ByteSizeLong() +
                           tasks::PayloadSize(call.payload)) +
      response_bytes;
  options.bytes =
      message_bytes + call.kind->working_bytes(request, call.payload);
  options.admit_by_deadline = options_.admission;
  // A response gRPC would refuse to send is refused before the work: the
  // kind's payload estimate (exact for blur) plus the fields around it.
  if (const int64_t limit = options_.max_message_bytes;
      limit > 0 && response_bytes + kResponseFieldsBytes > limit) {
    return Invalid(
        call, absl::StrCat(AbslView(call.kind->name), " response would be ",
                           response_bytes + kResponseFieldsBytes,
                           " bytes, over --max_message_bytes ", limit,
                           " (the server's largest message)"));
  }
  if (int64_t limit = pool_.max_inflight_bytes(); limit > 0) {
    if (message_bytes > limit) {
      const std::string_view field = call.kind->large_field;
      return Invalid(
          call,
          absl::StrCat(
              "request too large for this server: ",
              field.empty() ? "it" : AbslView(field), " needs ", message_bytes,
              " bytes (request + response) but the server holds at "
              "most ",
              limit, " bytes of admitted calls (1/4 of --max_inflight_bytes)"));
    }
    // The kernel's own copies (a narrow blur's transpose) would make a call
    // that fits by its messages never fit, by how the image is shaped or
    // how the transport cut its bytes: charged at most the whole budget, it
    // runs alone instead (the process keeps a reserve beside the budget).
    options.bytes = std::min(options.bytes, limit);
  }
  return std::nullopt;
}

std::optional<std::string> ComputeService::CertificateTenant(
    const CallInfo& call) {
  // A verified client certificate names the tenant (gRPC gives its SAN, or
  // its CN without one, as the peer identity).
  std::shared_ptr<const grpc::AuthContext> auth = call.context->auth_context();
  if (auth == nullptr || !auth->IsPeerAuthenticated()) return std::nullopt;
  std::vector<grpc::string_ref> identity = auth->GetPeerIdentity();
  if (identity.empty()) return std::string();
  return TenantFromIdentity(
      std::string_view(identity.front().data(), identity.front().size()));
}

void ComputeService::ResolveTenant(CallInfo& call) const {
  std::string& tenant = call.options.tenant;
  std::optional<std::string> certified = CertificateTenant(call);
  if (certified.has_value()) {
    tenant = *std::move(certified);
  } else if (options_.trust_tenant_header) {
    // Prepare refused a header that is not a tenant (CheckTenantHeader).
    tenant = std::string(Metadata(*call.context, kTenantHeader));
  } else {
    tenant.clear();
  }
  if (tenant.empty()) {
    tenant = TenantFromPeer(call.context->peer(), options_.tenant_ipv6_prefix);
  }
  if (!options_.tenant_weights.empty()) {
    auto it = options_.tenant_weights.find(tenant);
    if (it != options_.tenant_weights.end()) call.options.weight = it->second;
  }
}

TaskFn ComputeService::TaskFor(const CallInfo& call) const {
  return [kind = call.kind, request = call.request, payload = call.payload,
          response = call.response, run_task = options_.run_task,
          limit = options_.max_message_bytes](const CancelToken& cancel) {
    absl::Status status =
        run_task != nullptr
            ? run_task(*kind, *request, payload, cancel, response)
            : kind->run(*request, payload, cancel, response);
    // Prepare refused what the estimate knew to be too large; a response
    // that still is fails here, so that it is counted a failure (gRPC would
    // not send it) and the client is told why.
    if (status.ok() && limit > 0) {
      const int64_t bytes =
          static_cast<int64_t>(response->ByteSizeLong()) + kTimingFieldsBytes;
      if (bytes > limit) {
        response->Clear();
        return absl::ResourceExhaustedError(
            absl::StrCat("its response is ", bytes,
                         " bytes, over --max_message_bytes ", limit));
      }
    }
    return status;
  };
}

grpc::Status ComputeService::Invalid(const CallInfo& call,
                                     const std::string& message) {
  CountRejected(RejectReason::kInvalid, call.options.priority);
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

grpc::Status ComputeService::Refuse(const CallInfo& call, RejectReason reason,
                                    grpc::StatusCode code,
                                    const std::string& message,
                                    absl::Duration pushback) {
  CountRejected(reason, call.options.priority);
  if (pushback > absl::ZeroDuration() || pushback == kDoNotRetry) {
    call.context->AddTrailingMetadata("grpc-retry-pushback-ms",
                                      WholeMillis(pushback));
  }
  return grpc::Status(code, message);
}

grpc::Status ComputeService::Refused(const CallInfo& call,
                                     const absl::Status& status,
                                     const SubmitRefusal& refusal) {
  if (options_.tenant_observer != nullptr) {
    options_.tenant_observer->OnTenantRejected(call.options.tenant,
                                               call.options.cost);
  }
  switch (refusal.reason) {
    case RefusalReason::kShutDown:
      return Refuse(call, RejectReason::kDraining,
                    grpc::StatusCode::UNAVAILABLE,
                    "server is draining (shutting down); retry on another "
                    "replica",
                    absl::ZeroDuration());
    case RefusalReason::kExpired:
      // Counted: every call that reaches the pool shows in a counter.
      return Refuse(call, RejectReason::kExpiredOnArrival,
                    grpc::StatusCode::DEADLINE_EXCEEDED,
                    "deadline had passed when the call arrived",
                    absl::ZeroDuration());
    case RefusalReason::kDeadline:
      if (refusal.own_cost) {
        return Refuse(
            call, RejectReason::kDeadline, grpc::StatusCode::RESOURCE_EXHAUSTED,
            absl::StrCat(status.message(), "; retry with a longer deadline"),
            kDoNotRetry);
      }
      return Refuse(call, RejectReason::kDeadline,
                    grpc::StatusCode::RESOURCE_EXHAUSTED,
                    absl::StrCat(status.message(),
                                 "; retry later or with a longer deadline"),
                    refusal.retry_after);
    default:  // a budget: queue_full, memory, overload, tenant_share, shed
      return Refuse(
          call, RejectReasonFor(refusal.reason),
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("server busy: ", status.message(), "; retry in ",
                       WholeMillis(refusal.retry_after), " ms"),
          refusal.retry_after);
  }
}

grpc::Status ComputeService::Completed(const CallInfo& call,
                                       const TaskResult& result) {
  const bool ran = result.worker >= 0;
  if (ran) {
    compute::v1::RunResponse* response = call.response;
    SetDuration(result.queue_wait, response->mutable_queue_time());
    SetDuration(result.run_time, response->mutable_run_time());
    response->set_worker(static_cast<uint32_t>(result.worker));
  }
  if (options_.tenant_observer != nullptr) {
    options_.tenant_observer->OnTenantTask(call.options.tenant, result.outcome,
                                           call.options.cost, result.run_time);
  }
  const int kind = call.kind->index;
  if (call.probe) {
    const absl::Time now = pool_.clock().Now();
    cost_model_.ProbeEnded(
        kind, ProbeEndOf(result.outcome, ran, now, call.deadline), now);
  }
  switch (result.outcome) {
    case TaskOutcome::kOk:
      cost_model_.Record(kind, call.cost_units, result.run_time);
      return grpc::Status::OK;
    case TaskOutcome::kCancelled:
      // Stopped after running a while: it costs at least that.
      if (ran) {
        cost_model_.Record(kind, call.cost_units, result.run_time,
                           /*lower_bound=*/true);
      }
      return grpc::Status(grpc::StatusCode::CANCELLED,
                          "call cancelled by the client");
    case TaskOutcome::kDeadlineExceeded:
      if (!ran) {
        return grpc::Status(
            grpc::StatusCode::DEADLINE_EXCEEDED,
            absl::StrCat("deadline exceeded after ",
                         WholeMillis(result.queue_wait),
                         " ms in the queue; the task never ran"));
      }
      cost_model_.Record(kind, call.cost_units, result.run_time,
                         /*lower_bound=*/true);
      return grpc::Status(
          grpc::StatusCode::DEADLINE_EXCEEDED,
          absl::StrCat("deadline exceeded after ", WholeMillis(result.run_time),
                       " ms of running; the task was stopped"));
    case TaskOutcome::kFailed:
      return grpc::Status(
          grpc::StatusCode::INTERNAL,
          absl::StrCat(AbslView(call.kind->name),
                       " task failed: ", result.status.message()));
    case TaskOutcome::kShutDown:
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "server shut down before the task could finish; "
                          "retry on another replica");
    case TaskOutcome::kPreempted: {
      // A refusal of its tenant's too, as in compute_tasks_rejected_total
      // (its cost was counted with its outcome, above).
      if (options_.tenant_observer != nullptr) {
        options_.tenant_observer->OnTenantRejected(call.options.tenant,
                                                   absl::ZeroDuration());
      }
      const bool for_share =
          result.displaced_for == RefusalReason::kTenantShare;
      absl::Duration pushback =
          std::clamp(pool_.Stats().expected_wait, absl::Milliseconds(1),
                     absl::Seconds(10));
      return Refuse(
          call,
          for_share ? RejectReason::kTenantShare : RejectReason::kPreempted,
          grpc::StatusCode::RESOURCE_EXHAUSTED,
          absl::StrCat("server busy: ", result.status.message(), " after ",
                       WholeMillis(result.queue_wait), " ms; retry in ",
                       WholeMillis(pushback), " ms"),
          pushback);
    }
  }
  return grpc::Status(grpc::StatusCode::INTERNAL, "unknown task outcome");
}

uint64_t ComputeService::ArrivalCount() const {
  uint64_t count = pool_.Stats().accepted;
  for (const auto& rejected : rejected_) {
    count += rejected.load(std::memory_order_relaxed);
  }
  return count;
}

void ComputeService::CountRejected(RejectReason reason, Priority priority) {
  rejected_[static_cast<int>(reason)].fetch_add(1, std::memory_order_relaxed);
  if (options_.observer != nullptr) {
    options_.observer->OnRejected(reason, priority);
  }
}

}  // namespace compute::service
