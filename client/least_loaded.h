// LeastLoaded: a client-side balancer that sends each call to the less
// loaded of two random replicas (power of two choices), by the load each
// replica reports and the calls this client has in flight to it.
//
// Why: round_robin gives a slow or overloaded replica the same share as an
// idle one, so its queue fills and its share is refused or slow while the
// others idle. compute-server puts its load in every answer's trailers
// (`compute-load`: application_utilization = busy workers / workers +
// expected queue wait / target; see server/service/load_report.h).
//
//   auto balancer = LeastLoaded::Create(options);   // dns:///..., ipv4:...
//   std::shared_ptr<LeastLoaded::Replica> r = (*balancer)->Choose();
//   r->stub().async()->Run(&context, ...);  ... on completion:
//   (*balancer)->Done(*r, status, context);
//
// Replicas: the target's addresses (`ipv4:a:p,b:q`, `ipv6:[..]:p`,
// `dns:///host:port` or `host:port`, resolved with getaddrinfo), one
// channel each (pick_first to that address), re-resolved every
// `resolve_interval` by a background thread: replicas that left stop being
// chosen (calls in flight to them finish; their counts stay in
// CallsPerAddress), new ones are added.
//
// Score of a replica: the utilization it would have with this call, the
// larger of (reported utilization + 1 / workers) and (calls in flight from
// here + 1) / workers, `workers` being what it reports; the lower wins. A
// replica that has not answered yet scores 0 while no call is on its way
// there, as a 1-worker one after (so each new replica gets one probe call,
// once its channel is connected: while one replica is, the others are not
// chosen at all, see Connected). So
// a 1-worker replica running one call scores 2, a 4-worker one running three 1:
// capacity counts, not only the queue. A report ages: its weight halves
// every kLoadHalfLife, so a replica that was busy when it last answered and
// then got no call is tried again once its report is stale (else it would
// wait until every other replica's score rose past its old report: measured,
// a replica busy for 1.4 s then idle got 2 calls of 574 in the next 4.6 s).
// A replica that refused a call
// (RESOURCE_EXHAUSTED) is avoided for its `grpc-retry-pushback-ms` (100 ms
// without one; not at all for a negative one, which refuses the call, not
// the replica, and is not retried); one that is unreachable or draining
// (UNAVAILABLE) for 1 s, and then takes one call at a time until one is
// answered (on_probation_); one that cut a call off (CANCELLED, which bench
// never does itself) for 1 s;
// one whose last kSilentDeadlines calls or more all ran out of time
// (DEADLINE_EXCEEDED, nothing else in between: a replica that accepts
// calls and never answers, stopped or cut off) for 1 s, doubling with each
// more up to 30 s: unanswered, it reports no load, and without this it
// got a probe call, lost to its deadline, every time its last one ended.
// Only a call that runs out of time outside such a pause doubles it (the
// calls out when it began time out together), and any answer ends it.
// When every replica is avoided, the two random ones are drawn from those
// that answered their last call (they refused it), not from those gone or
// silent, else from all.
//
// Retries: a replica's channel has no retry policy (gRPC would resend to
// the replica that refused or went away); with --retry the caller sends the
// call again to the replica Choose gives then, up to kLeastLoadedAttempts
// in all (LoadOptions::max_attempts), after UntilOneIsOpen when every
// replica is avoided.
//
// Thread-safety: Choose and Done may be called from any thread. Both hold
// the balancer's mutex, so a choice sees each ended call's outcome whole
// and calls that end at once are counted one after the other; a replica's
// fields are atomics only so that reports (replicas()) read them without it.
#ifndef COMPUTE_CLIENT_LEAST_LOADED_H_
#define COMPUTE_CLIENT_LEAST_LOADED_H_

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "compute/v1/compute.grpc.pb.h"
#include "server/pool/sync.h"

