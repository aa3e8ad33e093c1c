#include "client/commands_common.h"

#include <cerrno>
#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "client/deadline.h"
#include "client/format.h"
#include "client/mix.h"
#include "client/summary.h"
#include "client/task.h"

namespace compute::client {

void AddCommonFlags(FlagSet& flags, CommonFlags* common) {
  ChannelOptions& c = common->channel;
  flags.Add("target", &c.target,
            "server: host:port, dns:///host:port, ipv4:a:p,b:q");
  flags.Add("deadline", &common->deadline,
            "per-call deadline, e.g. 500ms, 30s (inf: none)");
  flags.Add("tls", &c.tls, "use TLS (the system's roots unless --ca)");
  flags.Add("ca", &c.ca, "PEM file of the CA that signed the server");
  flags.Add("cert", &c.cert, "PEM client certificate (mutual TLS)");
  flags.Add("key", &c.key, "PEM client private key (mutual TLS)");
  flags.Add("server_name", &c.server_name,
            "TLS: name to verify instead of the target's host");
  // Empty, each was as if not given: plaintext, the system's roots, or no
  // client certificate, silently (a TLS review's finding, 2026-12-06).
  flags.RefuseEmpty("ca", "give a PEM file, or leave --ca out");
  flags.RefuseEmpty("cert", "give a PEM file, or leave --cert out");
  flags.RefuseEmpty("key", "give a PEM file, or leave --key out");
  flags.RefuseEmpty("server_name",
                    "give the name to verify, or leave --server_name out");
  flags.Add("lb", &c.lb_policy,
            "load balancing: round_robin or pick_first; bench also "
            "least_loaded (by the servers' reported load)");
  flags.Add("json", &common->json, "machine-readable output");
}

void AddComputeCallFlags(FlagSet& flags, CommonFlags* common) {
  flags.Add("retry", &common->channel.retry,
            "retry RESOURCE_EXHAUSTED/UNAVAILABLE (gRPC retry policy, "
            "honours the server's pushback; with bench's --lb "
            "least_loaded, CANCELLED too, at once on another replica)");
  flags.Add("tenant", &common->tenant,
            "send as compute-tenant (the server uses it with "
            "--trust_tenant_header)");
  flags.Add("priority", &common->priority,
            "send as compute-priority: critical, default or sheddable");
}

absl::Status ValidateCommonFlags(const CommonFlags& common) {
  if (common.deadline <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--deadline must be > 0 (got ",
                     absl::FormatDuration(common.deadline), ")"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCallFlags(const CommonFlags& common) {
  if (absl::Status valid = ValidateCommonFlags(common); !valid.ok()) {
    return valid;
  }
  if (!common.priority.empty() && common.priority != "critical" &&
      common.priority != "default" && common.priority != "sheddable") {
    return absl::InvalidArgumentError(
        absl::StrCat("--priority must be critical, default or sheddable "
                     "(got '",
                     common.priority, "')"));
  }
  return CheckTenant("--tenant", common.tenant);
}

std::vector<std::pair<std::string, std::string>> CallMetadata(
    const CommonFlags& common) {
  std::vector<std::pair<std::string, std::string>> metadata;
  if (!common.tenant.empty())
    metadata.push_back({"compute-tenant", common.tenant});
  if (!common.priority.empty()) {
    metadata.push_back({"compute-priority", common.priority});
  }
  return metadata;
}

void PrepareContext(grpc::ClientContext& context, const CommonFlags& common) {
  SetDeadline(context, common.deadline);
  for (const auto& [key, value] : CallMetadata(common)) {
    context.AddMetadata(key, value);
  }
}

std::optional<int> ParseFlags(const std::string& command, FlagSet& flags,
                              const std::vector<std::string>& args,
                              std::vector<std::string>* positional,
                              const Io& io) {
  if (absl::Status s = flags.Parse(args, positional); !s.ok()) {
    return Usage(command, std::string(s.message()), io);
  }
  if (flags.help()) {
    io.out << flags.Usage();
    return kExitOk;
  }
  return std::nullopt;
}

int Usage(const std::string& command, const std::string& message,
          const Io& io) {
  io.err << "compute-client " << command << ": " << message << "\n";
  return kExitUsage;
}

int Fail(const std::string& command, const absl::Status& status, const Io& io) {
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    return Usage(command, std::string(status.message()), io);
  }
  io.err << "compute-client " << command << ": " << status.message() << "\n";
  return kExitFailure;
}

int CallFailed(const grpc::Status& status, const ChannelOptions& options,
               bool connected, const Io& io) {
  io.err << StatusCodeName(status.error_code()) << ": "
         << status.error_message()
         << ConnectionHint(status.error_message(), options, connected) << "\n";
  return kExitFailure;
}

std::string ConnectionHint(std::string_view message,
                           const ChannelOptions& options, bool connected) {
  if (connected || message.find("Socket closed") == std::string_view::npos) {
    return "";
  }
  const std::string what =
      " (hint: the server closed the connection as it was set up; ";
  if (!UsesTls(options)) {
    return what + "if it serves TLS, add --tls, or --ca F for a private CA)";
  }
  if (options.cert.empty()) {
    return what +
           "if it asks for a client certificate (mutual TLS), add --cert F "
           "--key F)";
  }
  return what +
         "it may not accept the certificate in --cert: its --tls_client_ca "
         "must hold the CA that issued it)";
}

std::optional<int> StdoutFailure(const std::string& command, const Io& io) {
  if (io.out.flush()) return std::nullopt;
  // The failed write's errno: nothing since has made a system call that
  // failed (writes to a failed stream are not made).
  const int e = errno;
  io.err << "compute-client" << (command.empty() ? "" : " ") << command
         << ": cannot write stdout: "
         << (e != 0 ? std::strerror(e) : "I/O error") << "\n";
  return kExitFailure;
}

void SetDeadline(grpc::ClientContext& context, absl::Duration deadline) {
  if (deadline == absl::InfiniteDuration()) return;
  context.set_deadline(ToGrpcDeadline(DeadlineAfter(deadline)));
}

Connected ConnectFirst(grpc::Channel& channel, gpr_timespec deadline) {
  const auto start = std::chrono::steady_clock::now();
  grpc_connectivity_state state = channel.GetState(/*try_to_connect=*/true);
  while (state == GRPC_CHANNEL_IDLE || state == GRPC_CHANNEL_CONNECTING) {
    if (!channel.WaitForStateChange(state, deadline)) break;  // out of time
    state = channel.GetState(/*try_to_connect=*/true);
  }
  return {absl::FromChrono(std::chrono::steady_clock::now() - start),
          state == GRPC_CHANNEL_READY};
}

std::string CallText(const compute::v1::RunRequest& request,
                     const compute::v1::RunResponse& response,
                     absl::Duration round_trip,
                     std::optional<absl::Duration> connect) {
  return absl::StrCat(
      Describe(request), " = ", ResultText(response), "\n  queue ",
      FormatMillis(FromProto(response.queue_time())), " ms, run ",
      FormatMillis(FromProto(response.run_time())), " ms, round trip ",
      FormatMillis(round_trip), " ms (worker ", response.worker(), ")",
      connect ? absl::StrCat("; connect ", FormatMillis(*connect), " ms") : "");
}

google::protobuf::Struct CallJson(const compute::v1::RunRequest& request,
                                  const compute::v1::RunResponse& response,
                                  absl::Duration round_trip,
                                  std::optional<absl::Duration> connect) {
  google::protobuf::Struct s;
  Put(s, "task", Describe(request));
  Put(s, "result", ResultJson(response));
  Put(s, "queue_ms",
      absl::ToDoubleMilliseconds(FromProto(response.queue_time())));
  Put(s, "run_ms", absl::ToDoubleMilliseconds(FromProto(response.run_time())));
  Put(s, "round_trip_ms", absl::ToDoubleMilliseconds(round_trip));
  if (connect) Put(s, "connect_ms", absl::ToDoubleMilliseconds(*connect));
  Put(s, "worker", static_cast<double>(response.worker()));
  return s;
}

}  // namespace compute::client
