// `compute-client batch fib 40 41 42`: the seed's example over gRPC. Every
// call starts at once (callback API), results print in input order, then
// the wall time, which shows how much the server ran in parallel.
#include <chrono>
#include <memory>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/commands_common.h"
#include "client/deadline.h"
#include "client/format.h"
#include "client/summary.h"
#include "client/task.h"
#include "compute/v1/compute.grpc.pb.h"
#include "server/pool/sync.h"

namespace compute::client {
namespace {

using Clock = std::chrono::steady_clock;

struct Slot {
  compute::v1::RunRequest request;
  compute::v1::RunResponse response;
  grpc::ClientContext context;
  grpc::Status status;
  absl::Duration round_trip;
};

// Starts every call, then waits for all of them. Each call's own deadline
// bounds the wait.
void CallAll(compute::v1::Compute::Stub& stub,
             std::vector<std::unique_ptr<Slot>>& slots,
             const CommonFlags& common) {
  Mutex mu;
  CondVar cv;
  size_t done = 0;
  for (auto& slot : slots) {
    PrepareContext(slot->context, common);
    Slot* s = slot.get();
    Clock::time_point start = Clock::now();
    stub.async()->Run(&s->context, &s->request, &s->response,
                      [s, start, &mu, &cv, &done](grpc::Status status) {
                        s->round_trip = absl::FromChrono(Clock::now() - start);
                        s->status = std::move(status);
                        MutexLock lock(&mu);
                        ++done;
                        cv.SignalAll();
                      });
  }
  MutexLock lock(&mu);
  while (done < slots.size()) cv.Wait(&mu);
}

}  // namespace

int BatchCommand(const std::vector<std::string>& args, const Io& io) {
  const std::string command = "batch";
  FlagSet flags(
      "compute-client batch <task> <arg>... [flags]\n"
      "  e.g. batch fib 40 41 42 38 39 43 37 44; the argument is fib's n,\n"
      "  spin's or sleep's duration, primes' limit or sha256's data");
  CommonFlags common;
  TaskFlags task;
  AddCommonFlags(flags, &common);
  AddComputeCallFlags(flags, &common);
  AddTaskFlags(flags, &task, TaskFlagUse::kBatch);
  std::vector<std::string> positional;
  if (auto done = ParseFlags(command, flags, args, &positional, io)) {
    return *done;
  }
  if (absl::Status valid = ValidateCallFlags(common); !valid.ok()) {
    return Fail(command, valid, io);
  }
  if (positional.size() < 2) {
    return Usage(command, "expected a task and at least one argument", io);
  }
  if (absl::Status valid = CheckTaskFlags(positional[0], flags, task);
      !valid.ok()) {
    return Fail(command, valid, io);
  }
  std::vector<std::unique_ptr<Slot>> slots;
  for (size_t i = 1; i < positional.size(); ++i) {
    TaskFlags one = task;
    if (absl::Status s = SetMainArgument(positional[0], positional[i], &one);
        !s.ok()) {
      return Fail(command, s, io);
    }
    auto request = BuildRequest(positional[0], one);
    if (!request.ok()) return Fail(command, request.status(), io);
    slots.push_back(std::make_unique<Slot>());
    slots.back()->request = *std::move(request);
  }
  auto channel = CreateChannel(common.channel);
  if (!channel.ok()) return Fail(command, channel.status(), io);
  auto stub = compute::v1::Compute::NewStub(*channel);
  // The connection's set-up, timed apart (at most --deadline); each call's
  // deadline starts once it is up.
  const Connected connected = ConnectFirst(
      **channel, common.deadline == absl::InfiniteDuration()
                     ? gpr_inf_future(GPR_CLOCK_MONOTONIC)
                     : ToGrpcDeadline(DeadlineAfter(common.deadline)));
  const absl::Duration connect = connected.took;

  Clock::time_point start = Clock::now();
  CallAll(*stub, slots, common);
  absl::Duration wall = absl::FromChrono(Clock::now() - start);

  int failed = 0;
  absl::Duration sum;
  google::protobuf::Value results;
  for (const auto& s : slots) {
    sum += s->round_trip;
    if (!s->status.ok()) ++failed;
    if (common.json) {
      google::protobuf::Struct entry;
      if (s->status.ok()) {
        entry = CallJson(s->request, s->response, s->round_trip);
      } else {
        Put(entry, "task", Describe(s->request));
        Put(entry, "code", StatusCodeName(s->status.error_code()));
        Put(entry, "message", s->status.error_message());
      }
      *results.mutable_list_value()->add_values()->mutable_struct_value() =
          std::move(entry);
    } else if (s->status.ok()) {
      io.out << CallText(s->request, s->response, s->round_trip) << "\n";
    } else {
      io.out << Describe(s->request)
             << " failed: " << StatusCodeName(s->status.error_code()) << ": "
             << s->status.error_message()
             << ConnectionHint(s->status.error_message(), common.channel,
                               connected.ready)
             << "\n";
    }
  }
  if (common.json) {
    google::protobuf::Struct json;
    Put(json, "results", std::move(results));
    Put(json, "wall_ms", absl::ToDoubleMilliseconds(wall));
    Put(json, "connect_ms", absl::ToDoubleMilliseconds(connect));
    Put(json, "sum_of_round_trips_ms", absl::ToDoubleMilliseconds(sum));
    Put(json, "failed", static_cast<double>(failed));
    io.out << ToPrettyJson(json) << "\n";
  } else {
    io.out << "wall time " << FormatMillis(wall) << " ms for " << slots.size()
           << " calls (sum of round trips " << FormatMillis(sum)
           << " ms; connect " << FormatMillis(connect) << " ms before)\n";
  }
  if (auto failed = StdoutFailure(command, io)) return *failed;
  if (failed > 0) {
    io.err << "compute-client batch: " << failed << " of " << slots.size()
           << " calls failed\n";
    return kExitFailure;
  }
  return kExitOk;
}

}  // namespace compute::client
