// ComputeService: what compute.v1.Compute/Run does with a call, over the
// WorkerPool, whichever gRPC API delivers the call (server/service/run_call.h
// drives it on completion queues), so that no gRPC thread ever waits for a
// task.
//
// Handle = validate -> estimate (cost, bytes) -> answer at once (bad input,
// draining, a cheap task run inline) or pool.Submit, which admits by the
// scheduler's budgets -> (worker runs the task) -> the pool's completion
// callback hands the result to the call, on the worker thread.
//
// Estimates: a task's cost is its kind's cost units for this request times
// the kind's learned seconds per unit (server/pool/cost_model.h); every task
// that completes OK teaches the model its run time, and a stopped one that
// ran longer than estimated raises it. Its bytes are the request's size plus
// the response payload it will hold; a request that alone needs more than
// the pool's whole memory budget is INVALID_ARGUMENT (it could never run
// here), not a retryable refusal.
//
// Invariants
//   - Every call gets exactly one status: either Handle returns it (bad
//     input, refusal, draining), with no pool task, or the pool's
//     completion callback (`done`) gets the result, which the pool calls
//     exactly once per accepted task; a task run inline answers through
//     `done` too, and Handle then returns nullopt (RunCall::Finish asserts
//     one answer per call).
//   - A client cancel (or the call's deadline passing) cancels the task,
//     queued or running; the pool then completes it, deciding "cancelled" or
//     "deadline exceeded" by its clock against the deadline, and that
//     completion finishes the call.
//   - The call's deadline is the task's deadline.
//   - Every call is counted once: its task's outcome (the pool's observer)
//     or, when it never became a task, a RejectReason (CountRejected),
//     bad input included; a displaced task is both (kPreempted, or
//     kTenantShare when a tenant under its share displaced it).
// The status mapping is the table in the README.
//
// Thread-safety: all methods are thread-safe.
#ifndef COMPUTE_SERVER_SERVICE_COMPUTE_SERVICE_H_
#define COMPUTE_SERVER_SERVICE_COMPUTE_SERVICE_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "compute/v1/compute.grpc.pb.h"
#include "server/pool/cost_model.h"
#include "server/pool/worker_pool.h"
#include "server/service/call_observer.h"
#include "server/service/load_report.h"
#include "server/tasks/registry.h"

