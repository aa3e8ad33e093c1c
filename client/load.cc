#include "client/load.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <optional>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/deadline.h"
#include "client/jitter.h"
#include "grpcpp/alarm.h"
#include "grpcpp/impl/codegen/proto_utils.h"

namespace compute::client {
namespace {

constexpr char kRunMethod[] = "/compute.v1.Compute/Run";

// The longest pushback a lane honours: the most compute-server asks, and
// least_loaded honours (the wait itself is then stretched by up to 20%,
// client/jitter.h).
constexpr absl::Duration kMaxPushbackWait = absl::Seconds(10);

// How late a retry's alarm may fire: gRPC's timers run on a cached
// millisecond clock, and a busy machine wakes the thread later still.
constexpr absl::Duration kRetryAlarmSlack = absl::Milliseconds(5);

// The most of a failed attempt's time that a retry must have left: its
// round trip, as far as the attempt tells it. An attempt that took longer
// waited on its replica (queued, then displaced; held until a drain cut it
// off), which another replica does not repeat.
constexpr absl::Duration kRetryRoundTripCap = absl::Milliseconds(10);

// A refusal's pushback when it asks for a wait, at most kMaxPushbackWait;
// a negative one asks for no retry (a bench lane still goes on:
// AsksForNoRetry).
std::optional<absl::Duration> Pushback(const grpc::ClientContext& context) {
  const std::optional<int64_t> ms = PushbackMs(context);
  if (!ms.has_value() || *ms < 0) return std::nullopt;
  return std::min(absl::Milliseconds(*ms), kMaxPushbackWait);
}

// How long until a replica of `balancer` is open again, at most
// kMaxPushbackWait: the balancer's own answer can be longer than any
// pushback (a replica silent for a while, even one that has left the
// target, is avoided up to 30 s).
absl::Duration UntilOneIsOpen(const LeastLoaded& balancer) {
  return std::min(balancer.UntilOneIsOpen(), kMaxPushbackWait);
}

bool AsksForNoRetry(const grpc::ClientContext& context) {
  const std::optional<int64_t> ms = PushbackMs(context);
  return ms.has_value() && *ms < 0;
}

void AtomicMax(std::atomic<int64_t>& a, int64_t v) {
  int64_t seen = a.load(std::memory_order_relaxed);
  while (v > seen &&
         !a.compare_exchange_weak(seen, v, std::memory_order_relaxed)) {
  }
}

}  // namespace

struct LoadGenerator::Call {
  grpc::ClientContext context;
  grpc::ByteBuffer response;  // not parsed: the load needs its size only
  std::shared_ptr<LeastLoaded::Replica> replica;  // with a balancer
  int64_t start_ns = 0;                           // of the first attempt
  // MonotonicNow() time (client/deadline.h), set at the first attempt: what
  // is left of it goes to gRPC with each attempt.
  absl::Time deadline = absl::InfiniteFuture();
  int attempt = 1;
  absl::Time attempt_sent;  // MonotonicNow() time this attempt was sent
  absl::Duration backoff;   // the lane's, closed loop
  // A retry's wait for a replica to be open again (the pushback of the
  // refusals), when every replica is avoided.
  std::unique_ptr<grpc::Alarm> retry_alarm;
};

struct LoadGenerator::Pause {
  grpc::Alarm alarm;
  absl::Duration backoff;
  int64_t until_ns = 0;
};

uint64_t LoadResult::completed() const {
  uint64_t n = 0;
  for (uint64_t c : codes) n += c;
  return n;
}

double LoadResult::refused_share() const {
  uint64_t n = completed();
  return n == 0 ? 0 : static_cast<double>(refused()) / static_cast<double>(n);
}

double LoadResult::error_share() const {
  uint64_t n = completed();
  return n == 0 ? 0 : static_cast<double>(errors()) / static_cast<double>(n);
}

double LoadResult::throughput() const {
  double s = absl::ToDoubleSeconds(elapsed);
  return s <= 0 ? 0 : static_cast<double>(completed()) / s;
}

double LoadResult::mb_per_s_in() const {
  const double s = absl::ToDoubleSeconds(elapsed);
  return s <= 0 ? 0
                : static_cast<double>(ok()) *
                      static_cast<double>(request_bytes) / s / 1e6;
}

double LoadResult::mb_per_s_out() const {
  const double s = absl::ToDoubleSeconds(elapsed);
  return s <= 0 ? 0 : static_cast<double>(ok_response_bytes) / s / 1e6;
}

double LoadResult::offered_rate() const {
  double s = absl::ToDoubleSeconds(send_window);
  return sent < 2 || s <= 0 ? 0 : static_cast<double>(sent - 1) / s;
}

LoadGenerator::LoadGenerator(
    std::vector<std::shared_ptr<grpc::Channel>> channels, LoadOptions options)
    : options_(std::move(options)), channels_(std::move(channels)) {
  bool own_buffer = false;
  grpc::Status serialized =
      grpc::SerializationTraits<compute::v1::RunRequest>::Serialize(
          options_.request, &request_bytes_, &own_buffer);
  assert(serialized.ok());
  (void)serialized;
  for (const auto& channel : channels_) {
    stubs_.push_back(std::make_unique<grpc::GenericStub>(channel));
  }
}

// Run() returns only once every call has completed, so no callback can
// still reach this object.
LoadGenerator::~LoadGenerator() = default;

absl::Status LoadGenerator::Validate() const {
  const LoadOptions& o = options_;
  if (stubs_.empty()) return absl::InvalidArgumentError("no channels");
  // 0 is a closed loop.
  if (!(o.rate >= 0) || !std::isfinite(o.rate) || o.rate > 1e6 ||
      (o.rate > 0 && o.rate < kMinRate)) {
    return absl::InvalidArgumentError(
        "--rate must be 0 or between 0.001 and 1000000");
  }
  if (o.rate == 0 && (o.concurrency < 1 || o.concurrency > 1000000)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--concurrency must be between 1 and 1000000 (got ",
                     o.concurrency, ")"));
  }
  if (o.duration <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--time must be > 0 (got ", absl::FormatDuration(o.duration), ")"));
  }
  if (o.requests == 0 && o.duration == absl::InfiniteDuration()) {
    // bench's --time has a default: only --time inf gets here.
    return absl::InvalidArgumentError(
        "--time inf needs --requests N (a run must end)");
  }
  if (o.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--deadline must be > 0");
  }
  if (o.progress_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("progress interval must be > 0");
  }
  if (o.connect_timeout < absl::ZeroDuration()) {
    return absl::InvalidArgumentError("--connect_timeout must be >= 0");
  }
  if (o.unavailable_backoff <= absl::ZeroDuration() ||
      o.max_unavailable_backoff < o.unavailable_backoff) {
    return absl::InvalidArgumentError(
        "the UNAVAILABLE backoff must be > 0 and at most its maximum");
  }
  return absl::OkStatus();
}

