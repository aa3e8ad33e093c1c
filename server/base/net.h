// Addresses and listening ports, for the gRPC server and the metrics
// endpoint.
#ifndef COMPUTE_SERVER_BASE_NET_H_
#define COMPUTE_SERVER_BASE_NET_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace compute {

// "host:port", with an IPv6 literal in brackets: "[::1]:50051". The syntax
// both gRPC and civetweb take for a listening address.
std::string HostPort(absl::string_view host, int port);

// Whether another socket already listens on host:port. Binds a TCP socket
// to each address `host` resolves to, with SO_REUSEADDR (as gRPC and
// civetweb do, so a port with connections in TIME_WAIT counts as free) and
// without SO_REUSEPORT, then closes it. AlreadyExistsError "port N is in
// use" when a bind fails with EADDRINUSE; OK otherwise, including port 0
// and a host that does not resolve (the server's own bind reports that).
absl::Status CheckPortFree(absl::string_view host, int port);

// InvalidArgument naming `flag` when `host` cannot be a listening address
// here: empty, not resolving, or resolving only to addresses that no
// interface of this host has (bind: EADDRNOTAVAIL). With `ipv4_only`, an
// IPv6 literal or a name without an IPv4 address is refused too. OK when
// the name cannot be looked up now (EAI_AGAIN) or a socket or bind fails
// otherwise (a kernel without IPv6, no fds left): the server's own bind
// then says why.
absl::Status CheckListenAddress(absl::string_view flag, absl::string_view host,
                                bool ipv4_only = false);

// Connects to a listener of this process on host:port (a wildcard host,
// "0.0.0.0", "::" or empty, is reached through its loopback address) and
// closes the connection at once: wakes a thread polling the listening
// socket. False when no connection was made (nothing listens there now).
bool PokeListener(absl::string_view host, int port);

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_NET_H_