namespace compute::client {

// Attempts per call in all with --retry, as the channels' retry policy of
// the other --lb policies (ServiceConfigJson).
inline constexpr int kLeastLoadedAttempts = 5;

// Calls in a row that ran out of time before a replica is avoided (see
// the class comment).
inline constexpr int kSilentDeadlines = 3;

// How fast a replica's last reported load stops counting (see the top).
inline constexpr absl::Duration kLoadHalfLife = absl::Milliseconds(500);

// UntilOneIsOpen's answer when the only replicas past their pause are each
// taking their one probe call: how soon to look again.
inline constexpr int64_t kProbeRecheckNs = 10'000'000;  // 10 ms

// What a replica's score is made of when a call is placed.
struct ReplicaView {
  double load = 0;                                 // last reported
  absl::Duration load_age = absl::ZeroDuration();  // since it was reported
  int workers = 0;                                 // reported; 0: not yet
  int in_flight = 0;                               // this client's calls
};
// The utilization the replica would have with one more call (lower wins).
double ReplicaScore(const ReplicaView& replica);

// A refusal's `grpc-retry-pushback-ms` (gRFC A6), when it holds a number: a
// wait in milliseconds, or below zero, a request not to retry at all.
std::optional<int64_t> PushbackMs(const grpc::ClientContext& context);

// gRPC's own refusal of a message over a size limit (the server's
// --max_message_bytes for a request, this client's for an answer):
// RESOURCE_EXHAUSTED "Received (or Sent) message larger than max (N vs.
// M)", with no pushback. The same bytes are refused again by every replica,
// so such a call is not retried and its replica is not avoided.
bool IsMessageTooLarge(const grpc::Status& status);

// The most utilization a report is taken for (see ParseLoad).
inline constexpr double kMaxReportedLoad = 1e6;

// A `compute-load` trailer ("application_utilization=1.250,workers=4"):
// the utilization, a finite number >= 0 (false without one; at most
// kMaxReportedLoad), and the workers (1 when absent or not a count of at
// least 1: a server from before they were reported, or another server
// speaking the format; until 2026-12-07 0, which ReplicaScore reads as a
// replica not heard from, so its reported load went unused).
bool ParseLoad(const std::string& text, double* load, int* workers);

// The addresses `target` names now, as gRPC targets of one address each
// ("ipv4:10.0.0.1:50051", "ipv6:[::1]:50051"). InvalidArgument for a target
// it cannot read; Unavailable when DNS has no address for it.
absl::StatusOr<std::vector<std::string>> ResolveTarget(
    const std::string& target);

// The steady clock, in nanoseconds: LeastLoaded's clock by default.
int64_t SteadyNowNs();

class LeastLoaded {
 public:
  class Replica {
   public:
    const std::string& address() const { return address_; }
    compute::v1::Compute::Stub& stub() { return *stub_; }
    const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
    int in_flight() const { return in_flight_.load(std::memory_order_relaxed); }
    double load() const { return load_.load(std::memory_order_relaxed); }
    // The most calls it runs at once, as it reported (0: not yet).
    int workers() const { return workers_.load(std::memory_order_relaxed); }
    uint64_t calls() const { return calls_.load(std::memory_order_relaxed); }

   private:
    friend class LeastLoaded;
    std::string address_;
    std::shared_ptr<grpc::Channel> channel_;
    std::unique_ptr<compute::v1::Compute::Stub> stub_;
    std::atomic<int> in_flight_{0};
    std::atomic<double> load_{0};
    std::atomic<int64_t> load_at_ns_{0};  // now_ns_; when load_ came
    std::atomic<int> workers_{0};
    // The later of its two pauses (steady clock).
    int64_t PausedUntilNs() const {
      return std::max(avoid_until_ns_.load(std::memory_order_relaxed),
                      silent_until_ns_.load(std::memory_order_relaxed));
    }

