// `compute-client bench`: a load generator in the spirit of ghz, on
// LoadGenerator (see load.h for the closed and open loops).
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/commands.h"
#include "client/commands_common.h"
#include "client/format.h"
#include "client/load.h"
#include "client/summary.h"
#include "client/task.h"
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
int BenchVerdict(const LoadResult& r, double max_error_rate, const Io& io) {
  if (r.ok() == 0) {
    io.err << "compute-client bench: no call succeeded (" << r.completed()
           << " completed"
           << (r.errors() > 0 ? absl::StrCat(": ", ErrorCodes(r)) : "")
           << (r.refused() > 0
                   ? absl::StrCat(", RESOURCE_EXHAUSTED ", r.refused())
                   : "")
           << ")\n";
    return kExitFailure;
  }
  if (r.error_share() > max_error_rate) {
    io.err << absl::StrFormat(
        "compute-client bench: %.2f%% of calls failed (%s), above "
        "--max_error_rate %g\n",
        100 * r.error_share(), ErrorCodes(r), max_error_rate);
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace

int BenchCommand(const std::vector<std::string>& args, const Io& io) {
  const std::string command = "bench";
  FlagSet flags(
      "compute-client bench [--task T] [task flags] [load flags] [flags]\n"
      "  closed loop: --concurrency N; open loop: --rate R (calls/s, "
      "whatever the latency)\n"
      "  for --time D or --requests N (whichever ends first), over "
      "--connections K");
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
  AddCommonFlags(flags, &common);
  AddComputeCallFlags(flags, &common);
  flags.Add("task", &task_name, absl::StrCat("task to run: ", kTaskNames));
  AddTaskFlags(flags, &task);
  flags.Add("concurrency", &concurrency, "closed loop: calls kept in flight");
  flags.Add("rate", &rate, "open loop: calls started per second (0: closed)");
  flags.Add(
      "time", &time,
      "how long to send (with --requests and no --time: until all are sent)");
  flags.Add("requests", &requests, "how many calls to send (0: no limit)");
  flags.Add("connections", &connections, "channels (TCP connections) to use");
  flags.Add("hist", &hist, "print a latency histogram");
  flags.Add("connect_timeout", &connect_timeout,
            "fail if the server is not connected within this time");
  flags.Add("max_error_rate", &max_error_rate,
            "exit 1 if more than this share of calls (0 to 1) fail other "
            "than by the server's refusal (RESOURCE_EXHAUSTED)");
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
  if (flags.Given("rate") && flags.Given("concurrency")) {
    return Usage(command,
                 "--rate (open loop) and --concurrency (closed loop) do not "
                 "go together: give one",
                 io);
  }
  if (absl::Status valid = CheckTaskFlags(task_name, flags); !valid.ok()) {
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
  auto channels = CreateChannels(common.channel, connections);
  if (!channels.ok()) return Fail(command, channels.status(), io);

  LoadOptions options;
  options.request = *request;
  options.concurrency = concurrency;
  options.rate = rate;
  options.duration = time;
  options.requests = requests;
  options.deadline = common.deadline;
  options.metadata = CallMetadata(common);
  options.connect_timeout = connect_timeout;
  if (io.out_is_terminal && !common.json) {
    options.on_progress = [&io](const LoadProgress& p) {
      io.out << ProgressLine(p) << std::endl;
    };
  }
  LoadGenerator generator(*std::move(channels), std::move(options));
  absl::StatusOr<LoadResult> result = generator.Run();
  if (!result.ok()) {
    if (result.status().code() == absl::StatusCode::kUnavailable) {
      return Fail(command,
                  absl::UnavailableError(absl::StrCat(
                      "cannot connect to ", common.channel.target, ": ",
                      result.status().message(), " (see --connect_timeout)")),
                  io);
    }
    return Fail(command, result.status(), io);
  }

  BenchInfo info;
  info.target = common.channel.target;
  info.task = Describe(*request);
  info.concurrency = concurrency;
  info.rate = rate;
  info.connections = connections;
  if (common.json) {
    io.out << ToPrettyJson(SummaryJson(*result, info, hist)) << "\n";
  } else {
    io.out << SummaryText(*result, info, hist);
  }
  return BenchVerdict(*result, max_error_rate, io);
}

}  // namespace compute::client
