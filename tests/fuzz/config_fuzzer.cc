// Fuzzes compute-server's configuration: command-line arguments and
// COMPUTE_* environment values -> ParseConfig.
//
// The input picks flags by name (the names come from Usage(), so a new flag
// is fuzzed without touching this file) in every form the parser takes
// (--name=value, --name value, COMPUTE_NAME=value), plus raw arguments, and
// random values. Properties (abort() is the finding):
//   - an error is INVALID_ARGUMENT with one non-empty line: what start-up
//     prints before exiting 2;
//   - an accepted configuration is within every documented range, so no
//     later layer sees a value the parser promised to refuse;
//   - parsing is a function of its input: a second parse agrees.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "server/config.h"
#include "tests/unit/config/parse_args.h"

namespace {

// "  --name  (COMPUTE_NAME)" lines of Usage().
std::vector<std::string> FlagNames() {
  std::vector<std::string> names;
  for (absl::string_view line : absl::StrSplit(compute::Usage(), '\n')) {
    if (!absl::ConsumePrefix(&line, "  --")) continue;
    names.emplace_back(line.substr(0, line.find(' ')));
  }
  return names;
}

[[noreturn]] void Fail(const char* what, const std::vector<std::string>& args,
                       const std::map<std::string, std::string>& env,
                       const std::string& detail = "") {
  std::fprintf(stderr, "config_fuzzer: %s %s\n  args:", what, detail.c_str());
  for (const std::string& a : args) std::fprintf(stderr, " [%s]", a.c_str());
  std::fprintf(stderr, "\n  env:");
  for (const auto& [k, v] : env) {
    std::fprintf(stderr, " [%s=%s]", k.c_str(), v.c_str());
  }
  std::fprintf(stderr, "\n");
  std::abort();
}

absl::StatusOr<compute::Config> Parse(
    const std::vector<std::string>& args,
    const std::map<std::string, std::string>& env, int cpus) {
  compute::CpuCountSources cpu;
  cpu.root = "/nonexistent";  // no cgroup: no memory limit, affinity only
  cpu.affinity_cpus = cpus;
  return compute::testing::ParseArgs(args, env, cpu);
}

// The documented ranges (README's flag table, config.cc's checks).
const char* OutOfRange(const compute::Config& c) {
  const auto& s = c.server;
  const auto& p = s.pool;
  if (s.port < 0 || s.port > 65535) return "port";
  if (c.metrics_port < 0 || c.metrics_port > 65535) return "metrics_port";
  if (p.max_workers < 1 || p.max_workers > 4096) return "workers";
  if (p.min_workers < 1 || p.min_workers > p.max_workers) return "min_workers";
  if (p.queue_capacity > (size_t{1} << 20)) return "queue_capacity";
  if (c.max_inflight_bytes != 0 && c.max_inflight_bytes < (int64_t{1} << 20)) {
    return "max_inflight_bytes";
  }
  // Its two shares: never more than the flag together, and a limit in each
  // whenever the flag sets one.
  if (p.max_inflight_bytes < 0 || s.transport_quota_bytes < 0 ||
      p.max_inflight_bytes + s.transport_quota_bytes != c.max_inflight_bytes ||
      (c.max_inflight_bytes > 0 &&
       (p.max_inflight_bytes == 0 || s.transport_quota_bytes == 0))) {
    return "max_inflight_bytes's split";
  }
  if (p.idle_timeout <= absl::ZeroDuration()) return "idle_timeout";
  if (p.target_queue_wait <= absl::ZeroDuration()) return "target_queue_wait";
  if (p.inline_max_cost < absl::ZeroDuration() ||
      p.inline_max_cost > absl::Milliseconds(10)) {
    return "inline_max_cost";
  }
  if (c.drain_timeout < absl::ZeroDuration()) return "drain_timeout";
  for (absl::Duration d :
       {s.max_connection_age, s.max_connection_age_grace, s.max_connection_idle,
        s.keepalive_time, s.keepalive_timeout}) {
    if (d <= absl::ZeroDuration() ||
        (d != absl::InfiniteDuration() && d >= absl::Hours(596))) {
      return "a connection duration";
    }
  }
  if (s.max_message_bytes < 4096 || s.max_message_bytes > (1 << 30)) {
    return "max_message_bytes";
  }
  if (s.tenant_ipv6_prefix < 1 || s.tenant_ipv6_prefix > 128) {
    return "tenant_ipv6_prefix";
  }
  for (const auto& [tenant, weight] : s.tenant_weights) {
    if (tenant.empty() || !(weight >= 0.001) || weight > 1000) {
      return "tenant_weights";
    }
  }
  if (s.tls_cert.empty() != s.tls_key.empty()) return "tls_cert/tls_key";
  if (!s.tls_client_ca.empty() && s.tls_cert.empty()) return "tls_client_ca";
  return nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<std::string>* const names =
      new std::vector<std::string>(FlagNames());
  if (names->empty()) {
    std::fprintf(stderr, "config_fuzzer: Usage() lists no flags\n");
    std::abort();
  }
  FuzzedDataProvider in(data, size);
  std::vector<std::string> args;
  std::map<std::string, std::string> env;
  const int cpus = in.ConsumeIntegralInRange(1, 256);
  const int n = in.ConsumeIntegralInRange(0, 8);
  for (int i = 0; i < n && in.remaining_bytes() > 0; ++i) {
    const std::string& name =
        (*names)[in.ConsumeIntegralInRange<size_t>(0, names->size() - 1)];
    switch (in.ConsumeIntegralInRange(0, 4)) {
      case 0:
        args.push_back("--" + name + "=" + in.ConsumeRandomLengthString(48));
        break;
      case 1:
        args.push_back("--" + name);
        args.push_back(in.ConsumeRandomLengthString(48));
        break;
      case 2:
        args.push_back("--no" + name);
        break;
      case 3:
        env["COMPUTE_" + absl::AsciiStrToUpper(name)] =
            in.ConsumeRandomLengthString(48);
        break;
      default:
        args.push_back(in.ConsumeRandomLengthString(48));
        break;
    }
  }

  absl::StatusOr<compute::Config> config = Parse(args, env, cpus);
  if (!config.ok()) {
    const std::string message(config.status().message());
    if (config.status().code() != absl::StatusCode::kInvalidArgument ||
        message.empty() || absl::StrContains(message, '\n')) {
      Fail("an error that is not one line:", args, env, message);
    }
  } else if (!config->help) {
    if (const char* what = OutOfRange(*config)) {
      Fail("accepted a value out of range:", args, env, what);
    }
  }

  absl::StatusOr<compute::Config> again = Parse(args, env, cpus);
  if (again.ok() != config.ok() ||
      (!config.ok() && again.status() != config.status()) ||
      (config.ok() &&
       (again->server.port != config->server.port ||
        again->server.pool.max_workers != config->server.pool.max_workers ||
        again->max_inflight_bytes != config->max_inflight_bytes ||
        again->log_level != config->log_level))) {
    Fail("a second parse disagrees", args, env);
  }
  return 0;
}
