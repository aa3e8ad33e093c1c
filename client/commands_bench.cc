// `compute-client bench`: a load generator in the spirit of ghz, on
// LoadGenerator (see load.h for the closed and open loops).
#include <algorithm>
#include <memory>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/commands_common.h"
#include "client/format.h"
#include "client/load.h"
#include "client/mix.h"
#include "client/summary.h"
#include "client/task.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "server/tasks/registry.h"

namespace compute::client {
namespace {

// "UNAVAILABLE 12, DEADLINE_EXCEEDED 3": the codes that count as errors.
std::string ErrorCodes(const LoadResult& r) {
  std::string text;
  for (int code = 0; code < kNumStatusCodes; ++code) {
    if (code == grpc::StatusCode::OK ||
        code == grpc::StatusCode::RESOURCE_EXHAUSTED || r.codes[code] == 0) {
      continue;
    }
    absl::StrAppend(&text, text.empty() ? "" : ", ", StatusCodeName(code), " ",
                    r.codes[code]);
  }
  return text;
}

// Exit 1, with one line on stderr, when no call succeeded or errors (other
// than the server's refusals) exceed the share allowed.
// `entry`: a --mix entry's name, named on the line ("" for none).
int BenchVerdict(const LoadResult& r, double max_error_rate, const Io& io,
                 const std::string& entry = "") {
  const std::string who =
      entry.empty() ? "" : absl::StrCat("--mix entry '", entry, "': ");
  if (r.unreachable) {
    io.err << "compute-client bench: " << who << "stopped after " << r.sent
           << " calls: for longer than --connect_timeout every call ended "
              "UNAVAILABLE (the server is gone?; "
           << ErrorCodes(r) << ")\n";
    return kExitFailure;
  }
  if (r.ok() == 0) {
    io.err << "compute-client bench: " << who << "no call succeeded ("
           << r.completed() << " completed"
           << (r.errors() > 0 ? absl::StrCat(": ", ErrorCodes(r)) : "")
           << (r.refused() > 0
                   ? absl::StrCat(", RESOURCE_EXHAUSTED ", r.refused())
                   : "")
           << ")\n";
    return kExitFailure;
  }
  if (r.error_share() > max_error_rate) {
    io.err << absl::StrFormat(
        "compute-client bench: %s%.2f%% of calls failed (%s), above "
        "--max_error_rate %g\n",
        who, 100 * r.error_share(), ErrorCodes(r), max_error_rate);
    return kExitFailure;
  }
  return kExitOk;
}

// Why none of `channels` connected, for the error line: the status of one
// call that fails fast (health Check, which runs nothing) on a channel
// whose connection failed, e.g. "failed to connect to all addresses; last
// error: ... CERTIFICATE_VERIFY_FAILED". A channel's state says no more
// than that it failed. Only failed channels are asked: such a call fails at
// once, while one still connecting (an address that never answers) would
// hold it for its whole deadline, each in turn. Empty if none has failed.
std::string WhyNoConnection(
    const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  for (const auto& channel : channels) {
    if (channel->GetState(/*try_to_connect=*/false) !=
        GRPC_CHANNEL_TRANSIENT_FAILURE) {
      continue;
    }
    grpc::ClientContext context;
    SetDeadline(context, absl::Seconds(1));
    grpc::health::v1::HealthCheckResponse response;
    const grpc::Status status =
        grpc::health::v1::Health::NewStub(channel)->Check(
            &context, grpc::health::v1::HealthCheckRequest(), &response);
    if (!status.ok() &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      return status.error_message();
    }
  }
  return "";
}

// "cannot connect to T: no connection within 10s (see --connect_timeout);
// last error: ..." (until 2026-12-06 without the reason: a wrong CA, TLS
// against plaintext and a name that does not resolve read the same).
absl::Status NoConnection(
    const CommonFlags& common, const absl::Status& status,
    const std::vector<std::shared_ptr<grpc::Channel>>& channels) {
  const std::string why = WhyNoConnection(channels);
  return absl::UnavailableError(absl::StrCat(
      "cannot connect to ", common.channel.target, ": ", status.message(),
      " (see --connect_timeout)", why.empty() ? "" : "; last error: ", why,
      ConnectionHint(why, common.channel, /*connected=*/false)));
}

// The channels a load goes over, and with --lb least_loaded its balancer
// (one channel per replica; --connections does not apply).
struct Connection {
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  std::shared_ptr<LeastLoaded> balancer;
};
absl::StatusOr<Connection> Connect(const CommonFlags& common, int connections) {
  Connection c;
  if (common.channel.lb_policy == "least_loaded") {
    auto balancer = LeastLoaded::Create(common.channel);
    if (!balancer.ok()) return balancer.status();
    c.balancer = *std::move(balancer);
    for (const auto& replica : c.balancer->replicas()) {
      c.channels.push_back(replica->channel());
    }
    return c;
  }
  auto channels = CreateChannels(common.channel, connections);
  if (!channels.ok()) return channels.status();
  c.channels = *std::move(channels);
  return c;
}

// --mix: every entry's load at once, each on its own connections; the
// summaries in the entries' order.
int RunMix(const std::vector<MixEntry>& mix, const LoadOptions& base,
           const CommonFlags& common, BenchInfo info, bool hist,
           double max_error_rate, const Io& io) {
  const std::string command = "bench";
  std::vector<std::unique_ptr<LoadGenerator>> generators;
  // Each entry's own: least_loaded keeps one connection per replica it
  // found, not --connections.
  std::vector<int> connections;
  for (const MixEntry& entry : mix) {
    auto connection = Connect(common, info.connections);
    if (!connection.ok()) return Fail(command, connection.status(), io);
    connections.push_back(static_cast<int>(connection->channels.size()));
    LoadOptions options = base;
    options.balancer = connection->balancer;
    options.rate = entry.rate;
    if (entry.concurrency > 0) options.concurrency = entry.concurrency;
    options.metadata = {{"compute-tenant", entry.tenant}};
    if (!entry.priority.empty()) {
      options.metadata.push_back({"compute-priority", entry.priority});
    }
    generators.push_back(std::make_unique<LoadGenerator>(
        std::move(connection->channels), std::move(options)));
  }
  std::vector<absl::StatusOr<LoadResult>> results(
      mix.size(), absl::UnknownError("not run"));
  {
    std::vector<std::thread> threads;
    for (size_t i = 0; i < mix.size(); ++i) {
      threads.emplace_back(
          [&results, &generators, i] { results[i] = generators[i]->Run(); });
    }
    for (std::thread& t : threads) t.join();
  }
  for (size_t i = 0; i < results.size(); ++i) {
    const absl::Status& status = results[i].status();
    if (status.code() == absl::StatusCode::kUnavailable) {
      return Fail(command,
                  NoConnection(common, status, generators[i]->channels()), io);
    }
    if (!status.ok()) return Fail(command, status, io);
  }

  google::protobuf::Struct json;
  google::protobuf::Value* list = &(*json.mutable_fields())["mix"];
  list->mutable_list_value();
  std::string text;
  int verdict = kExitOk;
  uint64_t ok = 0;
  for (size_t i = 0; i < mix.size(); ++i) {
    const MixEntry& entry = mix[i];
    const LoadResult& r = *results[i];
    BenchInfo entry_info = info;
    entry_info.connections = connections[i];
    entry_info.rate = entry.rate;
    entry_info.concurrency =
        entry.concurrency > 0 ? entry.concurrency : info.concurrency;
    const std::string priority =
        entry.priority.empty() ? "default" : entry.priority;
    if (common.json) {
      google::protobuf::Struct s = SummaryJson(r, entry_info, hist);
      (*s.mutable_fields())["name"].set_string_value(entry.name);
      (*s.mutable_fields())["tenant"].set_string_value(entry.tenant);
      (*s.mutable_fields())["priority"].set_string_value(priority);
      *list->mutable_list_value()->add_values()->mutable_struct_value() =
          std::move(s);
    } else {
      absl::StrAppend(&text, i == 0 ? "" : "\n", "== ", entry.name, " (tenant ",
                      entry.tenant, ", priority ", priority, ")\n",
                      SummaryText(r, entry_info, hist));
    }
    ok += r.ok();
    if (r.unreachable || r.error_share() > max_error_rate) {
      verdict = BenchVerdict(r, max_error_rate, io, entry.name);
    }
  }
  if (common.json) {
    io.out << ToPrettyJson(json) << "\n";
  } else {
    io.out << text;
  }
  if (auto failed = StdoutFailure(command, io)) return *failed;
  if (ok == 0) {
    io.err << "compute-client bench: no call of any --mix entry succeeded\n";
    return kExitFailure;
  }
  return verdict;
}

}  // namespace

int BenchCommand(const std::vector<std::string>& args, const Io& io) {
  const std::string command = "bench";
  FlagSet flags(
      "compute-client bench [--task T] [task flags] [load flags] [flags]\n"
      "  closed loop: --concurrency N; open loop: --rate R (calls/s, "
      "whatever the latency)\n"
      "  for --time D or --requests N (whichever ends first), over "
      "--connections K\n"
      "  several loads at once: --mix \"a:rate=4000,b:rate=40:priority=critical"
      "\"");
  CommonFlags common;
  common.deadline = absl::Seconds(10);
  TaskFlags task;
  std::string task_name = "spin";
  int concurrency = 10;
  double rate = 0;
  absl::Duration time = absl::Seconds(10);
  uint64_t requests = 0;
  int connections = 1;
  bool hist = false;
  absl::Duration connect_timeout = absl::Seconds(10);
  double max_error_rate = 0;
  std::string mix_spec;
  AddCommonFlags(flags, &common);
  AddComputeCallFlags(flags, &common);
  flags.Add("task", &task_name, absl::StrCat("task to run: ", kTaskNames));
  AddTaskFlags(flags, &task, TaskFlagUse::kBench);
  flags.Add("concurrency", &concurrency, "closed loop: calls kept in flight");
  flags.Add("rate", &rate, "open loop: calls started per second (0: closed)");
  flags.Add(
      "time", &time,
      "how long to send (with --requests and no --time: until all are sent)");
  flags.Add("requests", &requests, "how many calls to send (0: no limit)");
  flags.Add("connections", &connections, "channels (TCP connections) to use");
  flags.Add("hist", &hist, "print a latency histogram");
  flags.Add("connect_timeout", &connect_timeout,
            "fail if the server is not connected within this time (0: "
            "do not wait)");
  flags.Add("max_error_rate", &max_error_rate,
            "exit 1 if more than this share of calls (0 to 1) fail other "
            "than by the server's refusal (RESOURCE_EXHAUSTED)");
  flags.Add("mix", &mix_spec,
            "several loads at once, each measured apart: "
            "name[:rate=R|:concurrency=N][:priority=P][:tenant=T],... (the "
            "tenant, default the name, is sent as compute-tenant: the server "
            "needs --trust_tenant_header)");
  std::vector<std::string> positional;
  if (auto done = ParseFlags(command, flags, args, &positional, io)) {
    return *done;
  }
  if (absl::Status valid = ValidateCallFlags(common); !valid.ok()) {
    return Fail(command, valid, io);
  }
  if (!positional.empty()) {
    return Usage(command,
                 absl::StrCat("unexpected argument '", positional[0],
                              "' (the task is --task)"),
                 io);
  }
  if (connections < 1 || connections > 1000) {
    return Usage(command, "--connections must be between 1 and 1000", io);
  }
  if (!(max_error_rate >= 0 && max_error_rate <= 1)) {
    return Usage(command, "--max_error_rate must be between 0 and 1", io);
  }
  // --rate 0 is the closed loop, as its help says, so it goes with
  // --concurrency.
  if (flags.Given("rate") && rate != 0 && flags.Given("concurrency")) {
    return Usage(command,
                 "--rate (open loop) and --concurrency (closed loop) do not "
                 "go together: give one",
                 io);
  }
  // Checked here, not by the channel (which knows only gRPC's two): bench
  // has a third.
  if (common.channel.lb_policy != "round_robin" &&
      common.channel.lb_policy != "pick_first" &&
      common.channel.lb_policy != "least_loaded") {
    return Usage(command,
                 absl::StrCat("--lb must be round_robin, pick_first or "
                              "least_loaded (got ",
                              common.channel.lb_policy, ")"),
                 io);
  }
  if (common.channel.lb_policy == "least_loaded" &&
      flags.Given("connections")) {
    return Usage(command,
                 "--connections does not apply to --lb least_loaded (it keeps "
                 "one connection per replica)",
                 io);
  }
  std::vector<MixEntry> mix;
  if (flags.Given("mix")) {
    if (flags.Given("rate") || flags.Given("tenant") ||
        flags.Given("priority")) {
      return Usage(command,
                   "--mix gives each load its rate, tenant and priority: "
                   "drop --rate, --tenant and --priority",
                   io);
    }
    auto parsed = ParseMix(mix_spec);
    if (!parsed.ok()) {
      return Usage(command, std::string(parsed.status().message()), io);
    }
    mix = *std::move(parsed);
    // --concurrency is the default of entries that give neither rate= nor
    // concurrency=: with none such, it would be dropped without a word.
    if (flags.Given("concurrency") &&
        std::none_of(mix.begin(), mix.end(), [](const MixEntry& e) {
          return e.rate == 0 && e.concurrency == 0;
        })) {
      return Usage(command,
                   "--concurrency applies to no --mix entry (each gives its "
                   "own rate= or concurrency=): drop it",
                   io);
    }
  }
  if (absl::Status valid = CheckTaskFlags(task_name, flags, task);
      !valid.ok()) {
    return Fail(command, valid, io);
  }
  if (task_name == "sha256" && !flags.Given("data") && !flags.Given("file")) {
    return Usage(command, "sha256 needs --data TEXT or --file FILE", io);
  }
  if (requests > 0 && !flags.Given("time")) time = absl::InfiniteDuration();

  auto request = BuildRequest(task_name, task);
  if (!request.ok()) return Fail(command, request.status(), io);
  // The server's own limits, checked here: a load of calls the server can
  // only refuse as INVALID_ARGUMENT measures nothing.
  if (absl::Status valid = tasks::ValidateRequest(*request); !valid.ok()) {
    return Fail(command, valid, io);
  }
  LoadOptions options;
  options.request = *request;
  options.concurrency = concurrency;
  options.rate = rate;
  options.duration = time;
  options.requests = requests;
  options.deadline = common.deadline;
  options.metadata = CallMetadata(common);
  options.connect_timeout = connect_timeout;
  // least_loaded retries on another replica itself (its replicas' channels
  // have no retry policy: it would resend to the replica that failed).
  if (common.channel.lb_policy == "least_loaded" && common.channel.retry) {
    options.max_attempts = kLeastLoadedAttempts;
  }
  BenchInfo info;
  info.target = common.channel.target;
  info.task = Describe(*request);
  info.concurrency = concurrency;
  info.rate = rate;
  info.connections = connections;
  if (!mix.empty()) {
    return RunMix(mix, options, common, info, hist, max_error_rate, io);
  }
  auto connection = Connect(common, connections);
  if (!connection.ok()) return Fail(command, connection.status(), io);
  options.balancer = connection->balancer;
  // least_loaded: one connection per replica it found, not --connections.
  info.connections = static_cast<int>(connection->channels.size());
  if (io.out_is_terminal && !common.json) {
    options.on_progress = [&io](const LoadProgress& p) {
      io.out << ProgressLine(p) << std::endl;
    };
  }
  LoadGenerator generator(std::move(connection->channels), std::move(options));
  absl::StatusOr<LoadResult> result = generator.Run();
  if (!result.ok()) {
    if (result.status().code() == absl::StatusCode::kUnavailable) {
      return Fail(command,
                  NoConnection(common, result.status(), generator.channels()),
                  io);
    }
    return Fail(command, result.status(), io);
  }

  if (common.json) {
    io.out << ToPrettyJson(SummaryJson(*result, info, hist)) << "\n";
  } else {
    io.out << SummaryText(*result, info, hist);
  }
  if (auto failed = StdoutFailure(command, io)) return *failed;
  return BenchVerdict(*result, max_error_rate, io);
}

}  // namespace compute::client
