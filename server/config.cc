#include "server/config.h"

#include <arpa/inet.h>
#include <net/if.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/marshalling.h"
#include "absl/flags/reflection.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "server/base/flag_text.h"
#include "server/service/compute_service.h"

ABSL_FLAG(std::string, address, "0.0.0.0", "address the gRPC server binds");
ABSL_FLAG(int, port, 50051, "gRPC port (0: the kernel picks one)");
ABSL_FLAG(int, workers, 0,
          "maximum worker threads (0: the container-aware CPU count)");
ABSL_FLAG(int, io_threads, 0,
          "threads that receive and answer calls, each polling its own "
          "completion queue (0: the container-aware CPU count)");
ABSL_FLAG(int, min_workers, 0,
          "workers kept when idle, at most --workers (0: same as --workers, "
          "no shrinking)");
ABSL_FLAG(absl::Duration, idle_timeout, absl::Seconds(60),
          "a worker above --min_workers idle this long exits");
ABSL_FLAG(int, queue_capacity, 64,
          "tasks that may wait for a worker; beyond, RESOURCE_EXHAUSTED "
          "(0: queueless)");
ABSL_FLAG(std::string, max_inflight_bytes, "auto",
          "bytes the server may hold in calls, like 512Mi or 2G: 1/4 for "
          "admitted requests and their responses (beyond, RESOURCE_EXHAUSTED), "
          "3/4 for gRPC's transport (auto: 25/32 of the cgroup memory limit "
          "less 64Mi, else 512Mi; 0: no limit)");
ABSL_FLAG(absl::Duration, target_queue_wait, absl::Milliseconds(100),
          "under sustained overload, the queue wait admission holds a "
          "standing queue to (inf: no overload control)");
ABSL_FLAG(absl::Duration, inline_max_cost, absl::Microseconds(20),
          "a call estimated to run at most this long runs at once on the "
          "thread that received it when a worker's place is free and nothing "
          "is queued (no hand-off to a worker; 0: never)");
ABSL_FLAG(bool, trust_tenant_header, false,
          "take a call's tenant from its compute-tenant metadata when it has "
          "no verified client certificate (only behind a proxy that sets it)");
ABSL_FLAG(int, tenant_ipv6_prefix, 128,
          "a call's tenant by its IPv6 peer address is the address's first "
          "this many bits, so a client cannot be many tenants by "
          "rotating the addresses of its /N (64: a host's usual /64; 128: "
          "each address its own tenant)");
ABSL_FLAG(std::string, tenant_weights, "",
          "fair-share weights of named tenants, like gold=4,silver=2 "
          "(others: 1)");
ABSL_FLAG(absl::Duration, load_report_interval, absl::Milliseconds(1),
          "the server's load goes in the trailers of every refusal and of "
          "at least one answer per this interval on each I/O thread (ORCA "
          "endpoint-load-metrics-bin and compute-load; 0: every answer; "
          "inf: none)");
ABSL_FLAG(bool, worker_spin, true,
          "an idle worker spins a few microseconds for the next task before "
          "it sleeps (one at a time)");
ABSL_FLAG(int, tenant_metrics, 0,
          "export per-tenant series (compute_tenant_*) for at most this many "
          "tenants, the top ones by cost sent, plus \"other\" (0: none)");
ABSL_FLAG(bool, admission, true,
          "refuse at once calls whose deadline the queue would make them miss");
ABSL_FLAG(absl::Duration, drain_timeout, absl::Seconds(20),
          "on SIGTERM, how long accepted calls may still run");
ABSL_FLAG(
    absl::Duration, max_connection_age, absl::InfiniteDuration(),
    "close connections this old (GOAWAY) so clients rebalance; inf: never");
ABSL_FLAG(absl::Duration, max_connection_age_grace, absl::InfiniteDuration(),
          "time calls on an aged connection get to finish");
ABSL_FLAG(absl::Duration, max_connection_idle, absl::InfiniteDuration(),
          "close connections that had no call for this long (GOAWAY); inf: "
          "never");
ABSL_FLAG(absl::Duration, keepalive_time, absl::Hours(2),
          "ping an idle connection this often");
ABSL_FLAG(absl::Duration, keepalive_timeout, absl::Seconds(20),
          "close a connection whose ping is not answered in this time");
ABSL_FLAG(std::string, max_message_bytes, "32Mi",
          "largest request or response message, a byte size from 4Ki to 1Gi");
ABSL_FLAG(int, max_concurrent_streams, 256,
          "calls one connection may have open at once (HTTP/2 "
          "SETTINGS_MAX_CONCURRENT_STREAMS); a client's further calls wait "
          "on its side (at least 2: a client that watches health holds one "
          "stream of each connection)");
ABSL_FLAG(std::string, tls_cert, "", "PEM server certificate (enables TLS)");
ABSL_FLAG(std::string, tls_key, "", "PEM server private key");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA for client certificates (enables mutual TLS)");
ABSL_FLAG(std::string, metrics_address, "0.0.0.0",
          "address of the Prometheus endpoint");
