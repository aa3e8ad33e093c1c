// ServerProcess: the real compute-server binary, started for a test with
// its stderr on a pipe. Start() reads the JSON log until the "serving" line
// and learns the port the kernel gave it (--port=0). SpawnPiped starts any
// binary that way (compute-client too).
#ifndef COMPUTE_TESTS_E2E_SERVER_PROCESS_H_
#define COMPUTE_TESTS_E2E_SERVER_PROCESS_H_

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"

extern char** environ;

namespace compute::testing {

// Polls `done` every 10 ms until it holds or `timeout` passes: for what a
// child process shows only from outside (its /metrics, /proc, its fds).
template <typename Pred>
bool PollUntil(Pred done, absl::Duration timeout) {
  absl::Time end = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= end) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

// A child started by SpawnPiped.
struct PipedChild {
  pid_t pid = -1;  // -1: it did not start
  int fd = -1;     // the pipe's read end (EOF at once if it did not start)
};

// How a child starts with SIGINT, SIGTERM and SIGHUP.
enum class StopSignals {
  // Their default actions, however this process was started: ctest run
  // from a script's background job (`.ci/run &`) ignores SIGINT (under
  // nohup, SIGHUP), and the child would inherit that.
  kDefault,
  // As this process has them (a test that ignores SIGINT to start a child
  // so).
  kInherited,
};

// Starts `binary` with `args` and the environment `env` (NAME=value
// strings), its `stream` (STDOUT_FILENO or STDERR_FILENO) on a pipe. The
// caller closes the fd and reaps the child.
inline PipedChild SpawnPiped(const std::string& binary,
                             std::vector<std::string> args, int stream,
                             std::vector<std::string> env,
                             StopSignals signals = StopSignals::kDefault) {
  PipedChild child;
  int fds[2];
  if (pipe(fds) != 0) return child;
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], stream);
  posix_spawn_file_actions_addclose(&actions, fds[0]);
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  if (signals == StopSignals::kDefault) {
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGINT);
    sigaddset(&defaults, SIGTERM);
    sigaddset(&defaults, SIGHUP);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF);
  }
  if (posix_spawn(&child.pid, binary.c_str(), &actions, &attributes,
                  argv.data(), envp.data()) != 0) {
    child.pid = -1;
  }
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  close(fds[1]);
  child.fd = fds[0];
  return child;
}

// This process's environment, as NAME=value strings.
inline std::vector<std::string> InheritedEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  return env;
}

// `line` as a JSON log object, if it is one and its msg is `msg`.
inline std::optional<google::protobuf::Struct> LogLineWithMsg(
    const std::string& line, absl::string_view msg) {
  google::protobuf::Struct log;
  if (!google::protobuf::util::JsonStringToMessage(line, &log).ok()) {
    return std::nullopt;
  }
  const auto& f = log.fields();
  if (!f.contains("msg") || f.at("msg").string_value() != msg) {
    return std::nullopt;
  }
  return log;
}

// The first line of a server's log whose msg is `msg`, if it wrote one.
inline std::optional<google::protobuf::Struct> LogLine(const std::string& log,
                                                       absl::string_view msg) {
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    if (auto parsed = LogLineWithMsg(std::string(line), msg)) return parsed;
  }
  return std::nullopt;
}

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

  // Spawns the binary; returns false if it could not be started. It gets
  // this process's environment without its COMPUTE_ variables, plus `env`.
  bool Spawn(StopSignals signals = StopSignals::kDefault) {
    std::vector<std::string> env;
    for (std::string& e : InheritedEnvironment()) {
      if (e.rfind("COMPUTE_", 0) != 0) env.push_back(std::move(e));
    }
    env.insert(env.end(), env_.begin(), env_.end());
    PipedChild child = SpawnPiped(COMPUTE_SERVER_BIN, args_, STDERR_FILENO,
                                  std::move(env), signals);
    pid_ = child.pid;
    err_fd_ = child.fd;
    return pid_ > 0;
  }

  // Reads log lines until the "serving" line; returns its port.
  std::optional<int> WaitServing(absl::Duration timeout = absl::Seconds(30)) {
    absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      std::optional<std::string> line = ReadLine(end);
      if (!line) return std::nullopt;
      if (auto serving = LogLineWithMsg(*line, "serving")) {
        return static_cast<int>(serving->fields().at("port").number_value());
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

  // Closes this end of the server's stderr, as a log collector that goes
  // away would: the server's next line meets a pipe with no reader.
  void CloseLog() {
    if (err_fd_ >= 0) close(err_fd_);
    err_fd_ = -1;
  }

  // Makes the pipe of the server's stderr hold `bytes` (from 4096): a log
  // reader with little room, filled by a few lines.
  bool ShrinkLogPipe(int bytes) {
    return err_fd_ >= 0 && fcntl(err_fd_, F_SETPIPE_SZ, bytes) >= bytes;
  }
  // Bytes written to stderr and not yet read.
  int UnreadLogBytes() const {
    int n = 0;
    if (err_fd_ < 0 || ioctl(err_fd_, FIONREAD, &n) != 0) return -1;
    return n;
  }

  void Signal(int sig) {
    if (pid_ > 0) kill(pid_, sig);  // never kill(-1): once reaped, nothing
  }
  pid_t pid() const { return pid_; }

  // Waits for the process to exit without reading its stderr, as a log
  // reader that has stalled; false if it has not within `timeout`. Wait()
  // then collects what stderr holds.
  bool ExitsUnread(absl::Duration timeout) {
    const absl::Time end = absl::Now() + timeout;
    while (absl::Now() < end) {
      if (Reaped()) return true;
      absl::SleepFor(absl::Milliseconds(5));  // polls the child's state
    }
    return Reaped();
  }

  // Waits for the process to exit; collects the rest of stderr.
  ExitResult Wait(absl::Duration timeout = absl::Seconds(60)) {
    ExitResult result;
    absl::Time end = absl::Now() + timeout;
    while (ReadLine(end)) {
    }
    while (absl::Now() < end && !Reaped()) {
      absl::SleepFor(absl::Milliseconds(5));
    }
    if (exit_code_.has_value()) result.code = *exit_code_;
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
      if (err_fd_ < 0) return std::nullopt;  // CloseLog
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

  // Whether the child has exited (reaped now or before).
  bool Reaped() {
    if (exit_code_.has_value()) return true;
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return true;
  }

  std::vector<std::string> args_;
  std::vector<std::string> env_;
  std::optional<int> exit_code_;
  pid_t pid_ = -1;
  int err_fd_ = -1;
  std::string buffer_;
  std::string seen_;  // every line read so far
};

}  // namespace compute::testing

#endif  // COMPUTE_TESTS_E2E_SERVER_PROCESS_H_
