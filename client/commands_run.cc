// `compute-client run <task> [flags]`: one call, its result and where the
// time went (queue and run, as the server measured them; round trip, as we
// did).
#include <chrono>

#include "client/commands.h"
#include "client/commands_common.h"
#include "client/format.h"
#include "client/input_file.h"
#include "client/task.h"
#include "compute/v1/compute.grpc.pb.h"
#include "server/base/file.h"
#include "server/tasks/sha256.h"

namespace compute::client {

int RunCommand(const std::vector<std::string>& args, const Io& io) {
  const std::string command = "run";
  FlagSet flags(
      "compute-client run <task> [flags]\n"
      "  fib --n N | spin --duration D | sha256 --file F|--data S --rounds N\n"
      "  | primes --limit N | blur --in in.pgm --radius R [--out out.pgm]\n"
      "  | sleep --duration D\n"
      "  sha256 without --data or --file hashes stdin (when not a terminal);\n"
      "  blur without --out writes the image to stdout (when not a terminal)");
  CommonFlags common;
  TaskFlags task;
  AddCommonFlags(flags, &common);
  AddComputeCallFlags(flags, &common);
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
  const std::string& task_name = positional[0];
  if (absl::Status valid = ValidateCallFlags(common); !valid.ok()) {
    return Fail(command, valid, io);
  }
  if (absl::Status valid = CheckTaskFlags(task_name, flags, task);
      !valid.ok()) {
    return Fail(command, valid, io);
  }
  if (task_name == "sha256" && !flags.Given("data") && !flags.Given("file")) {
    // Never the empty string by default: the data comes from somewhere.
    if (io.in == nullptr || io.in_is_terminal) {
      return Usage(command,
                   "sha256 needs --data TEXT or --file FILE (or its data on "
                   "stdin)",
                   io);
    }
    // No further than the server's limit: stdin may have no end.
    const size_t limit = tasks::kMaxSha256DataBytes;
    absl::StatusOr<std::string> data =
        ReadInputStream(*io.in, "stdin", limit + 1);
    if (!data.ok()) return Fail(command, data.status(), io);
    if (data->size() > limit) {
      return Fail(command, Sha256TooLong(": stdin has more"), io);
    }
    task.data = *std::move(data);
  }
  // The JSON never holds a blur's pixels (stdout is the JSON's): with
  // --json the image needs --out, or the call would be made for nothing
  // (until 2026-12-06 it was, and the hint said to redirect stdout).
  if (task_name == "blur" && common.json && task.out.empty()) {
    return Usage(command,
                 "blur with --json needs --out FILE.pgm (the image never "
                 "goes into the JSON)",
                 io);
  }
  // Before the call, not after its work is done (a 16 MP blur for an --out
  // in a missing directory; until 2026-12-06).
  if (!task.out.empty()) {
    if (absl::Status writable = CheckWritable(task.out); !writable.ok()) {
      return Usage(command, std::string(writable.message()), io);
    }
  }
  // blur without --out: the image goes to stdout when that is a pipe or a
  // file (and the text to stderr), and is never dropped without a word.
  const bool image_to_stdout = task_name == "blur" && task.out.empty() &&
                               !io.out_is_terminal && !common.json;
  uint32_t maxval = 255;  // blur's input's, read once (--in may be a pipe)
  auto request = BuildRequest(task_name, task, &maxval);
  if (!request.ok()) return Fail(command, request.status(), io);
  auto channel = CreateChannel(common.channel);
  if (!channel.ok()) return Fail(command, channel.status(), io);

  auto stub = compute::v1::Compute::NewStub(*channel);
  grpc::ClientContext context;
  PrepareContext(context, common);
  // Within the call's deadline, which is set already.
  const Connected connected = ConnectFirst(**channel, context.raw_deadline());
  const absl::Duration connect = connected.took;
  compute::v1::RunResponse response;
  auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub->Run(&context, *request, &response);
  absl::Duration round_trip =
      absl::FromChrono(std::chrono::steady_clock::now() - start);
  if (!status.ok())
    return CallFailed(status, common.channel, connected.ready, io);

  if (absl::Status saved = SaveResult(task, maxval, *request, response);
      !saved.ok()) {
    return Fail(command, saved, io);
  }
  if (image_to_stdout) {
    WriteResultPgm(maxval, response, io.out);
    if (auto failed = StdoutFailure(command, io)) return *failed;
    io.err << CallText(*request, response, round_trip, connect) << "\n"
           << "  wrote the image to stdout\n";
    return kExitOk;
  }
  if (common.json) {
    google::protobuf::Struct json =
        CallJson(*request, response, round_trip, connect);
    if (request->has_blur() && !task.out.empty()) Put(json, "out", task.out);
    io.out << ToPrettyJson(json) << "\n";
  } else {
    io.out << CallText(*request, response, round_trip, connect) << "\n";
    if (request->has_blur() && !task.out.empty()) {
      io.out << "  wrote " << task.out << "\n";
    }
  }
  if (auto failed = StdoutFailure(command, io)) return *failed;
  if (request->has_blur() && task.out.empty()) {
    io.err << "compute-client run: the blurred image was not written (give "
              "--out FILE.pgm, or redirect stdout)\n";
  }
  return kExitOk;
}

}  // namespace compute::client
