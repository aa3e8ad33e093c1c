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

// Whether this process can listen on host:port, checked before gRPC or
// civetweb try (their own failures say less, in more lines). One lookup;
// a TCP socket bound to each address it gives, with SO_REUSEADDR (as gRPC
// and civetweb do, so a port with connections in TIME_WAIT counts as free)
// and without SO_REUSEPORT, then closed:
//   - InvalidArgument naming `flag` when `host` is empty, does not resolve,
//     or resolves only to addresses that no interface of this host has
//     (EADDRNOTAVAIL); with `ipv4_only`, also an IPv6 literal or a name
//     without an IPv4 address;
//   - AlreadyExists "port N is in use" when a bind fails with EADDRINUSE,
//     after "`port_name`: " when one is given (the flag, or the COMPUTE_
//     variable the port came from);
//   - OK otherwise, including port 0 and what it cannot judge (a lookup that
//     fails for now, EAI_AGAIN; a socket it cannot make, as on a kernel
//     without IPv6; other bind errors): the server's own bind then says why.
absl::Status CheckListenAddress(absl::string_view flag, absl::string_view host,
                                int port, bool ipv4_only = false,
                                absl::string_view port_name = "");

// Connects to a listener of this process on host:port (a wildcard host,
// "0.0.0.0", "::" or empty, is reached through its loopback address) and
// closes the connection at once: wakes a thread polling the listening
// socket. False when no connection was made (nothing listens there now).
bool PokeListener(absl::string_view host, int port);

}  // namespace compute

#endif  // COMPUTE_SERVER_BASE_NET_H_
