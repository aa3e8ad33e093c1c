#include "tests/unit/metrics/exposition.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "prometheus/text_serializer.h"

namespace compute::metrics::testing {
namespace {

bool IsNameChar(char c, bool first) {
  return absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_' ||
         c == ':' ||
         (!first && absl::ascii_isdigit(static_cast<unsigned char>(c)));
}

absl::string_view ConsumeName(absl::string_view& s) {
  size_t n = 0;
  while (n < s.size() && IsNameChar(s[n], n == 0)) ++n;
  absl::string_view name = s.substr(0, n);
  s.remove_prefix(n);
  return name;
}

bool ParseValue(absl::string_view s, double* out) {
  if (s == "+Inf") {
    *out = std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "-Inf") {
    *out = -std::numeric_limits<double>::infinity();
    return true;
  }
  if (s == "NaN") {
    *out = std::numeric_limits<double>::quiet_NaN();
    return true;
  }
  return absl::SimpleAtod(s, out);
}

// Whether `s` is well-formed UTF-8 (RFC 3629), decoded a code point at a
// time: Prometheus refuses a scrape with a label value that is not.
bool IsUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const unsigned char b = static_cast<unsigned char>(s[i]);
    int more = 0;
    uint32_t cp = 0;
    uint32_t min = 0;
    if (b < 0x80) {
      cp = b;
    } else if ((b & 0xe0) == 0xc0) {
      more = 1, cp = b & 0x1f, min = 0x80;
    } else if ((b & 0xf0) == 0xe0) {
      more = 2, cp = b & 0x0f, min = 0x800;
    } else if ((b & 0xf8) == 0xf0) {
      more = 3, cp = b & 0x07, min = 0x10000;
    } else {
      return false;
    }
    ++i;
    for (; more > 0; --more, ++i) {
      if (i >= s.size() || (static_cast<unsigned char>(s[i]) & 0xc0) != 0x80) {
        return false;
      }
      cp = (cp << 6) | (static_cast<unsigned char>(s[i]) & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return false;
    }
  }
  return true;
}

absl::Status ParseLine(absl::string_view line, Sample* sample) {
  absl::string_view rest = line;
  sample->name = std::string(ConsumeName(rest));
  if (sample->name.empty()) return absl::InvalidArgumentError("no name");
  if (absl::ConsumePrefix(&rest, "{")) {
    while (!absl::ConsumePrefix(&rest, "}")) {
      std::string label(ConsumeName(rest));
      if (label.empty() || !absl::ConsumePrefix(&rest, "=\"")) {
        return absl::InvalidArgumentError("bad label");
      }
      std::string value;
      for (;;) {
        if (rest.empty()) return absl::InvalidArgumentError("open quote");
        char c = rest[0];
        rest.remove_prefix(1);
        if (c == '"') break;
        if (c == '\\') {
          if (rest.empty()) return absl::InvalidArgumentError("bad escape");
          char e = rest[0];
          rest.remove_prefix(1);
          if (e == 'n') {
            value += '\n';
          } else if (e == '\\' || e == '"') {
            value += e;
          } else {
            return absl::InvalidArgumentError("bad escape");
          }
        } else {
          value += c;
        }
      }
      if (!IsUtf8(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid label value (not UTF-8) for ", label));
      }
      if (!sample->labels.emplace(label, value).second) {
        return absl::InvalidArgumentError(absl::StrCat("repeated ", label));
      }
      if (!absl::ConsumePrefix(&rest, ",") && !absl::StartsWith(rest, "}")) {
        return absl::InvalidArgumentError("expected , or }");
      }
    }
  }
  if (!absl::ConsumePrefix(&rest, " ")) {
    return absl::InvalidArgumentError("no space before the value");
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(rest, ' ', absl::SkipEmpty());
  if (fields.empty() || fields.size() > 2 ||
      !ParseValue(fields[0], &sample->value)) {
    return absl::InvalidArgumentError("bad value");
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<Sample> Exposition::All(const std::string& name,
                                    const Labels& labels) const {
  std::vector<Sample> out;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) match = false;
    }
    if (match) out.push_back(s);
  }
  return out;
}

std::optional<double> Exposition::Value(const std::string& name,
                                        const Labels& labels) const {
  std::optional<double> found;
  for (const Sample& s : samples) {
    if (s.name == name && s.labels == labels) {
      if (found) return std::nullopt;  // not unique: a bug in the output
      found = s.value;
    }
  }
  return found;
}

double Exposition::Sum(const std::string& name, const Labels& labels) const {
  double sum = 0;
  for (const Sample& s : All(name, labels)) sum += s.value;
  return sum;
}

absl::StatusOr<Exposition> ParseExposition(const std::string& text) {
  Exposition e;
  int number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++number;
    if (line.empty()) continue;
    if (absl::ConsumePrefix(&line, "#")) {
      std::vector<absl::string_view> f =
          absl::StrSplit(line, ' ', absl::SkipEmpty());
      if (f.size() == 3 && f[0] == "TYPE") {
        e.types[std::string(f[1])] = std::string(f[2]);
      }
      continue;
    }
    Sample sample;
    if (absl::Status s = ParseLine(line, &sample); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", number, ": ", s.message(), ": ", line));
    }
    e.samples.push_back(std::move(sample));
  }
  return e;
}

absl::StatusOr<Exposition> SerializeAndParse(
    const std::vector<prometheus::MetricFamily>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, families);
  return ParseExposition(out.str());
}

