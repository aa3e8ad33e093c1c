// The line an invariant check writes before abort(): out when stderr takes
// it, and never a hang when stderr does not (a log reader that stopped
// reading). Each case runs in a forked child, which must die of SIGABRT.
#include "server/base/crash_line.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>

#include "gtest/gtest.h"

namespace compute::base {
namespace {

// The child's wait status once it has ended, or -1 if it was still alive
// after `limit` (then killed and reaped). Waits on a pidfd, so the wait
// ends when the child does; without pidfd_open (before Linux 5.3) it
// waits unbounded, and ctest's timeout stands for the limit.
int WaitStatus(pid_t child, std::chrono::milliseconds limit) {
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  if (pidfd >= 0) {
    pollfd ended{pidfd, POLLIN, 0};
    int ready;
    do {
      ready = poll(&ended, 1, static_cast<int>(limit.count()));
    } while (ready < 0 && errno == EINTR);
    close(pidfd);
    if (ready == 0) kill(child, SIGKILL);
  }
  int status = 0;
  pid_t done;
  do {
    done = waitpid(child, &status, 0);
  } while (done < 0 && errno == EINTR);
  if (done != child) return -2;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) return -1;
  return status;
}

// In the child: no core file from the abort.
void NoCoreFile() {
  rlimit none{0, 0};
  setrlimit(RLIMIT_CORE, &none);
}

TEST(CrashLineTest, TheLineIsWrittenThenTheProcessAborts) {
  int pipe_fds[2];
  ASSERT_EQ(pipe(pipe_fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    NoCoreFile();
    dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    AbortOnFailedCheck("queue.cc", 42, "pool invariant failed", "size > 0");
  }
  close(pipe_fds[1]);
  std::string out;
  char buffer[256];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) {
    out.append(buffer, static_cast<size_t>(n));
  }
  close(pipe_fds[0]);
  const int status = WaitStatus(child, std::chrono::seconds(30));
  ASSERT_TRUE(status >= 0 && WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGABRT);
  const std::string expected_tail =
      ",\"level\":\"fatal\",\"msg\":\"pool invariant failed\","
      "\"where\":\"queue.cc:42\",\"condition\":\"size > 0\"}\n";
  ASSERT_GE(out.size(), expected_tail.size()) << out;
  EXPECT_EQ(out.substr(out.size() - expected_tail.size()), expected_tail);
  EXPECT_EQ(out.rfind("{\"ts\":\"", 0), 0u) << out;
}

// JSON, like every other line on stderr, whatever the condition's text
// holds: a log collector that drops what does not parse dropped the one
// line that said why the process ended. (Compared as text: protobuf's JSON
// parser is not built for ThreadSanitizer, which runs this test too.)
TEST(CrashLineTest, TheLineIsOneJsonObject) {
  const std::string line =
      CrashLine("a\\b.cc", 7, "check \"x\"", "s == \"a\\n\"\t\xff");
  ASSERT_EQ(line.rfind("{\"ts\":\"", 0), 0u) << line;
  const std::string tail =
      "\",\"level\":\"fatal\",\"msg\":\"check \\\"x\\\"\","
      "\"where\":\"a\\\\b.cc:7\","
      "\"condition\":\"s == \\\"a\\\\n\\\"\\u0009?\"}\n";
  ASSERT_GE(line.size(), tail.size()) << line;
  EXPECT_EQ(line.substr(line.size() - tail.size()), tail) << line;
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "one line";
}

// stderr is a pipe nobody reads, full to the last byte: before, the check's
// fprintf blocked there for good, and the process neither served nor died.
TEST(CrashLineTest, AStderrThatDoesNotReadDoesNotHoldTheAbort) {
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    NoCoreFile();
    int pipe_fds[2];
    if (pipe(pipe_fds) != 0) _exit(3);
    // Fill it without blocking, then make it blocking again, as a log
    // pipe is.
    const int flags = fcntl(pipe_fds[1], F_GETFL);
    fcntl(pipe_fds[1], F_SETFL, flags | O_NONBLOCK);
    const std::string chunk(4096, 'x');
    while (write(pipe_fds[1], chunk.data(), chunk.size()) > 0) {
    }
    while (write(pipe_fds[1], "x", 1) > 0) {
    }
    fcntl(pipe_fds[1], F_SETFL, flags);
    dup2(pipe_fds[1], STDERR_FILENO);
    AbortOnFailedCheck("queue.cc", 42, "pool invariant failed", "size > 0");
  }
  const int status = WaitStatus(child, std::chrono::seconds(30));
  ASSERT_NE(status, -1) << "the child was still blocked on stderr after 30 s";
  ASSERT_TRUE(status >= 0 && WIFSIGNALED(status)) << status;
  EXPECT_EQ(WTERMSIG(status), SIGABRT);
}

}  // namespace
}  // namespace compute::base