namespace compute::service {

// Runs a validated request's task on a worker. The default is the kind's
// own `run`; tests inject faults here.
using TaskRunner = absl::Status (*)(const tasks::TaskKind& kind,
                                    const compute::v1::RunRequest& request,
                                    tasks::Payload payload,
                                    const CancelToken& cancel,
                                    compute::v1::RunResponse* response);

struct ComputeServiceOptions {
  // Refuse at once a call whose deadline cannot be met (reason "deadline").
  bool admission = true;
  // A call's tenant (whose share of the queue it draws on) is its verified
  // mTLS identity; else, when this is set, its `compute-tenant` metadata;
  // else its peer's IP address.
  bool trust_tenant_header = false;
  // A peer's tenant, when it is an IPv6 address: its first this many bits
  // (TenantFromPeer).
  int tenant_ipv6_prefix = 128;
  // Weights of named tenants (default 1).
  absl::flat_hash_map<std::string, double> tenant_weights;
  CallObserver* observer = nullptr;  // optional; must outlive the service
  // Optional; must outlive the service. When set, every call's tenant is
  // resolved (also for calls that run inline), for it.
  TenantObserver* tenant_observer = nullptr;
  TaskRunner run_task = nullptr;  // nullptr: kind.run
  // Every refusal, and at least one answer per interval on each thread,
  // carries the server's load in its trailers (load_report.h); inf: none.
  absl::Duration load_report_interval = absl::Milliseconds(1);
  double cpus = 1;  // scales the reported cpu_utilization
  // The largest response gRPC will send (--max_message_bytes; 0: no
  // limit). A request whose response would be larger is INVALID_ARGUMENT,
  // before it runs; a response that turns out larger fails its task.
  int64_t max_message_bytes = 0;
};

// What the service knows of one call. The caller owns it (and what it
// points to) until the call's status is sent.
struct CallInfo {
  grpc::ServerContextBase* context = nullptr;
  // Whether the request's bytes parsed (wire.h); when not, the call is
  // answered INVALID_ARGUMENT with this message and *request is empty.
  absl::Status parsed;
  const compute::v1::RunRequest* request = nullptr;
  // The request's payload when it stayed in the receive buffers (wire.h);
  // valid until the call's task has completed.
  tasks::Payload payload;
  compute::v1::RunResponse* response = nullptr;
  std::chrono::steady_clock::time_point started;
  absl::Time deadline;
  // What was left of the deadline when the call arrived (infinite: none).
  absl::Duration timeout = absl::InfiniteDuration();
  const tasks::TaskKind* kind = nullptr;
  double cost_units = 0;  // this request's size, for the cost model
  bool queued = false;    // its task went into the pool (Submit took it)
  // Admitted, if at all, as the cost model's probe (cost_model.h): its own
  // estimate was longer than its deadline allowed.
  bool probe = false;
  TaskOptions options;
};

// The client cancels when its own copy of the deadline passes, and the
// server's copy passes up to this much later: gRPC sends the time left
// rounded up to three significant figures (up to 1% more: 10.001 s left
// went as "10100m", and the server's copy passed 98 ms after the
// client's), and the cancel takes a moment to arrive (kLateCancelSlack).
// The rounding's part is capped: it covers every deadline up to 100 s
// (this service's tasks run at most 60 s), and a client that cancels
// within the last 1% of a 1 h deadline (36 s) did not give up at it.
inline constexpr absl::Duration kLateCancelSlack = absl::Milliseconds(5);
inline constexpr absl::Duration kMaxRoundingSlack = absl::Seconds(1);
absl::Duration ClientDeadlineSlack(absl::Duration timeout);

// How the client's cancel of a call at `now` stops its task
// (WorkerPool::Cancel): kDeadlineExceeded within ClientDeadlineSlack of
// its deadline (`timeout`: what was left of it on arrival), else
// kCancelled. Until 2026-12-06 always kCancelled: of 40 calls with 300 ms
// deadlines that expired in the queue, a reviewer saw 11 counted
// `cancelled` (compute_tasks_total, and grpc_server_handled_total's
// Canceled, which dashboards read as the client's doing), whose clients
// all saw DEADLINE_EXCEEDED.
TaskOutcome CancelOutcome(absl::Time now, absl::Time deadline,
                          absl::Duration timeout);

// How a probe that ended with `outcome` at `now` ended, for the cost
// model's schedule (CostModel::ProbeEnded): in time by the clock, not the
// outcome alone (a kernel that finished just past its deadline without
// looking is still OK, and late); stopped by its deadline after it ran
// (the client's cancel at its deadline included: CancelOutcome), late;
// anything else (never ran, cancelled, failed) no sample.
CostModel::ProbeEnd ProbeEndOf(TaskOutcome outcome, bool ran, absl::Time now,
                               absl::Time deadline);

// A call's tenant, by where it comes from (ResolveTenant; declared here for
// tests). A header's or an identity's is at most kMaxTenantBytes of
// printable ASCII, and a peer's is an IP address: so a client can make
// neither the fair queue nor /metrics hold long names, nor write a label
// value Prometheus refuses (which fails the whole scrape).
inline constexpr size_t kMaxTenantBytes = 128;

// OK, or INVALID_ARGUMENT saying which rule the `compute-tenant` value
// breaks: more than kMaxTenantBytes, a byte outside 0x20-0x7E (all that
// gRPC's spec allows in a metadata value, though gRPC 1.51 takes any), or
// a comma (a proxy's value joined to the client's).
[[nodiscard]] absl::Status CheckTenantHeader(std::string_view value);

// A verified TLS identity (the SAN, or the CN) as a tenant: its first
// kMaxTenantBytes, every byte outside 0x20-0x7E made '?' (as a
// --tenant_weights entry must name it).
std::string TenantFromIdentity(std::string_view identity);

// The IP address in gRPC's peer string, without the scheme, the port or
// IPv6's brackets, percent-decoded: "ipv4:10.1.2.3:5678" -> "10.1.2.3";
// "ipv6:%5B::1%5D:5678" (as gRPC 1.51 writes it) and "ipv6:[::1]:5678" ->
// "::1".
std::string PeerAddress(std::string_view peer);

// A peer's tenant: its IP address (PeerAddress), and for an IPv6 one, with
// `ipv6_prefix` under 128, the network of its first `ipv6_prefix` bits as
// inet_ntop writes it ("2001:db8:1:2::/64"), since a host commonly holds a
// whole /64 and can send from any address in it; 128 keeps the address.
// Grouped, an IPv4 address mapped into IPv6 (::ffff:10.1.2.3) is the IPv4
// address (as ::/64, every IPv4 client would be one tenant).
std::string TenantFromPeer(std::string_view peer, int ipv6_prefix);

// An IPv6 address (no brackets, no port) as TenantFromPeer writes its
// tenant: the network of its first `ipv6_prefix` bits ("2001:db8:1:2::/64"),
// or at 128 the address alone, lower case and compressed; a zone kept after
// the address, as RFC 4007 writes it ("fe80::%2/64"); an IPv4 address
// mapped into IPv6 as the IPv4 address. Nullopt for anything else (IPv4, a
// name). --tenant_weights writes its IPv6 names so.
std::optional<std::string> Ipv6Tenant(std::string_view address,
                                      int ipv6_prefix);

class ComputeService {
 public:
  // `pool` must outlive the service.
  ComputeService(WorkerPool& pool, ComputeServiceOptions options);

