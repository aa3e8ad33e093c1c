#include "client/channel.h"

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/target.h"
#include "compute/v1/compute.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"
#include "grpcpp/support/channel_arguments.h"
#include "server/base/pem.h"

namespace compute::client {
namespace {

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> Credentials(
    const ChannelOptions& options) {
  if (!UsesTls(options)) {
    if (!options.server_name.empty()) {
      return absl::InvalidArgumentError(
          "--server_name applies only with TLS (--tls, --ca, --cert or "
          "--key)");
    }
    return grpc::InsecureChannelCredentials();
  }
  if (options.cert.empty() != options.key.empty()) {
    return absl::InvalidArgumentError(
        "--cert and --key must be given together");
  }
  grpc::SslCredentialsOptions ssl;
  struct Pem {
    const char* flag;
    const std::string* path;
    std::string* pem;
    PemKind kind;
  };
  for (const Pem& f :
       {Pem{"--ca", &options.ca, &ssl.pem_root_certs, PemKind::kCertificates},
        Pem{"--cert", &options.cert, &ssl.pem_cert_chain,
            PemKind::kCertificates},
        Pem{"--key", &options.key, &ssl.pem_private_key, PemKind::kKey}}) {
    if (f.path->empty()) continue;
    // An empty --ca would leave gRPC to trust the system's roots instead.
    absl::StatusOr<std::string> contents = ReadPemFile(f.flag, *f.path, f.kind);
    if (!contents.ok()) return contents.status();
    *f.pem = *std::move(contents);
  }
  if (!options.cert.empty()) {
    absl::Status pair =
        CheckKeyMatchesCertificate("--cert", options.cert, ssl.pem_cert_chain,
                                   "--key", options.key, ssl.pem_private_key);
    if (!pair.ok()) return pair;
  }
  return grpc::SslCredentials(ssl);
}

}  // namespace

bool UsesTls(const ChannelOptions& options) {
  return options.tls || !options.ca.empty() || !options.cert.empty() ||
         !options.key.empty();
}

std::string TargetHostName(absl::string_view target) {
  const TargetParts parts = SplitTarget(target);
  if (parts.kind != TargetParts::Kind::kName || parts.addresses.size() != 1) {
    return "";
  }
  const HostPort split = SplitHostPort(parts.addresses[0]);
  // More than one colon and no brackets: an IPv6 address.
  if (!split.bracketed && absl::StrContains(split.host, ":")) return "";
  if (split.host.empty() || IsIpAddress(split.host)) return "";
  return std::string(split.host);
}

std::string ServiceConfigJson(const ChannelOptions& options) {
  std::string config = absl::StrCat(R"({"loadBalancingConfig":[{")",
                                    options.lb_policy, R"(":{}}])");
  if (options.lb_policy == "round_robin" && options.watch_health) {
    // Watch each server's health (gRFC A17; pick_first cannot in gRPC
    // 1.51): a draining server says NOT_SERVING first and sends its GOAWAY
    // once calls stop arriving, so no call is sent into the GOAWAY, which
    // gRPC's core answers CANCELLED, never run. A server without the health
    // service (UNIMPLEMENTED) counts as healthy.
    absl::StrAppend(&config, R"(,"healthCheckConfig":{"serviceName":")",
                    compute::v1::Compute::service_full_name(), R"("})");
  }
  if (options.retry) {
    // Throttled (gRFC A6): a failed attempt costs a token, an OK call earns
    // 0.2, and retries stop while half of the 10 are gone. Without it, every
    // call to a replica that refuses all of them was sent 5 times (measured:
    // 300 calls, 1,382 attempts); with it, a fleet refusing everything sees
    // a handful of retries, and retries of occasional refusals go on.
    absl::StrAppend(&config,
                    R"(,"retryThrottling":{"maxTokens":10,"tokenRatio":0.2})");
    absl::StrAppend(&config, R"(,"methodConfig":[{)", R"("name":[{"service":")",
                    compute::v1::Compute::service_full_name(), R"("}],)",
                    R"("retryPolicy":{"maxAttempts":5,)",
                    R"("initialBackoff":"0.05s","maxBackoff":"2s",)",
                    R"("backoffMultiplier":2,"retryableStatusCodes":)",
                    R"(["RESOURCE_EXHAUSTED","UNAVAILABLE"]}}])");
  }
  absl::StrAppend(&config, "}");
  return config;
}

absl::Status CheckCredentials(const ChannelOptions& options) {
  return Credentials(options).status();
}

