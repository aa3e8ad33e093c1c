// LoadGenerator: the engine of `compute-client bench`, usable from tests and
// benchmarks.
//
// It drives compute.v1.Compute/Run on gRPC's callback API (a generic stub:
// the request is serialized once and its bytes shared by every call, and
// answers are counted, not parsed, so a 16 MiB blur costs the client no copy
// per call): a call is a small heap object whose completion callback records it
// and, in a closed loop, starts the next one. No thread waits for a call, so
// thousands can be in flight from one process on two cores.
//
//   Closed loop (rate == 0): `concurrency` calls are kept in flight; each
//   completion starts the next. Measures what the server sustains.
//   Open loop (rate > 0): one pacing thread starts calls at `rate` per
//   second, on schedule, whatever the latency (a late pacer catches up in a
//   burst rather than lowering the rate). This is the load overload tests
//   need: a slow server does not slow the client down. A client that cannot
//   keep up stops sending at the end of `duration` all the same: the calls
//   still due then are counted (LoadResult::behind_schedule), never sent.
//
// Before the first call it waits up to `connect_timeout` for every channel
// to connect (with a balancer, for one of its replicas), so a wrong target
// fails at once with one error instead of a flood of UNAVAILABLE calls. In a
// closed loop, a lane whose call ends UNAVAILABLE (the server went away, or is
// draining), CANCELLED (the server cut it off) or RESOURCE_EXHAUSTED
// (refused) waits before its next call: for
// the refusal's `grpc-retry-pushback-ms` when it has one, else a backoff that
// doubles from `unavailable_backoff` up to `max_unavailable_backoff` and
// resets on any other outcome; never past the end of the run. The open loop
// keeps its rate, which bounds it already.
//
// It stops starting calls after `duration` or `requests` calls, whichever
// comes first (or on Stop()), and waits for the calls in flight; give calls a
// deadline so that this wait is bounded. Calls go round the channels in turn.
// Latency is measured from the start of a call to its completion callback,
// on a monotonic clock; only OK calls enter the latency histogram, every call
// enters the count of its status code.
//
// Thread-safety: Run() once, from one thread; Stop() from any thread.
#ifndef COMPUTE_CLIENT_LOAD_H_
#define COMPUTE_CLIENT_LOAD_H_

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "client/histogram.h"
#include "client/least_loaded.h"
#include "client/mix.h"  // kMinRate
#include "client/retry_budget.h"
#include "compute/v1/compute.grpc.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"
#include "server/base/status_codes.h"
#include "server/pool/sync.h"