absl::Status LoadGenerator::WaitForConnections() {
  if (options_.connect_timeout == absl::ZeroDuration()) {
    return absl::OkStatus();
  }
  const absl::Time deadline = DeadlineAfter(options_.connect_timeout);
  const absl::Status none = absl::UnavailableError(absl::StrCat(
      "no connection within ", absl::FormatDuration(options_.connect_timeout)));
  if (options_.balancer == nullptr) {
    for (const auto& channel : channels_) {
      if (!channel->WaitForConnected(ToGrpcDeadline(deadline))) return none;
    }
    return absl::OkStatus();
  }
  // One replica each: one up is enough, the balancer avoids the others
  // (waiting for all, one replica down stopped the run it is there for).
  // But not the first one up alone: the others still connecting get a
  // moment (kOthersGrace) to come up too, so that the first calls are
  // spread over them; a replica that failed is not waited for. (Starting at
  // the first, a short run under load sent every call to it.)
  constexpr absl::Duration kOthersGrace = absl::Seconds(1);
  std::optional<absl::Time> first_ready;
  while (true) {
    bool all_settled = true;
    for (const auto& channel : channels_) {
      switch (channel->GetState(/*try_to_connect=*/true)) {
        case GRPC_CHANNEL_READY:
          if (!first_ready) first_ready = MonotonicNow();
          break;
        case GRPC_CHANNEL_TRANSIENT_FAILURE:
        case GRPC_CHANNEL_SHUTDOWN:
          break;
        default:  // idle or connecting
          all_settled = false;
      }
    }
    if (first_ready &&
        (all_settled || MonotonicNow() - *first_ready >= kOthersGrace)) {
      return absl::OkStatus();
    }
    const absl::Duration left = TimeLeft(deadline);
    if (left <= absl::ZeroDuration()) {
      return first_ready ? absl::OkStatus() : none;
    }
    // Woken by the first replica's next state change, or to look again at
    // the others in 10 ms.
    const auto& first = channels_.front();
    first->WaitForStateChange(
        first->GetState(false),
        ToGrpcDeadline(DeadlineAfter(std::min(left, absl::Milliseconds(10)))));
  }
}