absl::StatusOr<HttpResponse> HttpGet(const std::string& host, int port,
                                     const std::string& target,
                                     absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return absl::InternalError("socket");
  struct Closer {
    int fd;
    ~Closer() { close(fd); }
  } closer{fd};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("not an IPv4 address: ", host));
  }
  auto wait = [&](short events) -> absl::Status {
    absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError("HTTP GET timed out");
    }
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1);
    if (n < 0 && errno != EINTR) return absl::InternalError("poll");
    return absl::OkStatus();
  };
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    if (errno != EINPROGRESS) {
      return absl::UnavailableError(
          absl::StrCat("connect: ", std::strerror(errno)));
    }
    if (absl::Status s = wait(POLLOUT); !s.ok()) return s;
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      return absl::UnavailableError(
          absl::StrCat("connect: ", std::strerror(error)));
    }
  }
  std::string request = absl::StrCat(
      "GET ", target, " HTTP/1.0\r\nHost: ", host, ":", port, "\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n =
        send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (absl::Status s = wait(POLLOUT); !s.ok()) return s;
    } else {
      return absl::UnavailableError("send");
    }
  }
  std::string raw;
  char buffer[16384];
  for (;;) {
    ssize_t n = recv(fd, buffer, sizeof(buffer), 0);
    if (n > 0) {
      raw.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EINTR) {
      if (absl::Status s = wait(POLLIN); !s.ok()) return s;
    } else {
      return absl::UnavailableError("recv");
    }
  }
  size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return absl::DataLossError("no HTTP header");
  HttpResponse response;
  response.body = raw.substr(end + 4);
  std::vector<absl::string_view> lines =
      absl::StrSplit(absl::string_view(raw).substr(0, end), "\r\n");
  std::vector<absl::string_view> status_line =
      absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  if (status_line.size() < 2 ||
      !absl::SimpleAtoi(status_line[1], &response.status)) {
    return absl::DataLossError(absl::StrCat("bad status line: ", lines[0]));
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(lines[i], absl::MaxSplits(':', 1));
    if (absl::EqualsIgnoreCase(kv.first, "content-type")) {
      response.content_type =
          std::string(absl::StripAsciiWhitespace(kv.second));
    }
  }
  return response;
}

absl::StatusOr<Exposition> Scrape(int port) {
  absl::StatusOr<HttpResponse> r = HttpGet("127.0.0.1", port, "/metrics");
  if (!r.ok()) return r.status();
  if (r->status != 200) {
    return absl::InternalError(absl::StrCat("HTTP ", r->status));
  }
  return ParseExposition(r->body);
}

namespace {

// Binds 127.0.0.1:port (0: the kernel picks one) and releases it: the
// port bound, or 0 if it could not be.
int BindLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  socklen_t len = sizeof(addr);
  int bound = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    bound = ntohs(addr.sin_port);
  }
  close(fd);
  return bound;
}

// The kernel's ephemeral port range (Linux's default if it cannot be read).
struct PortRange {
  int low = 32768;
  int high = 60999;
};
PortRange EphemeralRange() {
  std::ifstream file("/proc/sys/net/ipv4/ip_local_port_range");
  PortRange range;
  if (PortRange read; file >> read.low >> read.high && read.low <= read.high) {
    range = read;
  }
  return range;
}

}  // namespace

int FreeLoopbackPort() {
  // 10,000 ports below the ephemeral range, or above it when it starts
  // too low to leave room (1024-..., a common tuning), from a random start
  // (so that test processes running at once rarely try the same ones),
  // each call of this process after the last one's (so that two calls
  // before the children bind never return the same port). With no room
  // either side, the kernel's pick.
  constexpr int kSpan = 10'000;
  const PortRange ephemeral = EphemeralRange();
  int low = 0;
  if (ephemeral.low - kSpan > 1024) {
    low = ephemeral.low - kSpan;
  } else if (ephemeral.high + kSpan <= 65535) {
    low = ephemeral.high + 1;
  } else {
    return BindLoopback(0);  // the kernel's pick
  }
  static std::atomic<unsigned> next{[] {
    std::random_device seed;
    return std::uniform_int_distribution<unsigned>(0, kSpan - 1)(seed);
  }()};
  for (int i = 0; i < kSpan; ++i) {
    const int port = low + static_cast<int>(next.fetch_add(1) % kSpan);
    if (BindLoopback(port) == port) return port;
  }
  return 0;
}

}  // namespace compute::metrics::testing
