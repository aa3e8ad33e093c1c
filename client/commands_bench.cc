// `compute-client bench`: a load generator in the spirit of ghz, on
// LoadGenerator (see load.h for the closed and open loops).
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/commands_common.h"
#include "client/format.h"
#include "client/load.h"
#include "client/summary.h"
#include "client/task.h"

namespace compute::client {

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
  AddCommonFlags(flags, &common);
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
  std::vector<std::string> positional;
  if (auto done = ParseFlags(command, flags, args, &positional, io)) {
    return *done;
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
  if (requests > 0 && !flags.Given("time")) time = absl::InfiniteDuration();

  auto request = BuildRequest(task_name, task);
  if (!request.ok()) return Fail(command, request.status(), io);
  auto channels = CreateChannels(common.channel, connections);
  if (!channels.ok()) return Fail(command, channels.status(), io);

  LoadOptions options;
  options.request = *request;
  options.concurrency = concurrency;
  options.rate = rate;
  options.duration = time;
  options.requests = requests;
  options.deadline = common.deadline;
  if (io.out_is_terminal && !common.json) {
    options.on_progress = [&io](const LoadProgress& p) {
      io.out << ProgressLine(p) << std::endl;
    };
  }
  LoadGenerator generator(*std::move(channels), std::move(options));
  absl::StatusOr<LoadResult> result = generator.Run();
  if (!result.ok()) return Fail(command, result.status(), io);

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
  return kExitOk;
}

}  // namespace compute::client