int64_t LoadGenerator::NowNs() const {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             SteadyClock::now() - start_)
      .count();
}

bool LoadGenerator::RunOpen() const {
  return !stop_.load(std::memory_order_acquire) && NowNs() < end_ns_;
}

bool LoadGenerator::Claim() {
  if (!RunOpen()) return false;
  return options_.requests == 0 ||
         claimed_.fetch_add(1, std::memory_order_relaxed) < options_.requests;
}

void LoadGenerator::StartCall(absl::Duration backoff,
                              std::optional<int64_t> scheduled_ns) {
  auto* call = new Call;
  call->backoff = backoff;
  call->deadline = DeadlineAfter(options_.deadline);
  uint64_t in_flight;
  {
    MutexLock lock(&mu_);
    in_flight = ++in_flight_;
  }
  const int64_t now = NowNs();
  call->start_ns = scheduled_ns ? std::min(*scheduled_ns, now) : now;
  AtomicMax(last_start_ns_, now);
  sent_.fetch_add(1, std::memory_order_relaxed);
  retry_budget_.Sent(in_flight);
  Send(call);
}

void LoadGenerator::Send(Call* call) {
  call->attempt_sent = MonotonicNow();
  // What is left of the call's deadline, now: a later attempt has less.
  if (call->deadline != absl::InfiniteFuture()) {
    call->context.set_deadline(ToGrpcDeadline(call->deadline));
  }
  for (const auto& [key, value] : options_.metadata) {
    call->context.AddMetadata(key, value);
  }
  std::optional<grpc::GenericStub> replica_stub;
  grpc::GenericStub* stub;
  if (options_.balancer != nullptr) {
    call->replica = options_.balancer->Choose();
    stub = &replica_stub.emplace(call->replica->channel());
  } else {
    stub = stubs_[next_channel_.fetch_add(1, std::memory_order_relaxed) %
                  stubs_.size()]
               .get();
  }
  // Every call sends the same bytes, serialized once: a 16 MiB blur is not
  // copied per call (the buffer's slices are shared, by reference count).
  stub->UnaryCall(&call->context, kRunMethod, grpc::StubOptions(),
                  &request_bytes_, &call->response,
                  [this, call](grpc::Status status) { OnDone(call, status); });
}

