// What the subcommands share: the common flags (target, TLS, deadline,
// output format), flag parsing that ends in one line and exit 2, the way a
// failed call is reported, and how one call's result is shown.
#ifndef COMPUTE_CLIENT_COMMANDS_COMMON_H_
#define COMPUTE_CLIENT_COMMANDS_COMMON_H_

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "client/channel.h"
#include "client/commands.h"
#include "client/flags.h"
#include "compute/v1/compute.pb.h"
#include "google/protobuf/struct.pb.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"

namespace compute::client {

struct CommonFlags {
  ChannelOptions channel;
  absl::Duration deadline = absl::InfiniteDuration();  // per call
  bool json = false;
  std::string tenant;    // sent as compute-tenant when set
  std::string priority;  // sent as compute-priority when set
};

// Every command's: the target, TLS, load balancing, deadline, --json.
void AddCommonFlags(FlagSet& flags, CommonFlags* common);
// The commands that call compute.v1.Compute (run, batch, bench): --retry,
// --tenant, --priority.
void AddComputeCallFlags(FlagSet& flags, CommonFlags* common);

// Parses `args`. Returns an exit status when the command should end now:
// kExitOk after printing usage for --help, kExitUsage after printing the
// error; nullopt to go on.
std::optional<int> ParseFlags(const std::string& command, FlagSet& flags,
                              const std::vector<std::string>& args,
                              std::vector<std::string>* positional,
                              const Io& io);

// "compute-client <command>: <message>" on stderr; InvalidArgument is a
// usage error (exit 2), anything else a failure (exit 1).
int Fail(const std::string& command, const absl::Status& status, const Io& io);
int Usage(const std::string& command, const std::string& message, const Io& io);
// "<CODE>: <message>" on stderr, and ConnectionHint; exit 1. `connected`:
// whether the channel was up before the call (ConnectFirst).
int CallFailed(const grpc::Status& status, const ChannelOptions& options,
               bool connected, const Io& io);
// gRPC says only "Socket closed" when the server closes the connection as
// it is set up, which is what a TLS mismatch looks like from the client:
// plaintext against a TLS server, no client certificate for a server that
// asks for one (mutual TLS), or one it does not accept. For such a
// message, " (hint: ...)" naming the flags that may be missing, judged by
// `options`; "" for any other, or when the channel had `connected` (a
// connection that broke later says "Socket closed" too, and TLS is not
// why). `message`: gRPC's error message (a call's, or a channel's last
// error).
std::string ConnectionHint(std::string_view message,
                           const ChannelOptions& options, bool connected);

// Flushes stdout. When that or an earlier write to it failed (a full disk,
// a closed pipe), prints "compute-client <command>: cannot write stdout:
// <reason>" on stderr and returns exit 1; nullopt when all was written.
// Each command calls it once its output is written, before it reports
// success (Main once more, after any command, for --help).
std::optional<int> StdoutFailure(const std::string& command, const Io& io);

// `deadline` from now (infinite: none), handed to gRPC as monotonic time
// (client/deadline.h).
void SetDeadline(grpc::ClientContext& context, absl::Duration deadline);

// InvalidArgument naming the flag when --deadline is not > 0 (before, a
// call sent already out of time: DEADLINE_EXCEEDED, exit 1).
absl::Status ValidateCommonFlags(const CommonFlags& common);
// ValidateCommonFlags, and InvalidArgument naming the flag when --priority
// is not one the server knows, or --tenant is not a metadata value it takes
// (CheckTenant).
absl::Status ValidateCallFlags(const CommonFlags& common);
// The request metadata the flags ask for (compute-tenant,
// compute-priority).
std::vector<std::pair<std::string, std::string>> CallMetadata(
    const CommonFlags& common);
// SetDeadline and CallMetadata on one call's context.
void PrepareContext(grpc::ClientContext& context, const CommonFlags& common);

// Connects `channel` before a call is timed, so that its round trip is the
// call's own, not the TCP, TLS and HTTP/2 set-up (and, with round_robin,
// the health Watch that must say SERVING first), which made a first
// `run fib --n 1` read 4-47 ms for 2 us of work. Waits while the channel is
// idle or connecting, until `deadline` (a monotonic gpr_timespec; infinite
// for none); a server that is down or refuses leaves it failing at once,
// and the call then fails as it would have. Returns the time it took, and
// whether the channel is up (READY).
struct Connected {
  absl::Duration took;
  bool ready = false;
};
Connected ConnectFirst(grpc::Channel& channel, gpr_timespec deadline);

// One finished call, for `run` and `batch`.
// `connect`: ConnectFirst's time, shown when given (run's; batch shows
// its own once).
std::string CallText(const compute::v1::RunRequest& request,
                     const compute::v1::RunResponse& response,
                     absl::Duration round_trip,
                     std::optional<absl::Duration> connect = std::nullopt);
google::protobuf::Struct CallJson(
    const compute::v1::RunRequest& request,
    const compute::v1::RunResponse& response, absl::Duration round_trip,
    std::optional<absl::Duration> connect = std::nullopt);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_COMMANDS_COMMON_H_