absl::Status CheckTargetPorts(absl::string_view target) {
  const TargetParts parts = SplitTarget(target);
  // The ipv4: and ipv6: schemes have no default port: gRPC logs its own
  // error lines before the channel fails, so say it first, in one line.
  const bool needs_port = parts.kind == TargetParts::Kind::kAddressList;
  // gRPC takes it, and its every call fails UNAVAILABLE "empty address
  // list" (bench waited --connect_timeout first).
  if (needs_port && parts.addresses.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target ", target, ": lists no address"));
  }
  // A list without its scheme: no host name has a comma, and gRPC looked
  // the whole list up as one ("DNS resolution failed", exit 1; bench waited
  // its --connect_timeout first). A review's finding, 2026-12-06.
  if (parts.kind == TargetParts::Kind::kName && parts.addresses.size() == 1 &&
      absl::StrContains(parts.addresses[0], ",")) {
    return absl::InvalidArgumentError(
        absl::StrCat("--target ", target,
                     ": a list of addresses needs the ipv4: or ipv6: scheme "
                     "(ipv4:127.0.0.1:50051,127.0.0.1:50052)"));
  }
  for (absl::string_view address : parts.addresses) {
    const auto [host, port, has_port, bracketed] = SplitHostPort(address);
    if (!has_port) {
      // No port. gRPC gives a host name port 443, but an IP address port 0
      // (it dialled 127.0.0.1:0 until 2026-12-06), and ipv4:/ipv6: none.
      const auto colons = std::count(address.begin(), address.end(), ':');
      // An IPv6 address and a port, unbracketed (::1:50051): not a host
      // name either (gRPC looked it up: "DNS resolution failed").
      const size_t last = host.rfind(':');
      const bool v6_and_port = !bracketed && colons > 2 &&
                               last != absl::string_view::npos &&
                               IsIpAddress(host.substr(0, last));
      if (!needs_port && !IsIpAddress(host) && !v6_and_port) continue;
      const bool v6 = colons > 1;
      return absl::InvalidArgumentError(absl::StrCat(
          "--target ", target, ": ", address,
          !bracketed && v6
              ? " needs brackets around the IPv6 address and a port ("
          : needs_port ? " has no port (an ipv4: or ipv6: address needs one: "
                       : " has no port (gRPC dials port 0 for an IP address "
                         "without one: ",
          needs_port ? target.substr(0, 5) : "",
          v6 || absl::StartsWith(target, "ipv6:") ? "[::1]:50051)"
                                                  : "127.0.0.1:50051)"));
    }
    if (port == "http" || port == "https") {
      // gRPC reads them as 80 and 443 after a host name, which it resolves;
      // after an IP address it dialled port 0 (until 2026-12-06).
      if (IsIpAddress(host)) {
        return absl::InvalidArgumentError(
            absl::StrCat("--target ", target, ": write the port as a number (",
                         port == "http" ? "80" : "443",
                         "): gRPC reads a port's name only after a host name"));
      }
      continue;
    }
    int value = 0;
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), absl::ascii_isdigit) ||
        !absl::SimpleAtoi(port, &value) || value < 1 || value > 65535) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--target ", target, ": port '", port, "' is not a port (1-65535)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> CreateChannels(
    const ChannelOptions& options, int count) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("--target must not be empty");
  }
  if (absl::Status ports = CheckTargetPorts(options.target); !ports.ok()) {
    return ports;
  }
  if (options.lb_policy != "round_robin" && options.lb_policy != "pick_first") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--lb must be round_robin or pick_first (got ", options.lb_policy,
        options.lb_policy == "least_loaded" ? ": least_loaded is for bench"
                                            : "",
        ")"));
  }
  if (count < 1) {
    return absl::InvalidArgumentError("at least one channel is needed");
  }
  auto credentials = Credentials(options);
  if (!credentials.ok()) return credentials.status();

  grpc::ChannelArguments args;
  args.SetServiceConfigJSON(ServiceConfigJson(options));
  args.SetInt(GRPC_ARG_SERVICE_CONFIG_DISABLE_RESOLUTION, 1);
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  // gRPC keeps a call's messages for its retries up to 256 KiB by default,
  // and a larger call is committed to its first attempt: a blur of 1 MB was
  // never retried. As large as a message may be.
  if (options.retry) {
    args.SetInt(GRPC_ARG_PER_RPC_RETRY_BUFFER_SIZE, options.max_message_bytes);
  }
  if (!options.server_name.empty()) {
    args.SetSslTargetNameOverride(options.server_name);
  }
  std::vector<std::shared_ptr<grpc::Channel>> channels;
  for (int i = 0; i < count; ++i) {
    channels.push_back(
        grpc::CreateCustomChannel(options.target, *credentials, args));
    // A target gRPC cannot parse makes a "lame" channel, whose every call
    // fails UNKNOWN "Failed to create secure client channel" (and bench
    // waited --connect_timeout for it first). gRPC 1.51 says so only by its
    // state: TRANSIENT_FAILURE before any connection was tried (a channel
    // that can connect is IDLE until asked to).
    if (i == 0 && channels.front()->GetState(/*try_to_connect=*/false) ==
                      GRPC_CHANNEL_TRANSIENT_FAILURE) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--target ", options.target,
          ": not a target gRPC can use (host:port, dns:///host:port, "
          "ipv4:a.b.c.d:port,..., unix:path)"));
    }
  }
  return channels;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(
    const ChannelOptions& options) {
  auto channels = CreateChannels(options, 1);
  if (!channels.ok()) return channels.status();
  return channels->front();
}

}  // namespace compute::client
