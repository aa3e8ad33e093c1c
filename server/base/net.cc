#include "server/base/net.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>

#include "absl/strings/str_cat.h"

namespace compute {

std::string HostPort(absl::string_view host, int port) {
  if (host.find(':') != absl::string_view::npos) {
    return absl::StrCat("[", host, "]:", port);
  }
  return absl::StrCat(host, ":", port);
}

absl::Status CheckListenAddress(absl::string_view flag, absl::string_view host,
                                int port, bool ipv4_only,
                                absl::string_view port_name) {
  if (host.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": empty; ", ipv4_only ? "0.0.0.0" : "0.0.0.0 (or ::)",
        " listens on every interface"));
  }
  const std::string host_text(host);
  in6_addr ipv6;
  const bool is_ipv6 = host.find(':') != absl::string_view::npos &&
                       inet_pton(AF_INET6, host_text.c_str(), &ipv6) == 1;
  // "0.0.0.0:9464", "[::1]:80", "localhost:80": not an address, and not
  // IPv6 (an IPv6 address with a zone, "fe80::1%eth0", has more colons).
  if (!is_ipv6 &&
      (host.front() == '[' || std::count(host.begin(), host.end(), ':') == 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": '", host,
        "' has a port in it; give the host alone (the port has its own "
        "flag)"));
  }
  if (ipv4_only && host.find(':') != absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": '", host,
        "' is IPv6, which the metrics endpoint's HTTP server (civetweb as "
        "Debian builds it) cannot listen on; use an IPv4 address such as "
        "0.0.0.0"));
  }
  addrinfo hints{};
  hints.ai_family = ipv4_only ? AF_INET : AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  const std::string port_text = absl::StrCat(port);
  addrinfo* addresses = nullptr;
  const int rc =
      getaddrinfo(host_text.c_str(), port_text.c_str(), &hints, &addresses);
  if (rc == EAI_AGAIN || rc == EAI_SYSTEM || rc == EAI_MEMORY) {
    return absl::OkStatus();  // not the value's fault: the bind will tell
  }
  if (rc != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        flag, ": '", host, "' does not resolve",
        ipv4_only ? " to an IPv4 address (" : " (", gai_strerror(rc), ")"));
  }
  // Not of this host only when every address it names is refused as such.
  bool not_here = true;
  bool in_use = false;
  for (addrinfo* a = addresses; a != nullptr && !in_use; a = a->ai_next) {
    int fd =
        socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      not_here = false;
      continue;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0) {
      not_here = false;
    } else if (errno == EADDRINUSE) {
      in_use = true;
    } else if (errno != EADDRNOTAVAIL) {
      not_here = false;
    }
    close(fd);
  }
  freeaddrinfo(addresses);
  if (in_use) {
    return absl::AlreadyExistsError(absl::StrCat(
        port_name, port_name.empty() ? "" : ": ", "port ", port, " is in use"));
  }
  if (not_here) {
    return absl::InvalidArgumentError(
        absl::StrCat(flag, ": '", host, "' is not an address of this host"));
  }
  return absl::OkStatus();
}

bool PokeListener(absl::string_view host, int port) {
  std::string host_text(host);
  if (host_text.empty() || host_text == "0.0.0.0") host_text = "127.0.0.1";
  if (host_text == "::") host_text = "::1";
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  std::string port_text = absl::StrCat(port);
  addrinfo* addresses = nullptr;
  if (getaddrinfo(host_text.c_str(), port_text.c_str(), &hints, &addresses) !=
      0) {
    return false;
  }
  bool connected = false;
  for (addrinfo* a = addresses; a != nullptr && !connected; a = a->ai_next) {
    int fd =
        socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    connected = connect(fd, a->ai_addr, a->ai_addrlen) == 0;
    close(fd);
  }
  freeaddrinfo(addresses);
  return connected;
}

}  // namespace compute
