// Helpers for the client tests: run a compute-client command in-process
// and capture what it prints; read its JSON output.
#ifndef COMPUTE_TESTS_CLIENT_CLIENT_TEST_UTIL_H_
#define COMPUTE_TESTS_CLIENT_CLIENT_TEST_UTIL_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/commands.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "server/pool/task_types.h"
#include "server/service/call_observer.h"
#include "server/service/server.h"
#include "tests/integration/test_server.h"

namespace compute::testing {

// Who the server saw each call come from: tenants (by the service's tenant
// observer) and priority classes (by the pool's observer).
class Senders final : public service::TenantObserver, public PoolObserver {
 public:
  void OnTenantTask(std::string_view tenant, TaskOutcome, absl::Duration,
                    absl::Duration) override {
    MutexLock lock(&mu_);
    ++tenants_[std::string(tenant)];
  }
  void OnTenantRejected(std::string_view tenant, absl::Duration) override {
    MutexLock lock(&mu_);
    ++tenants_[std::string(tenant)];
  }
  void OnTaskFinished(const TaskResult& result) override {
    MutexLock lock(&mu_);
    ++priorities_[static_cast<int>(result.priority)];
  }
  int tenant(const std::string& name) {
    MutexLock lock(&mu_);
    return tenants_[name];
  }
  int priority(Priority p) {
    MutexLock lock(&mu_);
    return priorities_[static_cast<int>(p)];
  }

 private:
  Mutex mu_;
  std::map<std::string, int> tenants_ ABSL_GUARDED_BY(mu_);
  std::map<int, int> priorities_ ABSL_GUARDED_BY(mu_);
};

// A server that takes the compute-tenant header and tells `senders` who
// sent each call.
inline std::unique_ptr<service::ComputeServer> StartServerSeenBy(
    Senders& senders) {
  service::ServerConfig config = LocalConfig(2, 64);
  config.trust_tenant_header = true;
  config.tenant_observer = &senders;
  config.pool.observer = &senders;
  return StartServer(config);
}

struct CommandResult {
  int rc = -1;
  std::string out;
  std::string err;
};

// What the command's terminal looks like: by default stdout is a pipe and
// there is no stdin.
struct Terminal {
  bool out_is_terminal = false;
  std::optional<std::string> stdin_text;  // piped in, when set
};

inline CommandResult RunClient(const std::vector<std::string>& args,
                               const Terminal& terminal = {}) {
  std::ostringstream out, err;
  std::istringstream in(terminal.stdin_text.value_or(""));
  client::Io io{out, err, terminal.out_is_terminal,
                terminal.stdin_text ? &in : nullptr,
                !terminal.stdin_text.has_value()};
  CommandResult r;
  r.rc = client::Main(args, io);
  r.out = out.str();
  r.err = err.str();
  return r;
}

inline std::string Target(const service::ComputeServer& server) {
  return absl::StrCat("127.0.0.1:", server.port());
}

inline google::protobuf::Struct ParseJson(const std::string& text) {
  google::protobuf::Struct s;
  auto status = google::protobuf::util::JsonStringToMessage(text, &s);
  EXPECT_TRUE(status.ok()) << status << "\n" << text;
  return s;
}

inline double Number(const google::protobuf::Struct& s,
                     const std::string& key) {
  auto it = s.fields().find(key);
  EXPECT_NE(it, s.fields().end()) << key;
  return it == s.fields().end() ? -1 : it->second.number_value();
}

inline const google::protobuf::Struct& Object(const google::protobuf::Struct& s,
                                              const std::string& key) {
  static const google::protobuf::Struct empty;
  auto it = s.fields().find(key);
  EXPECT_NE(it, s.fields().end()) << key;
  return it == s.fields().end() ? empty : it->second.struct_value();
}

// A port on 127.0.0.1 that the kernel picked, bound so that no one else
// takes it while the test runs. Not listening: connecting is refused.
// Listening (kListen) but never accepting: the kernel completes connections
// into its backlog and nothing answers, a replica that is stopped or cut
// off; a gRPC channel to it stays connecting and its calls run out of time.
class LoopbackPort {
 public:
  enum Mode { kClosed, kListen };
  explicit LoopbackPort(Mode mode = kClosed) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        (mode == kClosed || listen(fd_, 64) == 0) &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~LoopbackPort() { close(fd_); }
  LoopbackPort(const LoopbackPort&) = delete;
  LoopbackPort& operator=(const LoopbackPort&) = delete;
  std::string target() const { return absl::StrCat("127.0.0.1:", port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_CLIENT_CLIENT_TEST_UTIL_H_