bool LoadGenerator::Retry(Call* call, const grpc::Status& status) {
  const int code = status.error_code();
  // CANCELLED too: this generator never cancels a call, so a CANCELLED one
  // was cancelled by the replica or the transport (a replica shutting down
  // resets the streams it has not answered with RST_STREAM CANCEL).
  if (options_.balancer == nullptr || call->attempt >= options_.max_attempts ||
      (code != grpc::StatusCode::RESOURCE_EXHAUSTED &&
       code != grpc::StatusCode::UNAVAILABLE &&
       code != grpc::StatusCode::CANCELLED) ||
      TimeLeft(call->deadline) <= absl::ZeroDuration()) {
    return false;
  }
  // A refusal whose pushback is negative asks for no retry (gRFC A6): the
  // call does not fit its deadline anywhere.
  if (code == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      AsksForNoRetry(call->context)) {
    return false;
  }
  // Nor does a message over a size limit fit any replica (until
  // 2026-12-07 it was retried to the end of the retry budget).
  if (IsMessageTooLarge(status)) return false;
  // Every replica asked for a pause (the pushback of its refusal, or 1 s
  // after UNAVAILABLE): the retry waits for the first to end, not go at once
  // to one that asked to be left alone; not past the call's deadline.
  // Nor past the end of the run, nor after Stop(): Run() waits for every
  // call, and a wait of up to 10 s a retry would hold it that long.
  // Stretched a little: the retries of calls refused together would all
  // go at the instant the pause ends (client/jitter.h).
  const absl::Duration wait = Jittered(UntilOneIsOpen(*options_.balancer));
  // And only with time for an answer once it is sent: at least the failed
  // attempt's round trip (at most kRetryRoundTripCap), and the alarm's
  // lateness after a wait. A retry sent with a sliver of its deadline ends
  // DEADLINE_EXCEEDED where the call, not retried, ended refused, which
  // tells the caller less and counts as a failure that the refusal is not.
  const absl::Duration needed =
      std::min(MonotonicNow() - call->attempt_sent, kRetryRoundTripCap) +
      (wait > absl::ZeroDuration() ? kRetryAlarmSlack : absl::ZeroDuration());
  if (TimeLeft(call->deadline) - wait < needed) return false;
  if (wait > absl::ZeroDuration() &&
      (stop_.load(std::memory_order_acquire) ||
       NowNs() + absl::ToInt64Nanoseconds(wait) >= end_ns_)) {
    return false;
  }
  // The retry budget: when every replica refuses, retries would multiply
  // the load the fleet is already refusing.
  if (!retry_budget_.TrySpend()) {
    retries_refused_.fetch_add(1, std::memory_order_relaxed);
    return false;
  }
  // A ClientContext serves one call: the next attempt is a new Call object
  // that carries the first one's start, deadline and lane.
  auto* next = new Call;
  next->start_ns = call->start_ns;
  next->deadline = call->deadline;
  next->attempt = call->attempt + 1;
  next->backoff = call->backoff;
  delete call;
  retries_.fetch_add(1, std::memory_order_relaxed);
  if (wait <= absl::ZeroDuration()) {
    Send(next);
    return true;
  }
  next->retry_alarm = std::make_unique<grpc::Alarm>();
  next->retry_alarm->Set(ToGrpcDeadline(DeadlineAfter(wait)),
                         [this, next](bool) { Send(next); });
  return true;
}

