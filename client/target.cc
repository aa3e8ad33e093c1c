#include "client/target.h"

#include <arpa/inet.h>

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace compute::client {

TargetParts SplitTarget(absl::string_view target) {
  TargetParts parts;
  absl::string_view rest = target;
  for (absl::string_view scheme : {"ipv4:", "ipv6:"}) {
    if (!absl::ConsumePrefix(&rest, scheme)) continue;
    parts.kind = TargetParts::Kind::kAddressList;
    parts.scheme = scheme;
    while (absl::ConsumePrefix(&rest, "/")) {
    }
    parts.addresses = absl::StrSplit(rest, ',', absl::SkipEmpty());
    return parts;
  }
  if (absl::ConsumePrefix(&rest, "dns:")) {
    parts.kind = TargetParts::Kind::kName;
    if (absl::ConsumePrefix(&rest, "//")) {
      const size_t slash = rest.find('/');
      parts.authority = rest.substr(0, slash);
      if (slash == absl::string_view::npos) return parts;  // no name
      rest.remove_prefix(slash + 1);
    } else {
      // dns:/host:port: gRPC takes the URI's path without its slash.
      absl::ConsumePrefix(&rest, "/");
    }
    parts.addresses.push_back(rest);
    return parts;
  }
  if (absl::StrContains(rest, ":/") || absl::StartsWith(rest, "unix:") ||
      absl::StartsWith(rest, "unix-abstract:")) {
    return parts;  // kOther
  }
  parts.kind = TargetParts::Kind::kName;
  parts.addresses.push_back(rest);
  return parts;
}

HostPort SplitHostPort(absl::string_view address) {
  HostPort split;
  split.host = address;
  absl::string_view inner = address;
  if (absl::ConsumePrefix(&inner, "[")) {
    const size_t close = inner.find(']');
    if (close == absl::string_view::npos) return split;
    absl::string_view after = inner.substr(close + 1);
    if (absl::ConsumePrefix(&after, ":")) {
      split.has_port = true;
      split.port = after;
    } else if (!after.empty()) {
      return split;  // not an address: gRPC's to judge
    }
    split.bracketed = true;
    split.host = inner.substr(0, close);
    return split;
  }
  if (std::count(address.begin(), address.end(), ':') == 1) {
    const size_t colon = address.find(':');
    split.host = address.substr(0, colon);
    split.port = address.substr(colon + 1);
    split.has_port = true;
  }
  return split;
}

bool IsIpAddress(absl::string_view host) {
  const std::string unzoned(host.substr(0, host.find('%')));
  in6_addr ip6;
  in_addr ip4;
  return inet_pton(AF_INET, unzoned.c_str(), &ip4) == 1 ||
         inet_pton(AF_INET6, unzoned.c_str(), &ip6) == 1;
}

}  // namespace compute::client
