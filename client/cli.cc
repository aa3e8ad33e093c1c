// compute-client's entry point: dispatch to a subcommand.
#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "client/commands_common.h"

namespace compute::client {
namespace {

constexpr const char kUsage[] =
    R"(compute-client: calls the compute.v1.Compute gRPC service.

usage:
  compute-client run <task> [task flags] [flags]
      one call; prints the result and where the time went
  compute-client batch <task> <arg>... [--rounds N] [flags]
      concurrent calls (batch fib 40 41 42), results in input order
  compute-client health [--service NAME] [flags]
      grpc.health.v1 Check; exit 0 iff SERVING
  compute-client bench [--task T] [task flags] [load flags] [flags]
      load generator: --concurrency N or --rate R, --time D or --requests N,
      --connections K, --hist

tasks (a flag of another task than the one run is a usage error):
  fib --n N | spin --duration D | sha256 --file F|--data S --rounds N
  | primes --limit N | blur --in in.pgm --radius R --out out.pgm
  | sleep --duration D (holds a worker without a CPU: for tests and demos)

common flags:
  --target (default localhost:50051; dns:///host:port; ipv4:a:p,b:q)
  --deadline D  --tls --ca F --cert F --key F --server_name N
  --lb round_robin|pick_first  --json
  run, batch, bench: --retry  --tenant T  --priority P

`compute-client <command> --help` lists its flags with their defaults.
Exit status: 0 ok; 1 the call failed (code and message on stderr); 2 usage
(a bad flag, or an input file that cannot be read).
)";

int Dispatch(const std::vector<std::string>& args, const Io& io) {
  if (args.empty()) {
    io.err << kUsage;
    return kExitUsage;
  }
  const std::string& command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "run") return RunCommand(rest, io);
  if (command == "batch") return BatchCommand(rest, io);
  if (command == "health") return HealthCommand(rest, io);
  if (command == "bench") return BenchCommand(rest, io);
  if (command == "help" || command == "--help" || command == "-h") {
    io.out << kUsage;
    return kExitOk;
  }
  io.err << "compute-client: unknown command '" << command
         << "' (run, batch, health, bench; see --help)\n";
  return kExitUsage;
}

}  // namespace

int Main(const std::vector<std::string>& args, const Io& io) {
  const int status = Dispatch(args, io);
  // Output must have reached stdout for a status of 0 (or 2, after --help
  // text) to stand. A command that failed (1) has checked what it wrote
  // itself, and said so.
  if (status != kExitFailure) {
    if (auto failed = StdoutFailure("", io)) return *failed;
  }
  return status;
}

}  // namespace compute::client