namespace compute::client {

// Once a second while running (if asked), from a reporter thread.
struct LoadProgress {
  absl::Duration elapsed;
  uint64_t sent = 0;
  uint64_t completed = 0;
  uint64_t ok = 0;
  uint64_t refused = 0;  // RESOURCE_EXHAUSTED
  double rate = 0;       // completions per second since the last report
  // p99 of the OK calls since the last report; none when there were none.
  std::optional<int64_t> p99_ns;
};

struct LoadOptions {
  compute::v1::RunRequest request;
  int concurrency = 10;  // closed loop: calls kept in flight
  double rate = 0;       // > 0: open loop, calls started per second
  absl::Duration duration = absl::InfiniteDuration();
  uint64_t requests = 0;  // 0: no limit (then duration must be finite)
  absl::Duration deadline = absl::InfiniteDuration();  // per call
  // When set, every call goes to the replica it chooses (and its result
  // teaches it), instead of going round the channels.
  std::shared_ptr<LeastLoaded> balancer;
  // With a balancer: attempts per call in all. A call that ends
  // RESOURCE_EXHAUSTED or UNAVAILABLE (refused, unreachable, draining), or
  // CANCELLED (never by this generator: by a replica going away) is
  // sent again at once to the replica the balancer chooses then (which
  // avoids the one that failed for its pushback), within the call's first
  // deadline; the call counts once, with its last status, its latency from
  // its first attempt. 1: no retry. Retries are at most 20% of the calls
  // sent, plus 10 or the calls in flight if more (RetryBudget: a window,
  // not a count from the start of the run): past it a call ends with its
  // status.
  // (Without a balancer, retries are gRPC's retry policy on the channel:
  // ChannelOptions::retry.)
  int max_attempts = 1;
  // Request metadata of every call (compute-tenant, compute-priority).
  std::vector<std::pair<std::string, std::string>> metadata;
  std::function<void(const LoadProgress&)> on_progress;
  absl::Duration progress_interval = absl::Seconds(1);
  // Wait this long for every channel to be connected before the first call
  // (0: do not wait).
  absl::Duration connect_timeout = absl::Seconds(10);
  // Closed loop: a lane's pause after an UNAVAILABLE call, or a refused one
  // without a pushback, doubling up to the maximum while its calls keep
  // failing so. (The maximum also bounds how long Stop() waits for a lane
  // pausing for a longer pushback.)
  absl::Duration unavailable_backoff = absl::Milliseconds(10);
  absl::Duration max_unavailable_backoff = absl::Seconds(1);
};

struct LoadResult {
  uint64_t sent = 0;
  // Open loop: calls due before the end of the run that were never sent, the
  // client having fallen behind its schedule (sent + behind_schedule = the
  // calls the rate asked for, unless stopped).
  uint64_t behind_schedule = 0;
  std::array<uint64_t, kNumStatusCodes> codes{};  // index: grpc::StatusCode
  Histogram ok_latency;                           // nanoseconds
  // RESOURCE_EXHAUSTED calls, start to answer: an upper bound of how long
  // the server took to refuse (it includes the round trip).
  Histogram refused_latency;  // nanoseconds
  // First call started -> last call finished, or the end of --time if
  // later and --time ended the run (10 calls at 2/s over --time 5s: their
  // last answer comes at 4.5 s, and they read 2.22/s).
  absl::Duration elapsed;
  absl::Duration send_window;        // first call started -> last call started
  uint64_t retries = 0;              // attempts after the first (max_attempts)
  uint64_t retries_over_budget = 0;  // retries not made: the budget was spent
  size_t request_bytes = 0;          // of each call, serialized
  uint64_t ok_response_bytes = 0;    // of the OK calls' answers, all together
  // With a balancer: each replica's address and the attempts sent to it,
  // replicas that left the target mid-run included.
  std::vector<std::pair<std::string, uint64_t>> replica_calls;
  // A run with no --time stopped before all its --requests: every call had
  // ended UNAVAILABLE for over connect_timeout, from the first of them (the
  // server gone; its lanes, backing off, would send about one call a second
  // each, for hours).
  bool unreachable = false;