    // Asked for by its answers: a refusal's pushback, UNAVAILABLE, CANCELLED.
    std::atomic<int64_t> avoid_until_ns_{0};  // now_ns_
    // For calls that got no answer (kSilentDeadlines); any answer ends it.
    std::atomic<int64_t> silent_until_ns_{0};  // now_ns_
    std::atomic<int> deadlines_in_a_row_{0};
    // Its last call ended UNAVAILABLE: once its pause is over it takes one
    // call at a time until one is answered (a circuit breaker's half-open
    // state), so the calls chosen in the moment its pause ends do not all
    // fail on a replica that is still gone.
    std::atomic<bool> on_probation_{false};
    std::atomic<uint64_t> calls_{0};  // chosen, ever
  };

  // The addresses a target names now (ResolveTarget; tests pass their own).
  using Resolver = std::function<absl::StatusOr<std::vector<std::string>>(
      const std::string& target)>;

  // The clock that times the pauses and the loads' age, in nanoseconds
  // (SteadyNowNs; tests pass one that moves only when told).
  using NowNs = std::function<int64_t()>;

  // Resolves and connects (lazily). `options.lb_policy` is ignored.
  static absl::StatusOr<std::unique_ptr<LeastLoaded>> Create(
      const ChannelOptions& options,
      absl::Duration resolve_interval = absl::Seconds(10),
      Resolver resolver = ResolveTarget, NowNs now_ns = SteadyNowNs);
  ~LeastLoaded();
  LeastLoaded(const LeastLoaded&) = delete;
  LeastLoaded& operator=(const LeastLoaded&) = delete;

  // The replica for the next call (counted in flight until Done).
  std::shared_ptr<Replica> Choose() ABSL_LOCKS_EXCLUDED(mu_);
  // The call to `replica` ended with `status`; reads its load from the
  // trailers of `context`.
  void Done(Replica& replica, const grpc::Status& status,
            const grpc::ClientContext& context) ABSL_LOCKS_EXCLUDED(mu_);

  // How long until a replica is no longer avoided (0 when one is open now):
  // a retry waits that long rather than go at once to a replica that asked
  // for a pause.
  absl::Duration UntilOneIsOpen() const ABSL_LOCKS_EXCLUDED(mu_);

  // The replicas chosen from now, for reports and tests.
  std::vector<std::shared_ptr<Replica>> replicas() const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Calls chosen for each address, ever: those of replicas() in their
  // order, then those of addresses that have left the target since (a
  // replica replaced mid-run), by address.
  std::vector<std::pair<std::string, uint64_t>> CallsPerAddress() const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  LeastLoaded(ChannelOptions options, absl::Duration interval,
              Resolver resolver, NowNs now_ns);
  // Makes the replica set the target's addresses; keeps the replicas of
  // addresses still there. False if resolution failed (the set is kept).
  bool Resolve() ABSL_LOCKS_EXCLUDED(mu_);
  void ResolveLoop();
  // Not avoided: its pause is over, and it is not on probation with its one
  // call out.
  static bool IsOpen(const Replica& r, int64_t now);
  // The replicas whose channel is connected, while one is; else all. One
  // not connected (yet) reports no load and scores 0, so the first calls of
  // a run, and every call while the connected ones were paused, went to an
  // address nobody listens on (localhost as ::1 beside 127.0.0.1, with the
  // server on 0.0.0.0) and failed UNAVAILABLE. `try_to_connect` asks the
  // others to connect, so that a new replica is taken in once it is.
  std::vector<std::shared_ptr<Replica>> Connected(bool try_to_connect) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::shared_ptr<Replica> NewReplica(const std::string& address);

  const ChannelOptions options_;
  const absl::Duration resolve_interval_;
  const Resolver resolve_;
  const NowNs now_ns_;

  mutable Mutex mu_;
  std::vector<std::shared_ptr<Replica>> replicas_ ABSL_GUARDED_BY(mu_);
  // Calls chosen for replicas no longer in replicas_, by address.
  std::map<std::string, uint64_t> calls_to_gone_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 random_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  CondVar stop_cv_;
  std::thread resolver_;
};

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_LEAST_LOADED_H_
