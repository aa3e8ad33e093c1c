// ServerProcess: the real compute-server binary, started for a test with
// its stderr on a pipe. Start() reads the JSON log until the "serving" line
// and learns the port the kernel gave it (--port=0).
#ifndef COMPUTE_TESTS_E2E_SERVER_PROCESS_H_
#define COMPUTE_TESTS_E2E_SERVER_PROCESS_H_

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

extern char** environ;

namespace compute::testing {

struct ExitResult {
  int code = -1;  // exit status, or -1 if killed by a signal
  std::string stderr_text;
};

class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args,
                         std::vector<std::string> env = {})
      : args_(std::move(args)), env_(std::move(env)) {}
  ~ServerProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (err_fd_ >= 0) close(err_fd_);
  }

  // Spawns the binary; returns false if it could not be started.
  bool Spawn() {
    int fds[2];
    if (pipe(fds) != 0) return false;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    std::vector<std::string> argv_s = {COMPUTE_SERVER_BIN};
    argv_s.insert(argv_s.end(), args_.begin(), args_.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_s;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::string(*e).rfind("COMPUTE_", 0) != 0) env_s.push_back(*e);
    }
    env_s.insert(env_s.end(), env_.begin(), env_.end());
    std::vector<char*> envp;
    for (auto& e : env_s) envp.push_back(e.data());
    envp.push_back(nullptr);
    int rc = posix_spawn(&pid_, COMPUTE_SERVER_BIN, &actions, nullptr,
                         argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&actions);
    close(fds[1]);
    err_fd_ = fds[0];
    return rc == 0;
  }

  // Reads log lines until the "serving" line; returns its port.
  std::optional<int> WaitServing(absl::Duration timeout = absl::Seconds(30)) {
    absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      std::optional<std::string> line = ReadLine(end);
      if (!line) return std::nullopt;
      google::protobuf::Struct log;
      if (!google::protobuf::util::JsonStringToMessage(*line, &log).ok()) {
        continue;
      }
      auto& f = log.fields();
      if (f.count("msg") && f.at("msg").string_value() == "serving") {
        return static_cast<int>(f.at("port").number_value());
      }
    }
    return std::nullopt;
  }

  // Reads log lines until one contains `text`; false if none does within
  // `timeout`.
  bool WaitForLine(const std::string& text,
                   absl::Duration timeout = absl::Seconds(30)) {
    absl::Time end = absl::Now() + timeout;
    while (std::optional<std::string> line = ReadLine(end)) {
      if (line->find(text) != std::string::npos) return true;
    }
    return false;
  }

  void Signal(int sig) { kill(pid_, sig); }
  pid_t pid() const { return pid_; }

  // Waits for the process to exit; collects the rest of stderr.
  ExitResult Wait(absl::Duration timeout = absl::Seconds(60)) {
    ExitResult result;
    absl::Time end = absl::Now() + timeout;
    while (ReadLine(end)) {
    }
    int status = 0;
    while (absl::Now() < end) {
      pid_t r = waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        result.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        break;
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    result.stderr_text = seen_;
    return result;
  }

 private:
  // Next line of stderr, or nullopt at EOF or `end`.
  std::optional<std::string> ReadLine(absl::Time end) {
    for (;;) {
      size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        seen_ += line + "\n";
        return line;
      }
      int wait_ms =
          static_cast<int>(absl::ToInt64Milliseconds(end - absl::Now()));
      if (wait_ms <= 0) return std::nullopt;
      pollfd p{err_fd_, POLLIN, 0};
      if (poll(&p, 1, wait_ms) <= 0) return std::nullopt;
      char chunk[4096];
      ssize_t n = read(err_fd_, chunk, sizeof(chunk));
      if (n <= 0) {
        if (buffer_.empty()) return std::nullopt;
        buffer_ += '\n';
        continue;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }

  std::vector<std::string> args_;
  std::vector<std::string> env_;
  pid_t pid_ = -1;
  int err_fd_ = -1;
  std::string buffer_;
  std::string seen_;  // every line read so far
};

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_E2E_SERVER_PROCESS_H_