void LoadGenerator::OnDone(Call* call, const grpc::Status& status) {
  if (call->replica != nullptr) {
    options_.balancer->Done(*call->replica, status, call->context);
  }
  int code = status.error_code();
  if (code < 0 || code >= kNumStatusCodes) code = grpc::StatusCode::UNKNOWN;
  if (Retry(call, status)) return;
  int64_t now = NowNs();
  // Counted before its latency is recorded, and Progress() reads the
  // latencies first, so a progress line never counts more OK calls than
  // calls done (until 2026-12-05 it could, by the calls in between).
  codes_[code].fetch_add(1, std::memory_order_relaxed);
  // Pairs with the acquire fence in Progress(): who sees this latency sees
  // the count above.
  std::atomic_thread_fence(std::memory_order_release);
  if (code == grpc::StatusCode::OK) {
    ok_latency_.Record(now - call->start_ns);
    ok_response_bytes_.fetch_add(call->response.Length(),
                                 std::memory_order_relaxed);
  }
  if (code == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    refused_latency_.Record(now - call->start_ns);
  }
  AtomicMax(last_done_ns_, now);
  if (code != grpc::StatusCode::UNAVAILABLE) {
    unavailable_since_ns_.store(-1);  // the streak, if any, has ended
  } else if (end_ns_ == INT64_MAX &&
             options_.connect_timeout > absl::ZeroDuration()) {
    // The streak of UNAVAILABLE answers starts with its first (a long call
    // that fails, the server killed and back at once, is one UNAVAILABLE,
    // not a server gone since the last answer before it).
    int64_t since = -1;
    unavailable_since_ns_.compare_exchange_strong(since, now);
    since = unavailable_since_ns_.load();
    // Evidence only from a call sent after the streak began: one sent
    // before may have run long on a replica a rolling restart then took
    // away, while others served on.
    if (since >= 0 && call->start_ns >= since &&
        now - since > absl::ToInt64Nanoseconds(options_.connect_timeout) &&
        CallsToCome()) {
      // Only --requests bounds this run, calls are still to come, and
      // every answer for longer than a connection may take said the server
      // is gone: stop, and say so.
      unreachable_.store(true);
      Stop();
    }
  }
  absl::Duration backoff = call->backoff;
  // How long the server asked this lane to wait. With a balancer, the
  // refusal's pushback is its replica's, which the balancer avoids for that
  // long: the lane waits only while every replica is avoided.
  // A pushback of -1 refuses the call itself (it does not fit its deadline
  // anywhere), as does a message over a size limit, so no replica is
  // avoided for it: the lane backs off as after a refusal without a
  // pushback, or it would resend at once.
  std::optional<absl::Duration> pushback;
  if (code == grpc::StatusCode::RESOURCE_EXHAUSTED &&
      !AsksForNoRetry(call->context) && !IsMessageTooLarge(status)) {
    pushback = options_.balancer != nullptr ? UntilOneIsOpen(*options_.balancer)
                                            : Pushback(call->context);
  }
  delete call;
  // Closed loop: this lane goes on (with a new call, or a pause that stays
  // counted in flight) before it counts this call out, so in_flight_ reaches
  // 0 only when every lane has stopped. A refused or undelivered call is
  // followed by a pause: resent at once, a refused lane only made more
  // calls to refuse (1 worker, no queue, 3 lanes of 100 ms sleeps: 7,303
  // calls in 2 s, 19 OK).
  if (options_.rate == 0) {
    absl::Duration wait;
    if (pushback) {
      wait = *pushback;
    } else if (code == grpc::StatusCode::UNAVAILABLE ||
               code == grpc::StatusCode::RESOURCE_EXHAUSTED ||
               // bench never cancels a call itself: the server cut it off
               // (one shutting down cancels what it had not started)
               code == grpc::StatusCode::CANCELLED) {
      backoff = backoff == absl::ZeroDuration()
                    ? options_.unavailable_backoff
                    : std::min(2 * backoff, options_.max_unavailable_backoff);
      wait = backoff;
    } else {
      backoff = absl::ZeroDuration();  // any other outcome resets it
    }
    if (wait > absl::ZeroDuration()) {
      if (PauseLane(Jittered(wait), backoff)) return;  // client/jitter.h
    } else if (Claim()) {
      StartCall(backoff);
    }
  }
  CountOut();
}

bool LoadGenerator::CallsToCome() const {
  // An open loop sends what Pace schedules, claiming nothing.
  if (options_.rate > 0) {
    return RunOpen() &&
           (options_.requests == 0 ||
            sent_.load(std::memory_order_relaxed) < options_.requests);
  }
  return MayClaim();
}

bool LoadGenerator::MayClaim() const {
  return RunOpen() &&
         (options_.requests == 0 ||
          claimed_.load(std::memory_order_relaxed) < options_.requests);
}

bool LoadGenerator::PauseLane(absl::Duration wait, absl::Duration backoff) {
  // Not when no call is left to claim: the lane would only wait out its
  // pause, up to 12 s, after the run's last answer (until 2026-12-07 it
  // did, and a pause that reached --time made the run count as ended by
  // it, its elapsed time --time's).
  if (!MayClaim()) return false;
  const int64_t now = NowNs();
  PauseStep(backoff,
            now + std::min(absl::ToInt64Nanoseconds(wait), end_ns_ - now));
  return true;
}

void LoadGenerator::PauseStep(absl::Duration backoff, int64_t until_ns) {
  auto* pause = new Pause;
  pause->backoff = backoff;
  pause->until_ns = until_ns;
  // Stop() does not cut an alarm short, and a pushback may ask for 10 s:
  // steps of at most max_unavailable_backoff, each the last once stopped.
  const int64_t step_ns = std::clamp<int64_t>(
      until_ns - NowNs(), 0,
      absl::ToInt64Nanoseconds(options_.max_unavailable_backoff));
  const gpr_timespec step_end =
      ToGrpcDeadline(DeadlineAfter(absl::Nanoseconds(step_ns)));
  pause->alarm.Set(step_end, [this, pause](bool) {
    const absl::Duration lane_backoff = pause->backoff;
    const int64_t until = pause->until_ns;
    delete pause;
    if (MayClaim() && NowNs() < until) {
      PauseStep(lane_backoff, until);  // still counted in flight
      return;
    }
    if (Claim()) StartCall(lane_backoff);
    CountOut();
  });
}

