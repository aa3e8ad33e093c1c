// target: reads a --target the way gRPC 1.51's resolvers will, so that the
// client can check it (CheckTargetPorts), name the host that TLS verifies
// (TargetHostName) and resolve it itself (ResolveTarget), from one reading.
#ifndef COMPUTE_CLIENT_TARGET_H_
#define COMPUTE_CLIENT_TARGET_H_

#include <vector>

#include "absl/strings/string_view.h"

namespace compute::client {

struct TargetParts {
  enum class Kind {
    kName,  // host:port, [v6]:port, host, dns:[//authority/ or /]host:port
    kAddressList,  // ipv4:a:p,b:q or ipv6:[a]:p,[b]:q
    kOther,        // unix:, unix-abstract:, any other scheme://
  };
  Kind kind = Kind::kOther;
  // "ipv4:" or "ipv6:" for an address list, else empty.
  absl::string_view scheme;
  // kName: the one address after any scheme and authority (none for
  // dns://authority without a name); kAddressList: each listed address
  // (empty ones skipped; gRPC drops the path's leading slashes, so
  // ipv4:///a:p is ipv4:a:p); kOther: none.
  std::vector<absl::string_view> addresses;
  // kName with a dns://authority/: the DNS server gRPC is to ask.
  absl::string_view authority;
};
TargetParts SplitTarget(absl::string_view target);

struct HostPort {
  absl::string_view host;  // without brackets
  absl::string_view port;  // empty when has_port is false
  bool has_port = false;
  bool bracketed = false;
};
// host:port, [v6]:port, host, [v6]. An address with more than one colon
// and no brackets (an IPv6 address, or one and a port: ::1:50051) has no
// port: its host is the whole address. So is a bracketed one with anything
// but ":port" after its closing bracket.
HostPort SplitHostPort(absl::string_view address);

// An IPv4 or IPv6 address (an IPv6 zone, %lo, allowed), not a host name.
bool IsIpAddress(absl::string_view host);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_TARGET_H_
