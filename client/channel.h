// Channels to the compute service from a target string and TLS options.
//
// Targets are gRPC's own: `localhost:50051`, `dns:///host:port` (a headless
// Kubernetes Service resolves to one address per pod), `ipv4:a:p,b:q`.
// Load balancing is set through the channel's service config, round_robin
// by default, so a target with several addresses spreads calls over all of
// them instead of pinning one (pick_first, gRPC's default). The service
// config is ours alone: resolver-provided configs (DNS TXT) are ignored.
//
// Retry (optional) is gRPC's own, per gRFC A6: RESOURCE_EXHAUSTED and
// UNAVAILABLE are retried up to 5 attempts in all, with exponential backoff,
// or after exactly the server's `grpc-retry-pushback-ms` when it sends one
// (the compute server does on every refusal). The server answers these
// codes for calls it refused or, while draining, stopped: never for a task
// that completed, so a retry cannot return a result twice.
//
// Each channel made by CreateChannels has its own subchannel pool, hence its
// own TCP connections: K channels are K connections per address (gRPC would
// otherwise share one connection among channels with equal arguments).
#ifndef COMPUTE_CLIENT_CHANNEL_H_
#define COMPUTE_CLIENT_CHANNEL_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "grpcpp/channel.h"

namespace compute::client {

struct ChannelOptions {
  std::string target = "localhost:50051";
  // TLS. ca: PEM roots to verify the server (empty: the system's roots);
  // cert + key: a client certificate for mutual TLS. Any of them implies
  // tls. server_name: the name to verify instead of the target's host.
  bool tls = false;
  std::string ca;
  std::string cert;
  std::string key;
  std::string server_name;
  std::string lb_policy = "round_robin";  // or pick_first
  bool retry = false;
  // With round_robin, send calls only to servers whose health service says
  // SERVING (ServiceConfigJson). Off for the health command, which asks
  // the health service itself and must reach a server that says NOT_SERVING.
  bool watch_health = true;
  int max_message_bytes = 64 << 20;  // blur results reach 16 MiB
};

// Whether the options ask for TLS (--tls, or any of --ca, --cert, --key).
bool UsesTls(const ChannelOptions& options);

// The host name a target dials (host:port, dns:[//authority/]host:port):
// what TLS verifies the server's certificate against. Empty for an IP
// address, an ipv4:/ipv6: list and other schemes.
std::string TargetHostName(absl::string_view target);

// The service config JSON that CreateChannels installs.
std::string ServiceConfigJson(const ChannelOptions& options);

// InvalidArgument, one line naming the flag, for TLS options that do not
// go together (--server_name without TLS, --cert without --key) or a PEM
// file that cannot be read, is empty, or does not hold what its flag needs
// (checked with OpenSSL: certificates for --ca and --cert, an unencrypted
// private key for --key).
absl::Status CheckCredentials(const ChannelOptions& options);

// InvalidArgument when a port in --target is not 1-65535, `http` or `https`
// (which gRPC reads as 80 and 443) (host:port,
// [v6]:port, dns:[//authority/]host:port, ipv4:/ipv6: lists). gRPC takes
// such a port modulo 65536: 127.0.0.1:112836 reached port 47300. Other
// schemes (unix:) and host names without a port (gRPC gives them 443)
// are gRPC's to judge; an IP address without a port is refused (gRPC
// dialled port 0), as is an ipv4:/ipv6: address without one.
absl::Status CheckTargetPorts(absl::string_view target);

// `count` independent channels (connections) to the target. Errors:
// InvalidArgument for inconsistent options or a PEM file CheckCredentials
// refuses.
// Channels connect lazily; a wrong address shows as UNAVAILABLE on the
// first call.
absl::StatusOr<std::vector<std::shared_ptr<grpc::Channel>>> CreateChannels(
    const ChannelOptions& options, int count);
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(
    const ChannelOptions& options);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_CHANNEL_H_
