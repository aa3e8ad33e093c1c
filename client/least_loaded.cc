#include "client/least_loaded.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/target.h"
#include "grpcpp/create_channel.h"

namespace compute::client {

int64_t SteadyNowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

namespace {

// The value of `key` in trailing metadata, or "".
std::string Trailer(const grpc::ClientContext& context, const char* key) {
  const auto& trailers = context.GetServerTrailingMetadata();
  auto it = trailers.find(key);
  if (it == trailers.end()) return "";
  return std::string(it->second.data(), it->second.size());
}

}  // namespace

std::optional<int64_t> PushbackMs(const grpc::ClientContext& context) {
  int64_t ms = 0;
  if (!absl::SimpleAtoi(Trailer(context, "grpc-retry-pushback-ms"), &ms)) {
    return std::nullopt;
  }
  return ms;
}

bool IsMessageTooLarge(const grpc::Status& status) {
  return status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED &&
         absl::StrContains(status.error_message(), "message larger than max (");
}

bool ParseLoad(const std::string& text, double* load, int* workers) {
  bool have_load = false;
  *workers = 1;
  for (absl::string_view pair : absl::StrSplit(text, ',')) {
    if (absl::ConsumePrefix(&pair, "application_utilization=")) {
      // SimpleAtod reads "inf" too, and an infinite load never ages (inf
      // halved is inf): the replica would not be chosen again while another
      // was open.
      have_load =
          absl::SimpleAtod(pair, load) && std::isfinite(*load) && *load >= 0;
      // A report ages by halving: one of 1e300 would count for ~8 minutes.
      // At most kMaxReportedLoad (a queue a million targets long) it fades
      // below 1 within ~10 s.
      *load = std::min(*load, kMaxReportedLoad);
    } else if (absl::ConsumePrefix(&pair, "workers=")) {
      if (!absl::SimpleAtoi(pair, workers) || *workers < 1) *workers = 1;
    }
  }
  return have_load;
}

absl::StatusOr<std::vector<std::string>> ResolveTarget(
    const std::string& target) {
  const TargetParts parts = SplitTarget(target);
  if (parts.kind == TargetParts::Kind::kAddressList) {
    std::vector<std::string> addresses;
    for (absl::string_view a : parts.addresses) {
      std::string address = absl::StrCat(parts.scheme, a);
      // One replica per address: listed twice, it is not two replicas.
      if (std::find(addresses.begin(), addresses.end(), address) ==
          addresses.end()) {
        addresses.push_back(std::move(address));
      }
    }
    if (addresses.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--target '", target, "' lists no address"));
    }
    return addresses;
  }
  // The system's resolver looks the name up, not a DNS server of the
  // target's choosing (dns://authority/).
  const HostPort split = parts.kind == TargetParts::Kind::kName &&
                                 parts.authority.empty() &&
                                 parts.addresses.size() == 1
                             ? SplitHostPort(parts.addresses[0])
                             : HostPort{};
  if (!split.has_port || split.host.empty() || split.port.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lb least_loaded needs a target like host:port, dns:///host:port "
        "or ipv4:a:p,b:q (got '",
        target, "')"));
  }
  const std::string host(split.host);
  const std::string port(split.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
      rc != 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve ", host, ": ", gai_strerror(rc)));
  }
  std::set<std::string> seen;
  std::vector<std::string> addresses;
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    std::string address;
    if (a->ai_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(a->ai_addr);
      inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text));
      address = absl::StrCat("ipv4:", text, ":", ntohs(in->sin_port));
    } else if (a->ai_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(a->ai_addr);
      inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text));
      address = absl::StrCat("ipv6:[", text, "]:", ntohs(in6->sin6_port));
    } else {
      continue;
    }
    if (seen.insert(address).second) addresses.push_back(address);
  }
  freeaddrinfo(found);
  if (addresses.empty()) {
    return absl::UnavailableError(absl::StrCat("no address for ", host));
  }
  return addresses;
}

