// `compute-client health`: grpc.health.v1.Health/Check; exit 0 iff SERVING.
// The container's HEALTHCHECK runs this, so it has a short default deadline
// and never waits for a connection (a down server answers UNAVAILABLE).
#include "client/commands.h"
#include "client/commands_common.h"
#include "client/format.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace compute::client {

int HealthCommand(const std::vector<std::string>& args, const Io& io) {
  const std::string command = "health";
  FlagSet flags("compute-client health [--service NAME] [flags]");
  CommonFlags common;
  common.deadline = absl::Seconds(5);
  std::string service;
  AddCommonFlags(flags, &common);
  flags.Add("service", &service,
            "service to check (empty: the server as a whole; or "
            "compute.v1.Compute)");
  std::vector<std::string> positional;
  if (auto done = ParseFlags(command, flags, args, &positional, io)) {
    return *done;
  }
  if (!positional.empty()) {
    return Usage(command, "unexpected argument '" + positional[0] + "'", io);
  }
  if (absl::Status valid = ValidateCommonFlags(common); !valid.ok()) {
    return Fail(command, valid, io);
  }
  ChannelOptions options = common.channel;
  options.watch_health = false;  // the health command is what asks
  auto channel = CreateChannel(options);
  if (!channel.ok()) return Fail(command, channel.status(), io);

  auto stub = grpc::health::v1::Health::NewStub(*channel);
  grpc::ClientContext context;
  SetDeadline(context, common.deadline);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  // Whether it connected, for the hint of a failure (ConnectionHint).
  const bool connected = ConnectFirst(**channel, context.raw_deadline()).ready;
  grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return CallFailed(status, options, connected, io);

  std::string name = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
      response.status());
  if (common.json) {
    google::protobuf::Struct json;
    Put(json, "service", service);
    Put(json, "status", name);
    io.out << ToJson(json) << "\n";
  } else {
    io.out << name << "\n";
  }
  if (auto failed = StdoutFailure(command, io)) return *failed;
  return response.status() == grpc::health::v1::HealthCheckResponse::SERVING
             ? kExitOk
             : kExitFailure;
}

}  // namespace compute::client