  // A call has arrived (context, request and response set): counts it, then
  // either returns its status (to be sent now; bad input, draining, a
  // refusal), or returns nullopt, having run a cheap task inline on this
  // thread (`done` has had its result, before Handle returns; *handle stays
  // invalid) or handed it to the pool: `done` then gets the task's result
  // exactly once, possibly before Handle returns, on whichever thread ends
  // the task: a worker, the pool's timer (expired in the queue), a thread
  // that cancels it, the drain's (Shutdown), or the I/O thread of another
  // call whose Submit displaced it, from inside that call's Handle. So no
  // lock may be held across Handle or Submit that `done` (Completed,
  // Answered: they read the pool's stats and load) could need: it would
  // deadlock (worker_pool.h). *handle cancels the task (TaskHandle is
  // valid only after Handle returns).
  std::optional<grpc::Status> Handle(CallInfo& call, DoneFn done,
                                     TaskHandle* handle);
  // The status for a task's result (and the cost model learns from it).
  grpc::Status Completed(const CallInfo& call, const TaskResult& result);
  // Tells the observer the call is answered with `status`, and adds the
  // load report to its trailers: once per call, just before its status is
  // sent.
  void Answered(const CallInfo& call, const grpc::Status& status);
  // Tells the observer a call answered OK did not get its answer to the
  // client (CallObserver::OnAnswerUndelivered): at most once per call.
  void AnswerUndelivered();

  // From now on Run answers UNAVAILABLE; calls already accepted go on.
  void StartDraining() { draining_.store(true, std::memory_order_release); }
  bool draining() const { return draining_.load(std::memory_order_acquire); }

  uint64_t rejected(RejectReason reason) const {
    return rejected_[static_cast<int>(reason)].load(std::memory_order_relaxed);
  }
  // Grows with every call that reaches Handle (it is accepted by the pool
  // or refused, and counted either way): the drain watches it to tell when
  // calls have stopped arriving. Takes the pool's lock; not for every call.
  uint64_t ArrivalCount() const;

  WorkerPool& pool() { return pool_; }

  // Per task kind (tasks::TaskKind::index): what the service has learned.
  const CostModel& cost_model() const { return cost_model_; }

 private:
  // Validates and estimates the call (kind, cost, bytes, priority,
  // options); a status when it is to be answered at once instead (bad
  // input, draining).
  std::optional<grpc::Status> Prepare(CallInfo& call);
  // The call's tenant and its weight, into call.options (only calls that
  // queue need them: they cost an allocation or two).
  void ResolveTenant(CallInfo& call) const;
  // nullopt when the peer has no verified client certificate; else the
  // tenant it names (its SAN, or its CN without one), empty when it names
  // none. A verified peer's compute-tenant header is never read, named or
  // not: a trusted CA's certificate without a name chose any tenant by the
  // header until 2026-12-06 (a review's finding); it is its peer address's.
  static std::optional<std::string> CertificateTenant(const CallInfo& call);
  TaskFn TaskFor(const CallInfo& call) const;
  // INVALID_ARGUMENT with `message`, counted (reason "invalid").
  grpc::Status Invalid(const CallInfo& call, const std::string& message);
  // The status for a refusal by the pool, counted, with its pushback.
  grpc::Status Refused(const CallInfo& call, const absl::Status& status,
                       const SubmitRefusal& refusal);
  grpc::Status Refuse(const CallInfo& call, RejectReason reason,
                      grpc::StatusCode code, const std::string& message,
                      absl::Duration pushback);
  void CountRejected(RejectReason reason, Priority priority);

  WorkerPool& pool_;
  const ComputeServiceOptions options_;
  CostModel cost_model_;
  std::unique_ptr<LoadReporter> load_;  // null without load reports
  std::atomic<bool> draining_{false};
  std::array<std::atomic<uint64_t>, kNumRejectReasons> rejected_{};
};

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_COMPUTE_SERVICE_H_