absl::StatusOr<std::unique_ptr<LeastLoaded>> LeastLoaded::Create(
    const ChannelOptions& options, absl::Duration resolve_interval,
    Resolver resolver, NowNs now_ns) {
  // Here, once, so that a bad --ca says so, not "cannot make a channel to"
  // each replica.
  if (absl::Status tls = CheckCredentials(options); !tls.ok()) return tls;
  if (absl::Status ports = CheckTargetPorts(options.target); !ports.ok()) {
    return ports;
  }
  if (!resolver) return absl::InvalidArgumentError("no resolver");
  if (!now_ns) return absl::InvalidArgumentError("no clock");
  std::unique_ptr<LeastLoaded> balancer(new LeastLoaded(
      options, resolve_interval, std::move(resolver), std::move(now_ns)));
  absl::StatusOr<std::vector<std::string>> addresses =
      balancer->resolve_(options.target);
  if (!addresses.ok()) return addresses.status();
  {
    MutexLock lock(&balancer->mu_);
    for (const std::string& address : *addresses) {
      auto replica = balancer->NewReplica(address);
      if (replica == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot make a channel to ", address));
      }
      balancer->replicas_.push_back(std::move(replica));
    }
  }
  balancer->resolver_ = std::thread(&LeastLoaded::ResolveLoop, balancer.get());
  return balancer;
}

namespace {

// Each replica's channel dials one address, so TLS would verify the
// certificate against that IP address: it verifies the target's host name
// instead, as a channel to the whole target does (until 2026-12-06 a
// Kubernetes Service's certificate, which names the Service, failed every
// replica with "no connection within 10s", a review's finding).
ChannelOptions ForReplicas(ChannelOptions options) {
  if (UsesTls(options) && options.server_name.empty()) {
    options.server_name = TargetHostName(options.target);
  }
  return options;
}

}  // namespace

LeastLoaded::LeastLoaded(ChannelOptions options, absl::Duration interval,
                         Resolver resolver, NowNs now_ns)
    : options_(ForReplicas(std::move(options))),
      resolve_interval_(interval),
      resolve_(std::move(resolver)),
      now_ns_(std::move(now_ns)),
      random_(std::random_device{}()) {}

LeastLoaded::~LeastLoaded() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
    stop_cv_.SignalAll();
  }
  if (resolver_.joinable()) resolver_.join();
}

std::shared_ptr<LeastLoaded::Replica> LeastLoaded::NewReplica(
    const std::string& address) {
  ChannelOptions one = options_;
  one.target = address;
  one.lb_policy = "pick_first";
  // Retried by the caller on another replica (LoadOptions::max_attempts), not
  // by gRPC on this one.
  one.retry = false;
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel = CreateChannel(one);
  if (!channel.ok()) return nullptr;
  auto replica = std::make_shared<Replica>();
  replica->address_ = address;
  replica->channel_ = *channel;
  replica->stub_ = compute::v1::Compute::NewStub(replica->channel_);
  return replica;
}

bool LeastLoaded::Resolve() {
  absl::StatusOr<std::vector<std::string>> addresses =
      resolve_(options_.target);
  if (!addresses.ok()) return false;
  // New replicas' channels are made outside the lock (with TLS that reads
  // the key files), so Choose and Done never wait for them. Only this
  // thread changes the set once Create has returned, so it stays as read.
  const std::vector<std::shared_ptr<Replica>> current = replicas();
  std::vector<std::shared_ptr<Replica>> next;
  for (const std::string& address : *addresses) {
    auto named = [&](const std::shared_ptr<Replica>& r) {
      return r->address_ == address;
    };
    if (std::any_of(next.begin(), next.end(), named)) continue;  // listed twice
    auto same = std::find_if(current.begin(), current.end(), named);
    if (same != current.end()) {
      next.push_back(*same);
    } else if (auto replica = NewReplica(address)) {
      next.push_back(std::move(replica));
    }
  }
  if (next.empty()) return true;
  MutexLock lock(&mu_);
  // What the replicas that leave were sent stays in the run's counts (a
  // replica replaced mid-run, a pod rolled). Calls still in flight to them
  // finish; none is chosen for them from here (Choose counts under mu_, so
  // their counts are final).
  for (const auto& r : replicas_) {
    if (std::find(next.begin(), next.end(), r) == next.end()) {
      calls_to_gone_[r->address_] += r->calls();
    }
  }
  replicas_ = std::move(next);
  return true;
}

void LeastLoaded::ResolveLoop() {
  while (true) {
    {
      MutexLock lock(&mu_);
      const absl::Time deadline = MonotonicNow() + resolve_interval_;
      while (!stopping_ && !stop_cv_.WaitWithDeadline(&mu_, deadline)) {
      }
      if (stopping_) return;
    }
    Resolve();  // a failure keeps the replicas we have
  }
}