void LoadGenerator::CountOut() {
  MutexLock lock(&mu_);
  if (--in_flight_ == 0 && sending_done_) cv_.SignalAll();
}

bool LoadGenerator::SleepUntil(int64_t due_ns) {
  MutexLock lock(&mu_);
  while (!stop_.load(std::memory_order_acquire) && NowNs() < due_ns) {
    cv_.WaitWithTimeout(&mu_, absl::Nanoseconds(due_ns - NowNs()));
  }
  return !stop_.load(std::memory_order_acquire);
}

uint64_t LoadGenerator::ScheduledCalls(double period_ns) const {
  const uint64_t requests =
      options_.requests > 0 ? options_.requests : UINT64_MAX;
  if (end_ns_ == INT64_MAX) return requests;  // no --time
  // Call i is due at round(i * period), before the end while i * period <
  // end - 0.5: the first i past it, from its estimate corrected for the
  // rounding of doubles (a step or two at most).
  const double end = static_cast<double>(end_ns_) - 0.5;
  auto due_before_end = [&](uint64_t i) {
    return static_cast<double>(i) * period_ns < end;
  };
  uint64_t i = static_cast<uint64_t>(std::max(0.0, std::ceil(end / period_ns)));
  while (i > 0 && !due_before_end(i - 1)) --i;
  while (due_before_end(i)) ++i;
  return std::min(requests, i);
}

void LoadGenerator::Pace() {
  const double period_ns = 1e9 / options_.rate;
  const uint64_t scheduled = ScheduledCalls(period_ns);
  for (uint64_t i = 0; i < scheduled; ++i) {
    const int64_t due = std::llround(static_cast<double>(i) * period_ns);
    // Behind schedule (a late wake-up), SleepUntil returns at once until the
    // loop has caught up, so the rate over the run is the rate asked for.
    if (!SleepUntil(due)) return;
    // But not past the end of the run: a client that could not keep up sent
    // on for as long as it took (--rate 1000000 --time 50ms ran 2.77 s).
    // What is still due then is counted, not sent.
    if (NowNs() >= end_ns_) {
      behind_schedule_ = scheduled - i;
      return;
    }
    StartCall(absl::ZeroDuration(), due);
  }
}

uint64_t LoadGenerator::Completed() const {
  uint64_t n = 0;
  for (const auto& c : codes_) n += c.load(std::memory_order_relaxed);
  return n;
}

LoadProgress LoadGenerator::Progress(const Histogram& ok_before,
                                     uint64_t completed_before,
                                     absl::Duration interval,
                                     Histogram* ok_now) {
  LoadProgress p;
  p.elapsed = absl::Nanoseconds(NowNs());
  // The OK count and the p99 from one snapshot of the OK calls' latencies,
  // so a line shows a p99 exactly when it counts new OK calls. Until
  // 2026-12-05 the count came from the status counters, read after the
  // snapshot: a call counted in one line could have its latency only in
  // the next, a line with no new OK call showing a p99 (an ASan CI run of
  // BenchTest.ProgressOfAnIntervalWithoutOkCallsHasNoP99). The snapshot
  // comes first: every call in it is already counted as done (OnDone).
  *ok_now = ok_latency_.Snapshot();
  std::atomic_thread_fence(std::memory_order_acquire);
  p.ok = ok_now->count();
  p.sent = sent_.load(std::memory_order_relaxed);
  p.completed = Completed();
  p.refused = codes_[grpc::StatusCode::RESOURCE_EXHAUSTED].load(
      std::memory_order_relaxed);
  p.rate = static_cast<double>(p.completed - completed_before) /
           absl::ToDoubleSeconds(interval);
  const Histogram interval_ok = ok_now->Since(ok_before);
  if (interval_ok.count() > 0) p.p99_ns = interval_ok.Percentile(0.99);
  return p;
}

