// compute-server's configuration: absl flags, each also read from the
// environment as COMPUTE_<FLAG> (for Kubernetes ConfigMaps); a flag given on
// the command line wins over its environment variable.
//
// We parse argv ourselves (through absl's flag registry) instead of calling
// absl::ParseCommandLine so that every mistake ends start-up with exactly one
// clear line and exit code 2, and `--help` lists our flags with their
// defaults and environment names.
#ifndef COMPUTE_SERVER_CONFIG_H_
#define COMPUTE_SERVER_CONFIG_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "server/log.h"
#include "server/pool/cpu_count.h"
#include "server/pool/memory_limit.h"
#include "server/service/server.h"

namespace compute {

struct Config {
  service::ServerConfig server;
  std::string metrics_address = "0.0.0.0";
  // The flag, or the COMPUTE_ variable metrics_address came from, for a
  // start-up error (as ServerConfig's *_name).
  std::string metrics_address_name = "--metrics_address";
  std::string metrics_port_name = "--metrics_port";
  int metrics_port = 9464;  // 0 = no metrics endpoint
  int tenant_metrics = 0;   // per-tenant series for the top N; 0 = none
  absl::Duration drain_timeout;
  CpuCount cpu;  // what the pool was sized from
  // The cgroup memory limit, which sizes max_inflight_bytes when it is auto.
  MemoryLimit memory;
  // --max_inflight_bytes: every byte of calls the server holds, split
  // between server.pool.max_inflight_bytes (1/4) and
  // server.transport_quota_bytes (3/4). 0: no limit.
  int64_t max_inflight_bytes = 0;
  // How max_inflight_bytes was chosen, for the start-up log:
  // "25/32 of the cgroup memory limit (2 GiB) less 64 MiB for the process",
  // "default (no cgroup memory limit)", "set by --max_inflight_bytes", "no
  // limit (set by COMPUTE_MAX_INFLIGHT_BYTES)".
  std::string max_inflight_bytes_reason;
  bool max_inflight_bytes_auto = false;  // "auto": from the memory limit
  LogLevel log_level = LogLevel::kInfo;  // ours and gRPC's
  bool help = false;                     // --help: print Usage() and exit 0
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;

// The process environment.
std::optional<std::string> GetEnv(const std::string& name);

// Resets every flag to its default, applies COMPUTE_* variables, then argv.
// On error, InvalidArgument whose message is the one line to print.
// cpu_sources.root also prefixes the cgroup files the memory limit is read
// from, so tests can feed one fake tree for both.
absl::StatusOr<Config> ParseConfig(int argc, const char* const* argv,
                                   const EnvLookup& env,
                                   const CpuCountSources& cpu_sources = {});

// --help text: every flag, its default, its environment variable.
std::string Usage();

// A start-up warning when the memory budget refuses, as too large for this
// server, calls that --max_message_bytes lets through: the pool's share of
// --max_inflight_bytes (1/4) is under a largest request plus a response as
// large (a blur's). Empty when every call within the message limit fits.
std::string MemoryBudgetWarning(const Config& config);

// A start-up warning when --trust_tenant_header cannot take effect: with
// --tls_client_ca every caller has a verified certificate, which names its
// tenant before any header is read, so every call through a proxy is the
// proxy's tenant. Empty otherwise.
std::string TenantHeaderWarning(const Config& config);

}  // namespace compute

#endif  // COMPUTE_SERVER_CONFIG_H_