// The utilization the replica would have with this call: what it last
// reported (less as the report ages) plus this call's share, or this
// client's calls in flight there plus this one, whichever is more (the
// report misses calls on their way; the count misses other clients'
// calls). A replica not heard from yet scores 0 while no call of ours is on
// its way there (one call, whose answer tells its load and workers), and as
// a 1-worker replica after: without that probe, replicas that answered
// first would keep it from ever being chosen.
double ReplicaScore(const ReplicaView& r) {
  if (r.workers == 0 && r.in_flight == 0) return 0.0;
  const double per_call = 1.0 / std::max(1, r.workers);
  const double age =
      std::max(0.0, absl::FDivDuration(r.load_age, kLoadHalfLife));
  const double reported = r.load * std::exp2(-age);
  return std::max(reported + per_call, (r.in_flight + 1) * per_call);
}

std::shared_ptr<LeastLoaded::Replica> LeastLoaded::Choose() {
  const int64_t now = now_ns_();
  auto score = [now](const Replica& r) {
    return ReplicaScore(
        ReplicaView{.load = r.load(),
                    .load_age = absl::Nanoseconds(
                        now - r.load_at_ns_.load(std::memory_order_relaxed)),
                    .workers = r.workers(),
                    .in_flight = r.in_flight()});
  };
  // Chosen and counted in flight under the lock: a replica on probation
  // takes one call, and two Choose calls at once (retries whose pause ends
  // together) must not both see it free.
  MutexLock lock(&mu_);
  const std::vector<std::shared_ptr<Replica>> usable =
      Connected(/*try_to_connect=*/true);
  std::vector<std::shared_ptr<Replica>> open;
  for (const auto& r : usable) {
    if (IsOpen(*r, now)) open.push_back(r);
  }
  // Every replica avoided: draw from those that answered their last call
  // (refused it, with a pushback), not from those gone (unreachable, on
  // probation) or silent (paused for calls that got no answer): one gone
  // reports no load and scores 0, so it took nearly every call while the
  // others refused (a dead replica beside a refusing one: 162 of 200 calls
  // UNAVAILABLE). From all when none answers.
  if (open.empty()) {
    for (const auto& r : usable) {
      if (!r->on_probation_.load(std::memory_order_relaxed) &&
          r->silent_until_ns_.load(std::memory_order_relaxed) <= now) {
        open.push_back(r);
      }
    }
  }
  const std::vector<std::shared_ptr<Replica>>& from =
      open.empty() ? usable : open;
  // Two different replicas (when there are two): drawn with replacement,
  // one replica in n^2 pairs would be compared with itself and chosen
  // however loaded it is (measured: the 1-worker replica of the fleet
  // benchmark got its full capacity and a 138 ms p99).
  const size_t i = random_() % from.size();
  size_t j = i;
  if (from.size() > 1)
    j = (i + 1 + random_() % (from.size() - 1)) % from.size();
  const std::shared_ptr<Replica>& a = from[i];
  const std::shared_ptr<Replica>& b = from[j];
  const std::shared_ptr<Replica>& chosen = score(*b) < score(*a) ? b : a;
  chosen->in_flight_.fetch_add(1, std::memory_order_relaxed);
  chosen->calls_.fetch_add(1, std::memory_order_relaxed);
  return chosen;
}