void LoadGenerator::Report() {
  const int64_t interval_ns =
      absl::ToInt64Nanoseconds(options_.progress_interval);
  // Empty, as the recorder starts: calls that end before this thread runs
  // are in the first line.
  Histogram before;
  uint64_t completed_before = 0;
  int64_t last = 0;
  for (int64_t next = interval_ns;; next += interval_ns) {
    {
      MutexLock lock(&mu_);
      while (!finished_ && NowNs() < next) {
        cv_.WaitWithTimeout(&mu_, absl::Nanoseconds(next - NowNs()));
      }
      if (finished_) return;
    }
    int64_t now = NowNs();
    Histogram ok_now;
    LoadProgress p = Progress(before, completed_before,
                              absl::Nanoseconds(now - last), &ok_now);
    options_.on_progress(p);
    before = std::move(ok_now);
    completed_before = p.completed;
    last = now;
  }
}

void LoadGenerator::Stop() {
  stop_.store(true, std::memory_order_release);
  MutexLock lock(&mu_);
  cv_.SignalAll();
}

absl::StatusOr<LoadResult> LoadGenerator::Run() {
  if (absl::Status s = Validate(); !s.ok()) return s;
  if (absl::Status s = WaitForConnections(); !s.ok()) return s;
  start_ = SteadyClock::now();
  if (options_.duration != absl::InfiniteDuration()) {
    end_ns_ = absl::ToInt64Nanoseconds(options_.duration);
  }
  std::thread reporter;
  if (options_.on_progress) reporter = std::thread([this] { Report(); });

  if (options_.rate > 0) {
    Pace();
  } else {
    for (int i = 0; i < options_.concurrency && Claim(); ++i) StartCall();
  }
  {
    MutexLock lock(&mu_);
    sending_done_ = true;
    while (in_flight_ > 0) cv_.Wait(&mu_);
    finished_ = true;
    cv_.SignalAll();
  }
  // A run that --time ended lasts --time, though its last answer may come
  // before the end (an open loop's last call is due a period before it;
  // lanes may wait out a backoff). Not when --requests or Stop ended it
  // (an open loop's --requests: see schedule_ns).
  const bool all_requests =
      options_.requests > 0 &&
      (options_.rate > 0
           ? sent_.load(std::memory_order_relaxed) + behind_schedule_ >=
                 options_.requests
           : claimed_.load(std::memory_order_relaxed) >= options_.requests);
  const bool ended_by_time = end_ns_ != INT64_MAX &&
                             !stop_.load(std::memory_order_acquire) &&
                             !all_requests;
  if (reporter.joinable()) reporter.join();

  LoadResult result;
  result.sent = sent_.load(std::memory_order_relaxed);
  result.behind_schedule = behind_schedule_;
  for (int i = 0; i < kNumStatusCodes; ++i) {
    result.codes[i] = codes_[i].load(std::memory_order_relaxed);
  }
  result.ok_latency = ok_latency_.Snapshot();
  result.refused_latency = refused_latency_.Snapshot();
  // An open loop that --requests ended lasts its schedule, a period for
  // each call (as one that --time ended lasts --time): --rate 2 --requests
  // 10 is 5 s of 2/s, though its last answer came at 4.5 s (2.22/s).
  const int64_t schedule_ns =
      options_.rate > 0 && all_requests
          ? std::llround(static_cast<double>(result.sent + behind_schedule_) *
                         1e9 / options_.rate)
          : 0;
  result.elapsed = absl::Nanoseconds(
      std::max({last_done_ns_.load(), ended_by_time ? end_ns_ : int64_t{0},
                schedule_ns}));
  result.send_window = absl::Nanoseconds(last_start_ns_.load());
  result.unreachable = unreachable_.load();
  result.retries = retries_.load(std::memory_order_relaxed);
  result.retries_over_budget = retries_refused_.load(std::memory_order_relaxed);
  result.request_bytes = request_bytes_.Length();
  result.ok_response_bytes = ok_response_bytes_.load(std::memory_order_relaxed);
  if (options_.balancer != nullptr) {
    result.replica_calls = options_.balancer->CallsPerAddress();
  }
  return result;
}

}  // namespace compute::client
