// `compute-client run <task> [flags]`: one call, its result and where the
// time went (queue and run, as the server measured them; round trip, as we
// did).
#include <chrono>

#include "client/commands.h"
#include "client/commands_common.h"
#include "client/format.h"
#include "client/task.h"
#include "compute/v1/compute.grpc.pb.h"

namespace compute::client {

int RunCommand(const std::vector<std::string>& args, const Io& io) {
  const std::string command = "run";
  FlagSet flags(
      "compute-client run <task> [flags]\n"
      "  fib --n N | spin --duration D | sha256 --file F|--data S --rounds N\n"
      "  | primes --limit N | blur --in in.pgm --radius R --out out.pgm");
  CommonFlags common;
  TaskFlags task;
  AddCommonFlags(flags, &common);
  AddTaskFlags(flags, &task);
  std::vector<std::string> positional;
  if (auto done = ParseFlags(command, flags, args, &positional, io)) {
    return *done;
  }
  if (positional.size() != 1) {
    return Usage(command,
                 absl::StrCat("expected one task (", kTaskNames, "), got ",
                              positional.size(), " arguments"),
                 io);
  }
  if (absl::Status valid = ValidateCallFlags(common); !valid.ok()) {
    return Fail(command, valid, io);
  }
  auto request = BuildRequest(positional[0], task);
  if (!request.ok()) return Fail(command, request.status(), io);
  auto channel = CreateChannel(common.channel);
  if (!channel.ok()) return Fail(command, channel.status(), io);

  auto stub = compute::v1::Compute::NewStub(*channel);
  grpc::ClientContext context;
  PrepareContext(context, common);
  compute::v1::RunResponse response;
  auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub->Run(&context, *request, &response);
  absl::Duration round_trip =
      absl::FromChrono(std::chrono::steady_clock::now() - start);
  if (!status.ok()) return CallFailed(status, io);

  if (absl::Status saved = SaveResult(task, *request, response); !saved.ok()) {
    return Fail(command, saved, io);
  }
  if (common.json) {
    google::protobuf::Struct json = CallJson(*request, response, round_trip);
    if (request->has_blur() && !task.out.empty()) Put(json, "out", task.out);
    io.out << ToPrettyJson(json) << "\n";
  } else {
    io.out << CallText(*request, response, round_trip) << "\n";
    if (request->has_blur() && !task.out.empty()) {
      io.out << "  wrote " << task.out << "\n";
    }
  }
  return kExitOk;
}

}  // namespace compute::client