void LeastLoaded::Done(Replica& replica, const grpc::Status& status,
                       const grpc::ClientContext& context) {
  double load = 0;
  int workers = 0;
  const bool reported =
      ParseLoad(Trailer(context, "compute-load"), &load, &workers);
  // Under the lock Choose holds: a choice sees all of this call's outcome
  // or none of it (not the call out of flight before the replica is put on
  // probation, so that a second call goes to a replica that may be gone),
  // and two calls that end at once are counted one after the other (two
  // timeouts at the same instant are two in a row, not two "third ones").
  MutexLock lock(&mu_);
  const int64_t now = now_ns_();
  replica.in_flight_.fetch_sub(1, std::memory_order_relaxed);
  if (reported) {
    replica.load_.store(load, std::memory_order_relaxed);
    replica.workers_.store(workers, std::memory_order_relaxed);
    replica.load_at_ns_.store(now, std::memory_order_relaxed);
  }
  absl::Duration avoid = absl::ZeroDuration();
  if (IsMessageTooLarge(status)) {
    // The message, not the replica: every replica refuses it.
  } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    // A negative pushback (gRFC A6: do not retry) refuses the call, not the
    // replica: compute-server sends it when the call's own cost is longer
    // than its deadline.
    const std::optional<int64_t> ms = PushbackMs(context);
    avoid = !ms.has_value() ? absl::Milliseconds(100)
            : *ms < 0       ? absl::ZeroDuration()
                      : absl::Milliseconds(std::clamp<int64_t>(*ms, 1, 10000));
  } else if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
             status.error_code() == grpc::StatusCode::CANCELLED) {
    // CANCELLED: bench never cancels a call itself, so the replica cut it
    // off (a server shutting down cancels the calls it had not started):
    // a retry goes to another one.
    avoid = absl::Seconds(1);
  }
  // Any answer from the server ends probation; only a call that got none
  // (unreachable, cut off, out of time) leaves it as it is.
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    replica.on_probation_.store(true, std::memory_order_relaxed);
  } else if (status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED &&
             status.error_code() != grpc::StatusCode::CANCELLED) {
    replica.on_probation_.store(false, std::memory_order_relaxed);
  }
  // Out of time, with nothing else in between: see kSilentDeadlines. This
  // pause is kept apart from the one a refusal asks for, so that an answer
  // ends it without ending that one.
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
    // The calls that were on their way when the pause began time out
    // together, and say nothing more: only a call that ran out of time
    // outside it (the probe after it) doubles it. Before, a 300 ms stall
    // with 20 calls out paused the replica for 30 s.
    if (replica.silent_until_ns_.load(std::memory_order_relaxed) <= now) {
      const int in_a_row =
          replica.deadlines_in_a_row_.fetch_add(1, std::memory_order_relaxed) +
          1;
      if (in_a_row >= kSilentDeadlines) {
        const int doublings = std::min(5, in_a_row - kSilentDeadlines);
        const absl::Duration pause =
            std::min(absl::Seconds(30), absl::Seconds(1) * (1 << doublings));
        replica.silent_until_ns_.store(now + absl::ToInt64Nanoseconds(pause),
                                       std::memory_order_relaxed);
      }
    }
  } else {
    // It answers: not silent.
    replica.deadlines_in_a_row_.store(0, std::memory_order_relaxed);
    replica.silent_until_ns_.store(0, std::memory_order_relaxed);
  }
  if (avoid > absl::ZeroDuration()) {
    replica.avoid_until_ns_.store(now + absl::ToInt64Nanoseconds(avoid),
                                  std::memory_order_relaxed);
  }
}

std::vector<std::shared_ptr<LeastLoaded::Replica>> LeastLoaded::Connected(
    bool try_to_connect) const {
  std::vector<std::shared_ptr<Replica>> connected;
  for (const auto& r : replicas_) {
    if (r->channel()->GetState(try_to_connect) == GRPC_CHANNEL_READY) {
      connected.push_back(r);
    }
  }
  return connected.empty() ? replicas_ : connected;
}

bool LeastLoaded::IsOpen(const Replica& r, int64_t now) {
  return r.PausedUntilNs() <= now &&
         !(r.on_probation_.load(std::memory_order_relaxed) &&
           r.in_flight() > 0);
}

absl::Duration LeastLoaded::UntilOneIsOpen() const {
  MutexLock lock(&mu_);
  const int64_t now = now_ns_();
  int64_t soonest = INT64_MAX;
  // As Choose: one not connected while another is does not count as open.
  for (const auto& r : Connected(/*try_to_connect=*/false)) {
    if (IsOpen(*r, now)) return absl::ZeroDuration();
    const int64_t until = r->PausedUntilNs();
    // Past its pause but taking its one probe call: open when that call is
    // answered, which no clock tells; looked at again after a short while.
    soonest = std::min(soonest, until > now ? until : now + kProbeRecheckNs);
  }
  return replicas_.empty() ? absl::ZeroDuration()
                           : absl::Nanoseconds(soonest - now);
}

std::vector<std::shared_ptr<LeastLoaded::Replica>> LeastLoaded::replicas()
    const {
  MutexLock lock(&mu_);
  return replicas_;
}

std::vector<std::pair<std::string, uint64_t>> LeastLoaded::CallsPerAddress()
    const {
  MutexLock lock(&mu_);
  std::map<std::string, uint64_t> gone = calls_to_gone_;
  std::vector<std::pair<std::string, uint64_t>> calls;
  for (const auto& r : replicas_) {
    uint64_t n = r->calls();
    // An address that left and came back: one line, both its replicas.
    if (auto it = gone.find(r->address_); it != gone.end()) {
      n += it->second;
      gone.erase(it);
    }
    calls.emplace_back(r->address_, n);
  }
  calls.insert(calls.end(), gone.begin(), gone.end());
  return calls;
}

}  // namespace compute::client