  uint64_t count(grpc::StatusCode code) const { return codes[code]; }
  uint64_t completed() const;
  uint64_t ok() const { return count(grpc::StatusCode::OK); }
  uint64_t refused() const {
    return count(grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  // Calls that failed other than by the server's refusal: neither OK nor
  // RESOURCE_EXHAUSTED.
  uint64_t errors() const { return completed() - ok() - refused(); }
  double refused_share() const;  // refused / completed
  double error_share() const;    // errors / completed
  double throughput() const;     // completed calls per second of `elapsed`
  // MB (1e6 bytes) per second of `elapsed` carried by the OK calls: their
  // requests, and their answers.
  double mb_per_s_in() const;
  double mb_per_s_out() const;
  // Calls started per second over the send window: the rate actually
  // offered (open loop: compare with the rate asked for).
  double offered_rate() const;
};

class LoadGenerator {
 public:
  LoadGenerator(std::vector<std::shared_ptr<grpc::Channel>> channels,
                LoadOptions options);
  ~LoadGenerator();
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Runs the load to its end and returns what happened. InvalidArgument
  // for bad options, UnavailableError when a channel does not connect within
  // `connect_timeout` (nothing is sent either way). Call once.
  absl::StatusOr<LoadResult> Run();

  // The channels the load goes over (to ask one why it did not connect).
  const std::vector<std::shared_ptr<grpc::Channel>>& channels() const {
    return channels_;
  }

  // Stops starting calls; Run() returns once those in flight finish.
  void Stop();

 private:
  using SteadyClock = std::chrono::steady_clock;
  struct Call;
  struct Pause;

  absl::Status Validate() const;
  absl::Status WaitForConnections();
  int64_t NowNs() const;
  // Not stopped and within --time: calls may still start.
  bool RunOpen() const;
  // Claims the right to start one more call (requests, duration, Stop).
  bool Claim();
  // `backoff`: the closed-loop lane's current pause after UNAVAILABLE.
  // `scheduled_ns` (open loop): when the call was due; its latency counts
  // from then, so a client that falls behind its schedule shows the delay
  // in the percentiles instead of hiding it (coordinated omission).
  void StartCall(absl::Duration backoff = absl::ZeroDuration(),
                 std::optional<int64_t> scheduled_ns = std::nullopt);
  // Sends `call` (new, or another attempt of one) and counts it sent.
  void Send(Call* call);
  void OnDone(Call* call, const grpc::Status& status);
  // With a balancer and attempts left: sends `call` again as a new attempt
  // (it stays in flight) and returns true.
  bool Retry(Call* call, const grpc::Status& status);
  // Whether a lane may still claim a call: not stopped, within --time, and
  // with --requests not all claimed.
  bool MayClaim() const;
  // Whether the run would still send calls: MayClaim for the closed loop;
  // for the open loop, not stopped, within --time, and --requests not all
  // sent.
  bool CallsToCome() const;
  // Closed loop: the lane pauses for `wait` (never past the end of the
  // run), then goes on with `backoff` as its own. False if the run is over
  // (the lane ends now).
  bool PauseLane(absl::Duration wait, absl::Duration backoff);
  // One step of a pause that ends at `until_ns`: at most
  // max_unavailable_backoff, so that Stop() ends a long one soon.
  void PauseStep(absl::Duration backoff, int64_t until_ns);
  // A call or a pausing lane is over: one less in flight.
  void CountOut();
  // Waits (interruptibly) until NowNs() >= due_ns; false once stopped.
  bool SleepUntil(int64_t due_ns);
  // Open loop: the calls the schedule has before the end of the run (and
  // --requests), at `period_ns` apart.
  uint64_t ScheduledCalls(double period_ns) const;
  void Pace();
  void Report();
  // The counts now, and in `ok_now` the OK calls' latencies (whose count
  // is the line's OK calls).
  LoadProgress Progress(const Histogram& ok_before, uint64_t completed_before,
                        absl::Duration interval, Histogram* ok_now);
  uint64_t Completed() const;

  const LoadOptions options_;
  std::vector<std::shared_ptr<grpc::Channel>> channels_;
  std::vector<std::unique_ptr<grpc::GenericStub>> stubs_;
  grpc::ByteBuffer request_bytes_;  // options_.request, serialized once
  SteadyClock::time_point start_;
  int64_t end_ns_ = INT64_MAX;    // stop starting calls at this offset
  uint64_t behind_schedule_ = 0;  // written by Pace, on Run's thread

  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> claimed_{0};
  std::atomic<uint64_t> sent_{0};
  std::atomic<uint64_t> retries_{0};
  std::atomic<uint64_t> retries_refused_{0};
  RetryBudget retry_budget_;
  std::atomic<uint64_t> ok_response_bytes_{0};
  std::atomic<uint64_t> next_channel_{0};
  std::atomic<int64_t> last_start_ns_{0};
  std::atomic<int64_t> last_done_ns_{0};
  // When the current streak of calls ending UNAVAILABLE began (-1: none),
  // and whether the run stopped for a streak that lasted too long.
  std::atomic<int64_t> unavailable_since_ns_{-1};
  std::atomic<bool> unreachable_{false};
  std::array<std::atomic<uint64_t>, kNumStatusCodes> codes_{};
  ConcurrentHistogram ok_latency_;
  ConcurrentHistogram refused_latency_;

  Mutex mu_;
  CondVar cv_;  // signalled on Stop, on the last completion, and on finish
  // Calls in flight, and closed-loop lanes pausing between two calls.
  uint64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool sending_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_LOAD_H_