ABSL_FLAG(int, metrics_port, 9464,
          "Prometheus /metrics port (0: no metrics endpoint)");
ABSL_FLAG(std::string, log_level, "info",
          "least severe log line printed: debug, info, warning or error; "
          "gRPC's own messages all at debug, else only its errors");

namespace compute {
namespace {

// The flags defined above, by name: every ABSL_FLAG of this file and no
// other (absl's registry also holds the flags of the libraries we link).
// Defining a flag here gives its variable and --help; its copy into
// Config (ParseConfig) and its field in the start-up line (StartupFields
// in main.cc, checked by ServerE2eTest.TheStartupLineHasEveryFlag) are
// written by hand.
const std::vector<std::string>& FlagNames() {
  static const std::vector<std::string>* names = [] {
    auto* names = new std::vector<std::string>;
    for (const auto& [name, flag] : absl::GetAllFlags()) {
      // absl keeps the defining file's path, minus a leading "/".
      const std::string file = flag->Filename();
      if (!file.empty() && absl::EndsWith(__FILE__, file)) {
        names->push_back(std::string(name));
      }
    }
    std::sort(names->begin(), names->end());
    return names;
  }();
  return *names;
}

std::string EnvName(absl::string_view flag) {
  return absl::StrCat("COMPUTE_", absl::AsciiStrToUpper(flag));
}

bool Known(absl::string_view name) {
  for (const std::string& f : FlagNames()) {
    if (name == f) return true;
  }
  return false;
}

// Which flags were given, and where: "--name" or "COMPUTE_NAME" (the later
// wins), so a value checked after parsing can still name its source.
using Origins = std::map<std::string, std::string, std::less<>>;

// max_inflight_bytes. Without a cgroup limit we cannot tell what memory is
// ours, so the default is one a small machine can spare that still holds
// several calls at the largest message size. Below the minimum the budget
// would refuse ordinary calls: a typo (512Ki for 512Mi) rather than a choice.
constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kDefaultInflightBytes = 512 * kMiB;
constexpr int64_t kMinInflightBytes = kMiB;
// The server's own memory beside its budget and gRPC's quota: 21 MiB idle,
// and 50-60 MiB more than those two in a burst of large calls under a
// 256 MiB cgroup, where it is the largest share.
constexpr int64_t kProcessReserve = 64 * kMiB;

// The one line start-up prints, whatever the values quoted in it hold: a
// value from a ConfigMap may well carry a newline (a YAML block scalar ends
// in one), and a raw control character would split or garble that line. So
// each is written as its C escape (\n, \x01).
absl::Status ConfigError(absl::string_view what) {
  std::string line;
  for (char c : what) {
    if (absl::ascii_iscntrl(static_cast<unsigned char>(c))) {
      absl::StrAppend(&line, absl::CHexEscape(absl::string_view(&c, 1)));
    } else {
      line.push_back(c);
    }
  }
  return absl::InvalidArgumentError(line);
}

// The integer flags' ranges, for their checks (InRange) and for a number
// too large for an int: "--workers: '99999999999': must be between 0 and
// 4096", not the int's range (until 2026-12-06). Two have checks of their
// own, which say more: --min_workers against --workers, and
// --max_concurrent_streams with its reason.
struct IntRange {
  int lo;
  int hi;
};
std::optional<IntRange> IntFlagRange(absl::string_view name) {
  static const auto* const ranges =
      new std::map<std::string, IntRange, std::less<>>{
          {"port", {0, 65535}},
          {"metrics_port", {0, 65535}},
          {"workers", {0, 4096}},
          {"min_workers", {0, 4096}},
          {"io_threads", {0, 256}},
          {"queue_capacity", {0, 1 << 20}},
          {"tenant_ipv6_prefix", {1, 128}},
          {"tenant_metrics", {0, 1000}},
          {"max_concurrent_streams", {2, std::numeric_limits<int>::max()}},
      };
  auto it = ranges->find(name);
  if (it == ranges->end()) return std::nullopt;
  return it->second;
}

std::string RangeText(IntRange range) {
  return absl::StrCat("must be between ", range.lo, " and ", range.hi);
}

std::string ExpectedValue(const absl::CommandLineFlag& flag,
                          absl::string_view text) {
  if (flag.IsOfType<bool>()) return ExpectedFlagValue<bool>();
  if (flag.IsOfType<int>()) {
    std::string error = FlagValueError<int>(text);
    std::optional<IntRange> range = IntFlagRange(flag.Name());
    if (range.has_value() && absl::StartsWith(error, "out of range")) {
      return RangeText(*range);
    }
    return error;
  }
  if (flag.IsOfType<absl::Duration>()) {
    return ExpectedFlagValue<absl::Duration>();
  }
  return ExpectedFlagValue<std::string>();
}

// "true", "false", "yes", "0", ...: what absl takes as a bool.
bool IsBoolText(absl::string_view text) {
  bool value;
  std::string error;
  return absl::ParseFlag(text, &value, &error);
}

absl::Status SetFlag(absl::string_view name, absl::string_view value,
                     absl::string_view source, Origins* origins) {
  absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
  std::string error;
  if (flag == nullptr || !Known(name)) {
    return ConfigError(absl::StrCat("unknown flag --", name, " (see --help)"));
  }
  if (!flag->ParseFrom(value, &error)) {
    // absl's own error ("Illegal value '5' specified for flag ...") says
    // neither what was wrong nor what to write: say what a value looks like,
    // in the client's words.
    return ConfigError(absl::StrCat("bad value for ", source, ": '", value,
                                    "': ", ExpectedValue(*flag, value)));
  }
  (*origins)[std::string(name)] = std::string(source);
  return absl::OkStatus();
}

// --name=value, --name value, --bool, --nobool, and --bool true|false (the
// server takes no positional arguments, so a bool's value may follow it).
absl::Status ParseArgs(int argc, const char* const* argv, bool* help,
                       Origins* origins) {
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (!absl::StartsWith(arg, "-")) {
      return ConfigError(
          absl::StrCat("unexpected argument '", arg, "' (see --help)"));
    }
    arg.remove_prefix(absl::StartsWith(arg, "--") ? 2 : 1);
    std::string name(arg.substr(0, arg.find('=')));
    // -h, -help, --help, --helpfull, --help=true: as absl takes them.
    if (name == "h" || name == "help" || name == "helpfull") {
      *help = true;
      continue;
    }
    bool has_value = arg.find('=') != absl::string_view::npos;
    std::string value =
        has_value ? std::string(arg.substr(arg.find('=') + 1)) : "";
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    // --noX negates a bool X only: "--noport 5" is an unknown flag, not
    // --noport with the value 5.
    bool negated = !Known(name) && absl::StartsWith(name, "no") &&
                   Known(name.substr(2)) &&
                   absl::FindCommandLineFlag(name.substr(2))->IsOfType<bool>();
    if (!Known(name) && !negated) {
      return ConfigError(
          absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    // "--noadmission=false": the negated form takes no value (absl's
    // own parser refuses it too); before, "unknown flag --noadmission".
    if (negated && has_value) {
      return ConfigError(absl::StrCat("--", name, " takes no value (write --",
                                      name.substr(2), "=true or --",
                                      name.substr(2), "=false)"));
    }
    if (!has_value) {
      if (flag != nullptr && Known(name) && flag->IsOfType<bool>()) {
        value = i + 1 < argc && IsBoolText(argv[i + 1]) ? argv[++i] : "true";
      } else if (negated) {
        name = name.substr(2);
        value = "false";
      } else if (i + 1 < argc) {
        value = argv[++i];
      } else {
        return ConfigError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (absl::Status s =
            SetFlag(name, value, absl::StrCat("--", name), origins);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

// Where a flag's value came from, for its error: "--name" or
// "COMPUTE_NAME". An operator who set the variable in a manifest searches
// for that name, not the flag's.
std::string Source(const Origins& origins, absl::string_view name) {
  auto it = origins.find(name);
  return it != origins.end() ? it->second : absl::StrCat("--", name);
}

absl::Status Positive(const Origins& origins, absl::string_view name,
                      absl::Duration d) {
  if (d <= absl::ZeroDuration()) {
    return ConfigError(absl::StrCat(Source(origins, name), " must be > 0 (got ",
                                    absl::FormatDuration(d), ")"));
  }
  return absl::OkStatus();
}

absl::Status InRange(const Origins& origins, absl::string_view name, int v) {
  const IntRange range = *IntFlagRange(name);
  if (v < range.lo || v > range.hi) {
    return ConfigError(absl::StrCat(Source(origins, name), " ",
                                    RangeText(range), " (got ", v, ")"));
  }
  return absl::OkStatus();
}

// A byte-size flag's `text` ("512Mi", "1048576"), or the one-line error
// naming where it came from (`origin`: the flag or its variable).
absl::StatusOr<int64_t> ByteSizeFlag(const std::string& text,
                                     const std::string& origin) {
  absl::StatusOr<int64_t> parsed = ParseByteSize(text);
  if (!parsed.ok()) {
    return ConfigError(absl::StrCat("bad value for ", origin, ": '", text,
                                    "': ", parsed.status().message()));
  }
  return parsed;
}

// --max_inflight_bytes into *bytes, and why into *reason. When auto, 25/32
// of what the cgroup limit leaves after kProcessReserve: the server holds
// up to its budget in calls (SplitMemoryBudget), on top of its own memory
// and what its allocator keeps, so 78% of the rest leaves headroom at any
// limit. The first default, half the limit for the pool alone (the
// transport took as much again), let a burst of large calls get the server
// OOM-killed under 512 MiB and 256 MiB cgroups (README, "Memory" under
// Kubernetes).
absl::Status MaxInflightBytes(const MemoryLimit& memory, const Origins& origins,
                              int64_t* bytes, std::string* reason) {
  std::string text = absl::GetFlag(FLAGS_max_inflight_bytes);
  // Only "auto": an empty value (a template's variable that rendered
  // empty) is refused, as every other flag's is, not taken as the default.
  if (text == "auto") {
    if (memory.limit_bytes.has_value()) {
      // A cgroup under the reserve cannot run the server under load
      // anyway; keep the minimum rather than fail on a limit nobody chose
      // for us.
      *bytes = std::max(kMinInflightBytes,
                        (*memory.limit_bytes - kProcessReserve) / 32 * 25);
      *reason =
          absl::StrCat("25/32 of the cgroup memory limit (",
                       FormatByteSize(*memory.limit_bytes), ") less ",
                       FormatByteSize(kProcessReserve), " for the process");
    } else {
      *bytes = kDefaultInflightBytes;
      *reason = "default (no cgroup memory limit)";
    }
    return absl::OkStatus();
  }
  std::string origin = Source(origins, "max_inflight_bytes");
  absl::StatusOr<int64_t> parsed = ByteSizeFlag(text, origin);
  if (!parsed.ok()) return parsed.status();
  if (*parsed != 0 && *parsed < kMinInflightBytes) {
    return ConfigError(absl::StrCat(
        origin, " must be 0 (no limit) or at least 1Mi (got ", text, ")"));
  }
  *bytes = *parsed;
  *reason = *parsed == 0 ? absl::StrCat("no limit (set by ", origin, ")")
                         : absl::StrCat("set by ", origin);
  return absl::OkStatus();
}

// One budget for every byte of calls the server holds, in two shares that
// cannot take from each other. gRPC's transport holds a request's body
// while it arrives, and a blur's pixels after that too (they stay in the
// received buffers until the call ends, server/service/wire.h); the pool
// holds what it admitted: requests and their responses until delivered.
// Those pixels are counted in both shares, and they are at most half of
// the pool's share (a blur's response is as large as its request). The two
// together never pass the budget. The pool gets 1/4 and the quota 3/4, so
// the transport always has at least 5/8 of the budget for the bodies it
// is reading: when the quota is full gRPC resets streams (no pushback, not
// counted by our metrics), and a larger pool share left it too little.
// Measured (64 16 MiB blurs at once under 512 MiB; docs/benchmarks.md,
// "Memory"):
// with 2/5 for the pool, 0-27 of the 64 calls were reset per burst; with
// 1/4, none in 11 bursts, every refusal the pool's own (reason memory, with
// pushback). (Before, the pool had the whole budget and the quota 1.5x it
// on top: peaks of 608-809 MiB.)
void SplitMemoryBudget(int64_t total, int64_t* pool, int64_t* transport) {
  *pool = total / 4;
  *transport = total - *pool;
}

// A link-local IPv6 name whose zone is an interface's name
// ("fe80::1%eth0/64") written with the interface's number instead
// ("fe80::1%2/64"), as gRPC writes a peer's; any other name as it is.
// Until 2026-12-06 such an entry was kept as written and never matched.
// An interface this host does not have is an error: the entry could never
// match either.
absl::StatusOr<std::string> ZoneByNumber(absl::string_view name,
                                         absl::string_view source) {
  const size_t percent = name.find('%');
  in6_addr ip;
  if (percent == absl::string_view::npos ||
      inet_pton(AF_INET6, std::string(name.substr(0, percent)).c_str(), &ip) !=
          1) {
    return std::string(name);  // not an IPv6 address ("urn:team%ops")
  }
  const size_t end = std::min(name.find('/', percent), name.size());
  const std::string zone(name.substr(percent + 1, end - percent - 1));
  uint32_t number = 0;
  if (zone.empty() || absl::SimpleAtoi(zone, &number)) {
    return std::string(name);
  }
  number = if_nametoindex(zone.c_str());
  if (number == 0) {
    return ConfigError(absl::StrCat(
        source, ": '", name, "' names the zone '", zone,
        "', but this host has no network interface of that name (`ip link` "
        "lists them)"));
  }
  return absl::StrCat(name.substr(0, percent + 1), number, name.substr(end));
}

// A --tenant_weights name that is an IPv6 address or network
// ("2001:DB8:0:1::5/64"), written as the server writes a peer's tenant
// (service::TenantFromPeer: lower case, compressed, host bits clear), so
// that any spelling matches; a network of another length than
// --tenant_ipv6_prefix could never match: an error. A bare address is
// written so too: as a peer's tenant at /128, or a certificate's IP SAN
// (written so by gRPC). Until 2026-12-06 it was kept as written, and
// "2001:DB8::5" never matched the peer 2001:db8::5. Any other name as it
// is.
absl::StatusOr<std::string> TenantWeightName(absl::string_view name,
                                             int ipv6_prefix,
                                             absl::string_view source,
                                             absl::string_view prefix_source) {
  absl::StatusOr<std::string> numbered = ZoneByNumber(name, source);
  if (!numbered.ok()) return numbered.status();
  name = *numbered;
  const size_t slash = name.find('/');
  if (slash == absl::string_view::npos) {
    std::optional<std::string> address =
        service::Ipv6Tenant(std::string(name), 128);
    return address.has_value() ? *std::move(address) : std::string(name);
  }
  const std::string address(name.substr(0, slash));
  if (!service::Ipv6Tenant(address, 128).has_value()) {
    return std::string(name);
  }
  int bits = 0;
  if (!absl::SimpleAtoi(name.substr(slash + 1), &bits) || bits < 1 ||
      bits > 128) {
    return ConfigError(absl::StrCat(source, ": '", name,
                                    "' has a prefix length outside 1..128"));
  }
  if (bits != ipv6_prefix) {
    return ConfigError(absl::StrCat(
        source, ": '", name, "' names a /", bits,
        " network, but IPv6 peers are tenants by their first ", ipv6_prefix,
        " bits (", prefix_source, "), so it would never match"));
  }
  return *service::Ipv6Tenant(address, bits);
}

// "gold=4,silver=2": name=weight pairs (spaces around each name and weight
// are dropped: "gold=4, silver=2" from a YAML list gave the weight to a
// tenant " silver" that no client names), weights in [0.001, 1000]: within a
// million of each other, so that a light tenant's virtual time does not
// run away from a heavy one's (a bound, not a guarantee: tags are doubles,
// reset each time the class empties).
absl::Status ParseTenantWeights(const std::string& text,
                                absl::string_view source, int ipv6_prefix,
                                absl::string_view prefix_source,
                                absl::flat_hash_map<std::string, double>* out) {
  out->clear();
  if (text.empty()) return absl::OkStatus();
  for (absl::string_view pair : absl::StrSplit(text, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(pair, '=');
    for (absl::string_view& part : parts) {
      part = absl::StripAsciiWhitespace(part);
    }
    double weight = 0;
    if (parts.size() != 2 || parts[0].empty() ||
        !absl::SimpleAtod(parts[1], &weight) || !(weight >= 0.001) ||
        weight > 1000) {
      return ConfigError(absl::StrCat(
          source, ": '", pair,
          "' is not name=weight with a weight in [0.001, 1000], like gold=4"));
    }
    absl::StatusOr<std::string> name =
        TenantWeightName(parts[0], ipv6_prefix, source, prefix_source);
    if (!name.ok()) return name.status();
    if (!out->emplace(*std::move(name), weight).second) {
      return ConfigError(
          absl::StrCat(source, ": tenant '", parts[0], "' is given twice"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::optional<std::string> GetEnv(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (v == nullptr) return std::nullopt;
  return std::string(v);
}

absl::StatusOr<Config> ParseConfig(int argc, const char* const* argv,
                                   const EnvLookup& env,
                                   const CpuCountSources& cpu_sources) {
  for (const std::string& name : FlagNames()) {
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error;
    flag->ParseFrom(flag->DefaultValue(), &error);
  }
  Origins origins;
  // A variable's bad value is an error only where its flag is not given
  // too (the flag wins) and --help is not asked for (until 2026-12-06,
  // COMPUTE_PORT=abc stopped `compute-server --port 5` and `--help`).
  std::vector<std::pair<std::string, absl::Status>> env_errors;
  for (const std::string& name : FlagNames()) {
    std::string var = EnvName(name);
    if (std::optional<std::string> value = env(var)) {
      if (absl::Status s = SetFlag(name, *value, var, &origins); !s.ok()) {
        env_errors.emplace_back(name, std::move(s));
      }
    }
  }
  Config config;
  if (absl::Status s = ParseArgs(argc, argv, &config.help, &origins); !s.ok()) {
    return s;
  }
  if (config.help) return config;
  for (const auto& [name, error] : env_errors) {
    if (!origins.contains(name)) return error;
  }

  service::ServerConfig& server = config.server;
  server.address = absl::GetFlag(FLAGS_address);
  server.address_name = Source(origins, "address");
  server.port_name = Source(origins, "port");
  server.port = absl::GetFlag(FLAGS_port);
  if (absl::Status s = InRange(origins, "port", server.port); !s.ok()) {
    return s;
  }
  config.cpu = DetectCpuCount(cpu_sources);
  int workers = absl::GetFlag(FLAGS_workers);
  if (absl::Status s = InRange(origins, "workers", workers); !s.ok()) return s;
  if (workers == 0) workers = config.cpu.cpus;
  int min_workers = absl::GetFlag(FLAGS_min_workers);
  if (min_workers < 0 || min_workers > workers) {
    // Say where the limit came from: with --workers 0 it is this machine's
    // CPU count, so the same value fails only on smaller pods.
    return ConfigError(absl::StrCat(
        Source(origins, "min_workers"), " must be between 0 and ", workers,
        absl::GetFlag(FLAGS_workers) == 0
            ? absl::StrCat(", the container-aware CPU count (",
                           Source(origins, "workers"), " is 0)")
            : absl::StrCat(", ", Source(origins, "workers")),
        " (got ", min_workers, ")"));
  }
  server.pool.max_workers = workers;
  server.io_threads = absl::GetFlag(FLAGS_io_threads);
  if (absl::Status s = InRange(origins, "io_threads", server.io_threads);
      !s.ok()) {
    return s;
  }
  // The CPU count, within the flag's own limit (a node of more than 256
  // CPUs without a quota started one thread per CPU).
  if (server.io_threads == 0)
    server.io_threads = std::min(config.cpu.cpus, 256);
  // What the quota allows, not the whole CPUs the pool is sized by: the
  // load report's CPU utilisation reaches 1 when the replica is throttled.
  server.cpus = config.cpu.quota_cpus > 0
                    ? std::min(config.cpu.quota_cpus,
                               static_cast<double>(config.cpu.cpus))
                    : config.cpu.cpus;
  server.load_report_interval = absl::GetFlag(FLAGS_load_report_interval);
  if (server.load_report_interval < absl::ZeroDuration()) {
    return ConfigError(absl::StrCat(
        Source(origins, "load_report_interval"), " must be >= 0 (got ",
        absl::FormatDuration(server.load_report_interval), ")"));
  }
  server.pool.min_workers = min_workers == 0 ? workers : min_workers;
  server.pool.idle_timeout = absl::GetFlag(FLAGS_idle_timeout);
  if (absl::Status s =
          Positive(origins, "idle_timeout", server.pool.idle_timeout);
      !s.ok()) {
    return s;
  }
  int capacity = absl::GetFlag(FLAGS_queue_capacity);
  if (absl::Status s = InRange(origins, "queue_capacity", capacity); !s.ok()) {
    return s;
  }
  server.pool.queue_capacity = static_cast<size_t>(capacity);
  config.memory = DetectMemoryLimit(cpu_sources.root);
  if (absl::Status s =
          MaxInflightBytes(config.memory, origins, &config.max_inflight_bytes,
                           &config.max_inflight_bytes_reason);
      !s.ok()) {
    return s;
  }
  config.max_inflight_bytes_auto =
      absl::GetFlag(FLAGS_max_inflight_bytes) == "auto";
  SplitMemoryBudget(config.max_inflight_bytes, &server.pool.max_inflight_bytes,
                    &server.transport_quota_bytes);
  server.pool.target_queue_wait = absl::GetFlag(FLAGS_target_queue_wait);
  if (absl::Status s =
          Positive(origins, "target_queue_wait", server.pool.target_queue_wait);
      !s.ok()) {
    return s;
  }
  server.pool.spin_before_park = absl::GetFlag(FLAGS_worker_spin);
  server.pool.inline_max_cost = absl::GetFlag(FLAGS_inline_max_cost);
  if (server.pool.inline_max_cost < absl::ZeroDuration() ||
      server.pool.inline_max_cost > absl::Milliseconds(10)) {
    return ConfigError(absl::StrCat(
        Source(origins, "inline_max_cost"), " must be between 0 and 10ms (got ",
        absl::FormatDuration(server.pool.inline_max_cost), ")"));
  }
  server.trust_tenant_header = absl::GetFlag(FLAGS_trust_tenant_header);
  server.tenant_ipv6_prefix = absl::GetFlag(FLAGS_tenant_ipv6_prefix);
  if (absl::Status s =
          InRange(origins, "tenant_ipv6_prefix", server.tenant_ipv6_prefix);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = ParseTenantWeights(
          absl::GetFlag(FLAGS_tenant_weights),
          Source(origins, "tenant_weights"), server.tenant_ipv6_prefix,
          Source(origins, "tenant_ipv6_prefix"), &server.tenant_weights);
      !s.ok()) {
    return s;
  }
  config.tenant_metrics = absl::GetFlag(FLAGS_tenant_metrics);
  if (absl::Status s =
          InRange(origins, "tenant_metrics", config.tenant_metrics);
      !s.ok()) {
    return s;
  }
  server.admission = absl::GetFlag(FLAGS_admission);
  config.drain_timeout = absl::GetFlag(FLAGS_drain_timeout);
  if (config.drain_timeout < absl::ZeroDuration()) {
    return ConfigError(
        absl::StrCat(Source(origins, "drain_timeout"), " must be >= 0 (got ",
                     absl::FormatDuration(config.drain_timeout), ")"));
  }
  server.max_connection_age = absl::GetFlag(FLAGS_max_connection_age);
  server.max_connection_age_grace =
      absl::GetFlag(FLAGS_max_connection_age_grace);
  server.max_connection_idle = absl::GetFlag(FLAGS_max_connection_idle);
  server.keepalive_time = absl::GetFlag(FLAGS_keepalive_time);
  server.keepalive_timeout = absl::GetFlag(FLAGS_keepalive_timeout);
  for (auto [name, d] :
       {std::pair{"max_connection_age", server.max_connection_age},
        {"max_connection_age_grace", server.max_connection_age_grace},
        {"max_connection_idle", server.max_connection_idle},
        {"keepalive_time", server.keepalive_time},
        {"keepalive_timeout", server.keepalive_timeout}}) {
    if (absl::Status s = Positive(origins, name, d); !s.ok()) return s;
    // gRPC takes these in whole milliseconds: less would reach it as 0 (a
    // connection aged out as soon as it opens, a ping never waited for).
    if (d < absl::Milliseconds(1)) {
      return ConfigError(absl::StrCat(Source(origins, name),
                                      " must be at least 1ms, gRPC counts "
                                      "whole milliseconds (got ",
                                      absl::FormatDuration(d), ")"));
    }
    // And in an int: 2^31 ms (24.8 days) or more would reach it as INT_MAX,
    // which means never. The limit is the round 596h just below (INT_MAX ms
    // is 596h31m23.647s), so that what the message says is what is checked
    // (until 2026-12-06 596h31m passed "under 596h": a review's finding).
    static_assert(596 * 3600 * 1000LL < std::numeric_limits<int>::max());
    if (d != absl::InfiniteDuration() && d >= absl::Hours(596)) {
      return ConfigError(
          absl::StrCat(Source(origins, name),
                       " must be inf or under 596h, gRPC counts milliseconds "
                       "in an int (got ",
                       absl::FormatDuration(d), ")"));
    }
  }
  // Keepalive pings a few milliseconds apart crashed the server inside
  // gRPC 1.51 (SIGSEGV in ExecCtx::Flush after "keepalive_ping_end state
  // error", 3 runs in about 50 with both at 1ms, found by a review); no
  // network wants pings under a second.
  for (auto [name, d] : {std::pair{"keepalive_time", server.keepalive_time},
                         {"keepalive_timeout", server.keepalive_timeout}}) {
    if (d < absl::Seconds(1)) {
      return ConfigError(absl::StrCat(
          Source(origins, name),
          " must be at least 1s: gRPC 1.51's keepalive failed with pings "
          "milliseconds apart (got ",
          absl::FormatDuration(d), ")"));
    }
  }
  // A byte size, as --max_inflight_bytes is (it was an int: "32Mi" was
  // refused, though --help says byte sizes take suffixes).
  {
    const std::string text = absl::GetFlag(FLAGS_max_message_bytes);
    const std::string origin = Source(origins, "max_message_bytes");
    absl::StatusOr<int64_t> parsed = ByteSizeFlag(text, origin);
    if (!parsed.ok()) return parsed.status();
    if (*parsed < 4096 || *parsed > (int64_t{1} << 30)) {
      return ConfigError(absl::StrCat(
          origin, " must be between 4Ki and 1Gi (got ", text, ")"));
    }
    server.max_message_bytes = static_cast<int>(*parsed);
  }
  server.max_concurrent_streams = absl::GetFlag(FLAGS_max_concurrent_streams);
  if (server.max_concurrent_streams < 2) {
    // 0 would let no call through at all; 1 too, to a client that watches
    // health (healthCheckConfig, as compute-client and the README's service
    // config do): the Watch holds the connection's one stream for good,
    // and every call waits in the client.
    return ConfigError(
        absl::StrCat(Source(origins, "max_concurrent_streams"),
                     " must be at least 2 (got ", server.max_concurrent_streams,
                     "): a client that watches health holds one stream of each "
                     "connection"));
  }
  server.tls_cert = absl::GetFlag(FLAGS_tls_cert);
  server.tls_key = absl::GetFlag(FLAGS_tls_key);
  server.tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  server.tls_cert_name = Source(origins, "tls_cert");
  server.tls_key_name = Source(origins, "tls_key");
  server.tls_client_ca_name = Source(origins, "tls_client_ca");
  // Set but empty (a template's variable that rendered empty) is an error,
  // not "no TLS": it served plaintext, or TLS without asking for client
  // certificates, with nothing but "tls":false in the start-up line.
  for (const auto& [name, value] :
       {std::pair{"tls_cert", &server.tls_cert},
        std::pair{"tls_key", &server.tls_key},
        std::pair{"tls_client_ca", &server.tls_client_ca}}) {
    if (origins.contains(name) && value->empty()) {
      return ConfigError(absl::StrCat(
          Source(origins, name),
          " is empty: give a PEM file, or leave it unset (for no TLS)"));
    }
  }
  if (server.tls_cert.empty() != server.tls_key.empty()) {
    return ConfigError(absl::StrCat(server.tls_cert_name, " and ",
                                    server.tls_key_name,
                                    " must be given together"));
  }
  if (!server.tls_client_ca.empty() && server.tls_cert.empty()) {
    return ConfigError(absl::StrCat(server.tls_client_ca_name, " needs ",
                                    server.tls_cert_name, " and ",
                                    server.tls_key_name));
  }
  std::string log_level = absl::GetFlag(FLAGS_log_level);
  std::optional<LogLevel> level = ParseLogLevel(log_level);
  if (!level.has_value()) {
    return ConfigError(
        absl::StrCat("bad value for ", Source(origins, "log_level"), ": '",
                     log_level, "': one of debug, info, warning, error"));
  }
  config.log_level = *level;
  config.metrics_address = absl::GetFlag(FLAGS_metrics_address);
  config.metrics_address_name = Source(origins, "metrics_address");
  config.metrics_port_name = Source(origins, "metrics_port");
  config.metrics_port = absl::GetFlag(FLAGS_metrics_port);
  if (absl::Status s = InRange(origins, "metrics_port", config.metrics_port);
      !s.ok()) {
    return s;
  }
  if (config.metrics_port != 0 && config.metrics_port == server.port) {
    // Else the metrics endpoint, bound first, took it, and the gRPC
    // server's error blamed "another process".
    return ConfigError(absl::StrCat(
        Source(origins, "port"), " and ", Source(origins, "metrics_port"),
        " are both ", server.port, ": give them different ports"));
  }
  return config;
}

std::string Usage() {
  std::string out =
      "compute-server: the compute.v1.Compute gRPC service.\n\n"
      "Flags (each also read from its environment variable; the flag wins).\n"
      "Write --flag=value or --flag value; a boolean also as --flag or\n"
      "--noflag. Durations are written like 250ms, 10s, 1m, inf; byte sizes\n"
      "like 1048576, 512Mi, 2Gi (powers of 1024) or 500M, 2G (powers of\n"
      "1000).\n\n";
  for (const std::string& name : FlagNames()) {
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    absl::StrAppend(&out, "  --", name, "  (", EnvName(name), ")\n      ",
                    flag->Help(), "\n      default: ", flag->DefaultValue());
    // The integer flags' ranges, from the table their checks use
    // (--min_workers is also bounded by --workers, which its help says).
    if (std::optional<IntRange> range = IntFlagRange(name)) {
      if (range->hi == std::numeric_limits<int>::max()) {
        absl::StrAppend(&out, " (at least ", range->lo, ")");
      } else {
        absl::StrAppend(&out, " (", range->lo, " to ", range->hi, ")");
      }
    }
    absl::StrAppend(&out, "\n");
  }
  return out;
}

namespace {

// What to raise for a budget of `budget` bytes: the flag, or, when the
// budget is auto from the cgroup limit (MaxInflightBytes), the limit, whose
// budget is 25/32 of it less kProcessReserve.
std::string RaiseTheBudget(const Config& config, int64_t budget) {
  if (config.max_inflight_bytes_auto && config.memory.limit_bytes) {
    const int64_t limit = kProcessReserve + 32 * ((budget + 24) / 25);
    return absl::StrCat("raise the memory limit to ", limit,
                        " (the budget is 25/32 of it less ", kProcessReserve,
                        ")");
  }
  return absl::StrCat("raise --max_inflight_bytes to ", budget);
}

}  // namespace

std::string MemoryBudgetWarning(const Config& config) {
  const int64_t pool = config.server.pool.max_inflight_bytes;
  const int64_t largest_call = 2 * int64_t{config.server.max_message_bytes};
  if (pool <= 0 || pool >= largest_call) return "";
  // A request larger than gRPC's transport quota is never received whole:
  // gRPC resets its stream, so it never gets the service's "too large".
  const int64_t transport = config.server.transport_quota_bytes;
  const std::string unread =
      transport > 0 && transport < config.server.max_message_bytes
          ? absl::StrCat(", and requests over ", transport,
                         " bytes (3/4 of --max_inflight_bytes: gRPC's "
                         "transport quota, which every connection shares) "
                         "are reset unread (the client sees "
                         "RESOURCE_EXHAUSTED 'Received RST_STREAM', with no "
                         "pushback)")
          : "";
  return absl::StrCat(
      "calls over ", pool,
      " bytes (request + response; 1/4 of --max_inflight_bytes ",
      config.max_inflight_bytes, ") are refused as too large for this server",
      unread, ", though --max_message_bytes ", config.server.max_message_bytes,
      " lets a request and a response of that size through: ",
      RaiseTheBudget(config, 4 * largest_call),
      " or lower --max_message_bytes to ", pool / 2);
}

std::string TenantHeaderWarning(const Config& config) {
  const service::ServerConfig& s = config.server;
  if (!s.trust_tenant_header || s.tls_client_ca.empty()) return "";
  return absl::StrCat(
      "--trust_tenant_header is set with ", s.tls_client_ca_name,
      ": every caller's verified certificate names its tenant, so the "
      "compute-tenant header is never read (calls through a proxy are all "
      "the proxy's tenant)");
}

}  // namespace compute
