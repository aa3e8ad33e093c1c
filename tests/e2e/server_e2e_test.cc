// The real compute-server binary: start-up, bad configuration, reflection,
// and SIGTERM with calls running and queued.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "compute/v1/compute.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "tests/e2e/server_process.h"
#include "tests/integration/calls.h"
#include "tests/unit/metrics/exposition.h"
#include "tests/wait_until.h"

namespace compute::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::unique_ptr<compute::v1::Compute::Stub> StubFor(int port) {
  return compute::v1::Compute::NewStub(grpc::CreateChannel(
      absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
}

// Threads of process `pid` now.
int ThreadsOf(pid_t pid) {
  int threads = 0;
  for (const auto& entry : std::filesystem::directory_iterator(
           absl::StrCat("/proc/", pid, "/task"))) {
    (void)entry;
    ++threads;
  }
  return threads;
}

std::vector<std::string> BaseArgs() {
  return {"--address=127.0.0.1", "--port=0", "--metrics_port=0"};
}

// Fills 1 worker + `capacity` queue slots with spin calls, and waits until
// the server's own metrics show them all accepted (1 busy, `capacity`
// queued), so that SIGTERM finds them running and queued. A short spin may
// end (OK) before a scrape has seen them all, on a stalled machine: then the
// fill was overtaken, and once the server is idle again it is made anew.
std::vector<std::unique_ptr<AsyncCall>> FillServer(
    compute::v1::Compute::Stub& stub, int capacity, absl::Duration spin,
    int metrics_port) {
  const absl::Time end = absl::Now() + absl::Seconds(30);
  auto scraped = [&](double busy, double depth) {
    auto scrape = metrics::testing::Scrape(metrics_port);
    return scrape.ok() &&
           scrape->Value("compute_pool_workers_busy") == std::optional(busy) &&
           scrape->Value("compute_pool_queue_depth") == std::optional(depth);
  };
  std::vector<std::unique_ptr<AsyncCall>> calls;
  for (int attempt = 1; absl::Now() < end; ++attempt) {
    calls.clear();
    for (int i = 0; i < 1 + capacity; ++i) {
      calls.push_back(std::make_unique<AsyncCall>(stub, Spin(spin)));
    }
    bool overtaken = false;
    while (absl::Now() < end && !overtaken) {
      if (scraped(1, capacity)) return calls;
      for (auto& c : calls) {
        if (!c->done()) continue;
        // One that ended any other way than OK is a failure, not a stall.
        const grpc::Status s = c->Wait();
        if (!s.ok()) {
          ADD_FAILURE() << "a call of the fill ended " << s.error_code() << " "
                        << s.error_message();
          return calls;
        }
        overtaken = true;
      }
      absl::SleepFor(absl::Milliseconds(5));  // the scrapes' pace
    }
    if (!overtaken) break;
    std::cout << "fill " << attempt << " overtaken by its own calls: again\n";
    for (auto& c : calls) c->Wait();
    while (absl::Now() < end && !scraped(0, 0)) {
      absl::SleepFor(absl::Milliseconds(5));
    }
  }
  ADD_FAILURE() << "the server never showed the calls running and queued";
  return calls;
}

std::vector<std::string> ArgsWithMetrics(int metrics_port) {
  std::vector<std::string> args = {"--address=127.0.0.1", "--port=0",
                                   "--metrics_address=127.0.0.1"};
  args.push_back(absl::StrCat("--metrics_port=", metrics_port));
  return args;
}

TEST(ServerE2eTest, SigtermAnswersEveryAcceptedCallAndExitsZero) {
  int metrics_port = metrics::testing::FreeLoopbackPort();
  std::vector<std::string> args = ArgsWithMetrics(metrics_port);
  args.push_back("--workers=1");
  args.push_back("--queue_capacity=3");
  args.push_back("--admission=false");
  args.push_back("--drain_timeout=30s");
  ServerProcess server(args);
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto stub = StubFor(*port);
  auto calls = FillServer(*stub, 3, absl::Milliseconds(300), metrics_port);
  server.Signal(SIGTERM);
  for (auto& c : calls) {
    grpc::Status s = c->Wait();
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  }
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0) << exit.stderr_text;
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"msg\":\"draining\""));
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"msg\":\"stopped\""));
}

// One worker running a sleep of `running` and one call queued behind it (a
// sleep of `queued`), both seen in the server's metrics. The running call
// goes first, so which one runs is known (FillServer's calls race).
std::vector<std::unique_ptr<AsyncCall>> RunningAndQueued(
    compute::v1::Compute::Stub& stub, absl::Duration running,
    absl::Duration queued, int metrics_port) {
  auto seen = [&](double busy, double depth) {
    return PollUntil(
        [&] {
          auto scrape = metrics::testing::Scrape(metrics_port);
          return scrape.ok() &&
                 scrape->Value("compute_pool_workers_busy") ==
                     std::optional(busy) &&
                 scrape->Value("compute_pool_queue_depth") ==
                     std::optional(depth);
        },
        absl::Seconds(30));
  };
  std::vector<std::unique_ptr<AsyncCall>> calls;
  // Sleeps: they hold the worker without a CPU, which the tests running
  // beside these need (a 5 s spin took one of 2 cores from them).
  calls.push_back(std::make_unique<AsyncCall>(stub, Sleep(running)));
  EXPECT_TRUE(seen(1, 0)) << "the first call never ran";
  calls.push_back(std::make_unique<AsyncCall>(stub, Sleep(queued)));
  EXPECT_TRUE(seen(1, 1)) << "the second call never queued";
  return calls;
}

TEST(ServerE2eTest, SigtermPastDrainTimeoutAnswersUnavailable) {
  int metrics_port = metrics::testing::FreeLoopbackPort();
  std::vector<std::string> args = ArgsWithMetrics(metrics_port);
  args.push_back("--workers=1");
  args.push_back("--queue_capacity=1");
  args.push_back("--drain_timeout=1s");
  ServerProcess server(args);
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto stub = StubFor(*port);
  // The queued call fits the drain, so it waits for the worker until the
  // drain's end (one longer than the drain is answered at once, below).
  auto calls = RunningAndQueued(*stub, absl::Seconds(30),
                                absl::Milliseconds(10), metrics_port);
  server.Signal(SIGTERM);
  for (auto& c : calls) {
    EXPECT_EQ(c->Wait().error_code(), grpc::StatusCode::UNAVAILABLE);
  }
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0) << exit.stderr_text;
}

// A queued call longer than the whole drain could not finish: it is
// answered UNAVAILABLE at SIGTERM, while the running call goes on to
// finish OK, rather than when the drain ends.
TEST(ServerE2eTest, SigtermAnswersAtOnceAQueuedCallLongerThanTheDrain) {
  int metrics_port = metrics::testing::FreeLoopbackPort();
  std::vector<std::string> args = ArgsWithMetrics(metrics_port);
  args.push_back("--workers=1");
  args.push_back("--admission=false");
  args.push_back("--drain_timeout=20s");
  ServerProcess server(args);
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto stub = StubFor(*port);
  auto calls = RunningAndQueued(*stub, absl::Seconds(10), absl::Seconds(30),
                                metrics_port);
  server.Signal(SIGTERM);
  const grpc::Status queued = calls[1]->Wait();
  EXPECT_EQ(queued.error_code(), grpc::StatusCode::UNAVAILABLE)
      << queued.error_message();
  EXPECT_FALSE(calls[0]->done()) << "answered while the running call runs";
  const grpc::Status running = calls[0]->Wait();
  EXPECT_TRUE(running.ok())
      << running.error_code() << " " << running.error_message();
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0) << exit.stderr_text;
}

// A second SIGTERM ends a drain that would otherwise wait a minute: the
// running and the queued call are each answered UNAVAILABLE at once, and
// the process exits 143 (128 + SIGTERM).
TEST(ServerE2eTest, SecondSigtermEndsTheDrainAtOnce) {
  int metrics_port = metrics::testing::FreeLoopbackPort();
  std::vector<std::string> args = ArgsWithMetrics(metrics_port);
  args.push_back("--workers=1");
  args.push_back("--queue_capacity=1");
  args.push_back("--admission=false");
  args.push_back("--drain_timeout=60s");
  ServerProcess server(args);
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto stub = StubFor(*port);
  // Both would hold the drain for the whole minute (a sleep is at most 60 s,
  // and AsyncCall::Wait gives up after 30 s): the queued one fits the drain,
  // so it waits for the worker (one longer than the drain is answered at
  // the first SIGTERM).
  auto calls = RunningAndQueued(*stub, absl::Seconds(60), absl::Seconds(30),
                                metrics_port);
  server.Signal(SIGTERM);
  ASSERT_TRUE(server.WaitForLine("\"msg\":\"draining\""));
  // Not the first one again (ServerE2eTest.TheSameStopSentTwiceIsOneStop):
  // a second request comes 250 ms or more after the server took the first,
  // which it did before it logged "draining". A wait for the time the rule
  // is about, not for a condition.
  absl::SleepFor(absl::Milliseconds(300));
  const absl::Time second = absl::Now();
  server.Signal(SIGTERM);
  for (auto& c : calls) {
    grpc::Status s = c->Wait();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE)
        << s.error_code() << " " << s.error_message();
  }
  ExitResult exit = server.Wait(absl::Seconds(30));
  std::cout << "second SIGTERM to exit: " << (absl::Now() - second) << "\n";
  EXPECT_EQ(exit.code, 128 + SIGTERM) << exit.stderr_text;
  EXPECT_THAT(exit.stderr_text,
              HasSubstr("\"msg\":\"second signal: ending the drain now\""));
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"ended_by\":\"Terminated\""));
}

// Whether a signal sent to `pid` waits in its shared pending set.
bool SignalPending(pid_t pid, int sig) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "ShdPnd:")) {
      const uint64_t mask = std::stoull(line.substr(7), nullptr, 16);
      return (mask >> (sig - 1)) & 1;
    }
  }
  return false;
}

// Sends `first` and, once the server has taken it, `then` at once; expects
// one stop: the drain goes on and the calls in flight are answered OK.
void ExpectOneStop(int first, int then) {
  int metrics_port = metrics::testing::FreeLoopbackPort();
  std::vector<std::string> args = ArgsWithMetrics(metrics_port);
  args.push_back("--workers=1");
  args.push_back("--admission=false");
  ServerProcess server(args);
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto stub = StubFor(*port);
  auto calls = FillServer(*stub, 0, absl::Milliseconds(500), metrics_port);
  const absl::Time first_sent = absl::Now();
  server.Signal(first);
  // Taken by the server's signal thread (else the kernel would merge the
  // two and there would be nothing to tell apart), then sent again.
  ASSERT_TRUE(WaitUntil([&] { return !SignalPending(server.pid(), first); }));
  const absl::Duration between = absl::Now() - first_sent;
  server.Signal(then);
  // The server judges the second by when its signal thread takes it: one
  // held off the CPU past the 250 ms window takes it as a new request.
  ASSERT_TRUE(WaitUntil([&] { return !SignalPending(server.pid(), then); }));
  const absl::Duration both = absl::Now() - first_sent;
  if (between >= absl::Milliseconds(100) || both >= absl::Milliseconds(200)) {
    GTEST_SKIP() << "the machine took " << between << " to take the first "
                 << "signal and " << both << " to take both: the second is "
                 << "a new request";
  }
  for (auto& c : calls) {
    grpc::Status s = c->Wait();
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  }
  ExitResult exit = server.Wait(absl::Seconds(30));
  EXPECT_EQ(exit.code, 0) << exit.stderr_text;
  EXPECT_THAT(exit.stderr_text,
              ::testing::Not(HasSubstr("second signal: ending the drain now")));
}

// The same stop sent twice at once (`timeout` signals the server and then
// its process group; some supervisors signal both) is one stop (before: in
// about half of such stops the second ended the drain, the call
// UNAVAILABLE, exit 143).
TEST(ServerE2eTest, TheSameStopSentTwiceIsOneStop) {
  ExpectOneStop(SIGTERM, SIGTERM);
}

// So is a Ctrl-C that reaches a script and the server (its process group)
// followed at once by the script's clean-up sending SIGTERM
// (scripts/bench/lib.sh): before, the two different signals ended the
// drain, calls in flight UNAVAILABLE, exit 143.
TEST(ServerE2eTest, AnInterruptThenATerminateAtOnceIsOneStop) {
  ExpectOneStop(SIGINT, SIGTERM);
}

// A server started with SIGINT ignored (a script's `server &`: the shell
// ignores it for background jobs) leaves it ignored, as programs do by
// convention: a Ctrl-C meant for the script does not stop the server; the
// script's own SIGTERM does (before, the SIGINT began the drain).
TEST(ServerE2eTest, AnInterruptIgnoredAtStartStaysIgnored) {
  ServerProcess server(BaseArgs());
  struct sigaction ignore {
  }, before{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(sigaction(SIGINT, &ignore, &before), 0);
  // Inherits the ignored SIGINT.
  const bool spawned = server.Spawn(StopSignals::kInherited);
  sigaction(SIGINT, &before, nullptr);
  ASSERT_TRUE(spawned);
  ASSERT_TRUE(server.WaitServing().has_value());
  server.Signal(SIGINT);  // ignored: the kernel discards it at once
  server.Signal(SIGTERM);
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0) << exit.stderr_text;
  EXPECT_THAT(exit.stderr_text,
              HasSubstr("\"msg\":\"draining\",\"drain_timeout\":\"20s\","
                        "\"signal\":\"Terminated\""));
}

// SIGHUP (a terminal hung up, a deploy hook's "reload") drains and exits 0
// as SIGTERM does: at its default action the process ended at once, every
// call in flight lost, no "stopped" line. Nothing is reloaded.
TEST(ServerE2eTest, AHangUpDrainsLikeATerminate) {
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  ASSERT_TRUE(server.WaitServing().has_value());
  server.Signal(SIGHUP);
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0) << exit.stderr_text;
  EXPECT_THAT(exit.stderr_text,
              HasSubstr("\"msg\":\"draining\",\"drain_timeout\":\"20s\","
                        "\"signal\":\"Hangup\""));
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"msg\":\"stopped\""));
}

// Memory a few large calls freed goes back to the system once the server
// is idle (server/memory_returner.h): counted by rule on /metrics, and said
// at start-up.
TEST(ServerE2eTest, FreedMemoryGoesBackOnceIdle) {
#if !defined(COMPUTE_SERVER_JEMALLOC)
  GTEST_SKIP() << "glibc build: the server leaves returning to the allocator";
#else
  int metrics_port = metrics::testing::FreeLoopbackPort();
  std::vector<std::string> args = ArgsWithMetrics(metrics_port);
  args.push_back("--max_inflight_bytes=512Mi");  // a cap of 64 MiB (1/8)
  ServerProcess server(args);
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto stub = StubFor(*port);
  // Four blurs of a 1536 x 1536 image: 2.25 MiB in and out each (under
  // the client's 4 MiB limit).
  compute::v1::RunRequest blur;
  blur.mutable_blur()->set_width(1536);
  blur.mutable_blur()->set_height(1536);
  blur.mutable_blur()->set_pixels(std::string(size_t{1536} * 1536, '\x40'));
  blur.mutable_blur()->set_radius(1);
  for (int i = 0; i < 4; ++i) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    compute::v1::RunResponse response;
    grpc::Status s = stub->Run(&context, blur, &response);
    ASSERT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
  }
  // Idle from now: within a few seconds (1 s idle, checked every 250 ms).
  std::optional<double> idle_returns;
  EXPECT_TRUE(PollUntil(
      [&] {
        auto scrape = metrics::testing::Scrape(metrics_port);
        if (scrape.ok()) {
          idle_returns =
              scrape->Value("compute_memory_returns_total", {{"rule", "idle"}});
        }
        return idle_returns.value_or(0) >= 1;
      },
      kWait))
      << "no return once idle";
  server.Signal(SIGTERM);
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0);
  EXPECT_THAT(exit.stderr_text,
              HasSubstr("\"memory_return\":\"freed pages past 64 MiB at "
                        "once, the rest after 1s idle\""));
#endif
}

TEST(ServerE2eTest, StartupLogsTheEffectiveConfigAndCpuCount) {
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  ASSERT_TRUE(server.WaitServing().has_value());
  server.Signal(SIGINT);
  ExitResult exit = server.Wait();
  EXPECT_EQ(exit.code, 0);
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"cpu_count\""));
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"cpu_count_reason\""));
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"queue_capacity\":64"));
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"max_concurrent_streams\":256"));
  // Every line: ts, level, msg first, in that order.
  std::vector<std::string> lines =
      absl::StrSplit(exit.stderr_text, '\n', absl::SkipEmpty());
  EXPECT_GE(lines.size(), 4u);  // starting, serving, draining, stopped
  for (const std::string& line : lines) {
    EXPECT_THAT(line, ::testing::MatchesRegex(
                          R"(\{"ts":"[^"]+","level":"info","msg":"[a-z]+".*)"))
        << line;
  }
}

// What `command` prints on stdout.
std::string Stdout(const std::string& command) {
  std::string out;
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0)
    out.append(buffer, n);
  pclose(pipe);
  return out;
}

// The start-up line is where an operator reads the effective
// configuration: every flag `--help` lists is in it (the TLS files as
// `tls` and `mtls`, whether they are on); --metrics_address was not.
TEST(ServerE2eTest, TheStartupLineHasEveryFlag) {
  std::vector<std::string> flags;
  for (absl::string_view line :
       absl::StrSplit(Stdout(COMPUTE_SERVER_BIN " --help"), '\n')) {
    if (!absl::ConsumePrefix(&line, "  --")) continue;
    flags.emplace_back(line.substr(0, line.find(' ')));
  }
  ASSERT_GE(flags.size(), 20u) << "no flags read from --help";
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  ASSERT_TRUE(server.WaitServing().has_value());
  server.Signal(SIGTERM);
  ExitResult exit = server.Wait();
  ASSERT_EQ(exit.code, 0);
  google::protobuf::Struct starting;
  const std::string first =
      exit.stderr_text.substr(0, exit.stderr_text.find('\n'));
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(first, &starting).ok())
      << first;
  ASSERT_EQ(starting.fields().at("msg").string_value(), "starting");
  for (const std::string& flag : flags) {
    const std::string key = flag == "tls_cert" || flag == "tls_key" ? "tls"
                            : flag == "tls_client_ca"               ? "mtls"
                                                                    : flag;
    EXPECT_TRUE(starting.fields().contains(key)) << "--" << flag;
  }
}

// A start-up warning reaches the log before "serving": a memory budget
// that cannot hold a largest request and its response says what to
// change; one that holds them warns of nothing.
TEST(ServerE2eTest, ABudgetBelowTheMessageLimitIsAStartupWarning) {
  std::vector<std::string> args = BaseArgs();
  args.push_back("--max_inflight_bytes=64Mi");
  args.push_back("--max_message_bytes=32Mi");
  ServerProcess server(args);
  ASSERT_TRUE(server.Spawn());
  ASSERT_TRUE(server.WaitServing().has_value());
  server.Signal(SIGTERM);
  ExitResult exit = server.Wait();
  ASSERT_EQ(exit.code, 0);
  const size_t warning = exit.stderr_text.find(
      "\"msg\":\"memory budget below the message limit\"");
  ASSERT_NE(warning, std::string::npos) << exit.stderr_text;
  EXPECT_LT(warning, exit.stderr_text.find("\"msg\":\"serving\""));
  EXPECT_THAT(exit.stderr_text, HasSubstr("raise --max_inflight_bytes to "));

  args = BaseArgs();
  args.push_back("--max_inflight_bytes=512Mi");  // the default, no cgroup
  args.push_back("--max_message_bytes=32Mi");
  ServerProcess defaults(args);
  ASSERT_TRUE(defaults.Spawn());
  ASSERT_TRUE(defaults.WaitServing().has_value());
  defaults.Signal(SIGTERM);
  exit = defaults.Wait();
  ASSERT_EQ(exit.code, 0);
  EXPECT_THAT(exit.stderr_text, Not(HasSubstr("memory budget below")));
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"msg\":\"serving\""));
}

struct BadConfig {
  std::vector<std::string> args;
  std::vector<std::string> env;
  std::string expect;  // in the one line printed
};

TEST(ServerE2eTest, BadFlagsAndEnvExitTwoWithOneClearLine) {
  std::vector<BadConfig> cases = {
      {{"--queue_capacity=abc"}, {}, "--queue_capacity"},
      {{"--workers=-1"}, {}, "--workers must be between 0 and"},
      {{"--idle_timeout=0s"}, {}, "--idle_timeout must be > 0"},
      {{"--port=70000"}, {}, "--port must be between 0 and 65535"},
      {{"--no_such_flag=1"}, {}, "unknown flag --no_such_flag"},
      {{"--tls_cert=/x.pem"}, {}, "--tls_cert and --tls_key"},
      {{}, {"COMPUTE_QUEUE_CAPACITY=lots"}, "COMPUTE_QUEUE_CAPACITY"},
      {{}, {"COMPUTE_DRAIN_TIMEOUT=soon"}, "COMPUTE_DRAIN_TIMEOUT"},
      {{"--log_level=loud"}, {}, "--log_level: 'loud'"},
      {{}, {"COMPUTE_LOG_LEVEL=verbose"}, "COMPUTE_LOG_LEVEL: 'verbose'"},
      {{"--max_concurrent_streams=0"},
       {},
       "--max_concurrent_streams must be at least 2 (got 0)"},
      {{},
       {"COMPUTE_MAX_CONCURRENT_STREAMS=-1"},
       "COMPUTE_MAX_CONCURRENT_STREAMS must be at least 2 (got -1)"},
  };
  for (const BadConfig& c : cases) {
    // On loopback and the kernel's ports unless the case sets its own (the
    // last value of a flag wins): a case wrongly accepted serves nowhere
    // else, and takes no port another test needs.
    std::vector<std::string> args = {"--address=127.0.0.1", "--port=0",
                                     "--metrics_port=0"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    ServerProcess server(args, c.env);
    ASSERT_TRUE(server.Spawn());
    ExitResult exit = server.Wait();
    EXPECT_EQ(exit.code, 2) << c.expect;
    std::vector<std::string> lines =
        absl::StrSplit(exit.stderr_text, '\n', absl::SkipEmpty());
    ASSERT_EQ(lines.size(), 1u) << exit.stderr_text;
    EXPECT_THAT(lines[0], HasSubstr(c.expect));
  }
}

// Every line of `text` that parses as a JSON object, and whether any line
// did not (gRPC's own log format would not).
std::vector<google::protobuf::Struct> JsonLines(const std::string& text,
                                                bool* all_json) {
  std::vector<google::protobuf::Struct> lines;
  *all_json = true;
  std::vector<std::string> text_lines =
      absl::StrSplit(text, '\n', absl::SkipEmpty());
  for (const std::string& line : text_lines) {
    google::protobuf::Struct log;
    if (google::protobuf::util::JsonStringToMessage(line, &log).ok()) {
      lines.push_back(std::move(log));
    } else {
      *all_json = false;
    }
  }
  return lines;
}

// A second server on a port the first holds must not share it (gRPC's
// default SO_REUSEPORT would): one error line naming the port, exit 2. The
// same for the metrics port.
TEST(ServerE2eTest, PortInUseExitsTwoWithOneClearLine) {
  int metrics_port = metrics::testing::FreeLoopbackPort();
  ServerProcess first(ArgsWithMetrics(metrics_port));
  ASSERT_TRUE(first.Spawn());
  std::optional<int> port = first.WaitServing();
  ASSERT_TRUE(port.has_value());

  struct Case {
    std::vector<std::string> args;
    std::string expect;
    std::vector<std::string> env = {};
  };
  std::vector<Case> cases = {
      {{"--address=127.0.0.1", absl::StrCat("--port=", *port),
        "--metrics_port=0"},
       absl::StrCat("--port: port ", *port, " is in use")},
      // The wildcard address overlaps the first server's 127.0.0.1.
      {{"--address=0.0.0.0", absl::StrCat("--port=", *port),
        "--metrics_port=0"},
       absl::StrCat("--port: port ", *port, " is in use")},
      {{"--address=127.0.0.1", "--port=0", "--metrics_address=127.0.0.1",
        absl::StrCat("--metrics_port=", metrics_port)},
       absl::StrCat("--metrics_port: port ", metrics_port, " is in use")},
      // From the environment, the line names the variable.
      {{"--address=127.0.0.1", "--metrics_port=0"},
       absl::StrCat("COMPUTE_PORT: port ", *port, " is in use"),
       {absl::StrCat("COMPUTE_PORT=", *port)}},
  };
  for (const Case& c : cases) {
    ServerProcess second(c.args, c.env);
    ASSERT_TRUE(second.Spawn());
    ExitResult exit = second.Wait(absl::Seconds(15));
    EXPECT_EQ(exit.code, 2) << exit.stderr_text;
    bool all_json = false;
    std::vector<google::protobuf::Struct> lines =
        JsonLines(exit.stderr_text, &all_json);
    EXPECT_TRUE(all_json) << exit.stderr_text;
    std::vector<std::string> errors;
    for (const auto& line : lines) {
      const auto& f = line.fields();
      EXPECT_NE(f.at("msg").string_value(), "serving") << exit.stderr_text;
      if (f.at("level").string_value() == "error") {
        errors.push_back(f.at("error").string_value());
      }
    }
    EXPECT_THAT(errors, ::testing::ElementsAre(c.expect)) << exit.stderr_text;
  }

  // The first server still serves, alone.
  auto stub = StubFor(*port);
  AsyncCall call(*stub, Fib(10), absl::Seconds(10));
  EXPECT_TRUE(call.Wait().ok());
  first.Signal(SIGTERM);
  EXPECT_EQ(first.Wait().code, 0);
}

// An address that is not of this host, one the metrics endpoint cannot
// take, a TLS file that is not one: bad values of their flags, so exit 2
// with one line naming the flag (before: exit 1, and for --address three
// more lines of gRPC's own, "in use, or not an address of this host"), or
// the COMPUTE_ variable when the value came from one (a ConfigMap's; until
// 2026-12-04 the line named the flag, which the operator had not written).
TEST(ServerE2eTest, AnAddressOrFileItCannotUseExitsTwoWithOneClearLine) {
  struct Case {
    std::vector<std::string> args;
    std::string expect;
    std::vector<std::string> env = {};
  };
  const std::vector<Case> cases = {
      // TEST-NET-3 (RFC 5737): never an address of this host.
      {{"--address=203.0.113.1", "--port=0", "--metrics_port=0"},
       "--address: '203.0.113.1' is not an address of this host"},
      {{"--address=", "--port=0", "--metrics_port=0"},
       "--address: empty; 0.0.0.0 (or ::) listens on every interface"},
      {{"--address=127.0.0.1", "--port=0", "--metrics_address=::1",
        "--metrics_port=0"},
       ""},  // no metrics endpoint: not looked at
      {{"--address=127.0.0.1", "--port=0", "--metrics_address=::1",
        absl::StrCat("--metrics_port=", metrics::testing::FreeLoopbackPort())},
       "--metrics_address: '::1' is IPv6, which the metrics endpoint's HTTP "
       "server (civetweb as Debian builds it) cannot listen on; use an IPv4 "
       "address such as 0.0.0.0"},
      {{"--address=127.0.0.1", "--port=0", "--metrics_port=0",
        "--tls_cert=/dev/null", "--tls_key=/dev/null"},
       "--tls_cert /dev/null: empty file, want PEM certificates"},
      {{"--port=0", "--metrics_port=0"},
       "COMPUTE_ADDRESS: '203.0.113.1' is not an address of this host",
       {"COMPUTE_ADDRESS=203.0.113.1"}},
      {{"--address=127.0.0.1", "--port=0",
        absl::StrCat("--metrics_port=", metrics::testing::FreeLoopbackPort())},
       "COMPUTE_METRICS_ADDRESS: '192.0.2.1' is not an address of this host",
       {"COMPUTE_METRICS_ADDRESS=192.0.2.1"}},
      {{"--address=127.0.0.1", "--port=0", "--metrics_port=0"},
       "COMPUTE_TLS_CERT /dev/null: empty file, want PEM certificates",
       {"COMPUTE_TLS_CERT=/dev/null", "COMPUTE_TLS_KEY=/dev/null"}},
  };
  for (const Case& c : cases) {
    ServerProcess server(c.args, c.env);
    ASSERT_TRUE(server.Spawn());
    if (c.expect.empty()) {
      ASSERT_TRUE(server.WaitServing().has_value());
      server.Signal(SIGTERM);
      EXPECT_EQ(server.Wait().code, 0);
      continue;
    }
    ExitResult exit = server.Wait(absl::Seconds(15));
    EXPECT_EQ(exit.code, 2) << exit.stderr_text;
    bool all_json = false;
    std::vector<google::protobuf::Struct> lines =
        JsonLines(exit.stderr_text, &all_json);
    EXPECT_TRUE(all_json) << exit.stderr_text;
    std::vector<std::string> errors;
    for (const auto& line : lines) {
      const auto& f = line.fields();
      if (f.at("level").string_value() != "info") {
        errors.push_back(f.at("error").string_value());
      }
    }
    EXPECT_THAT(errors, ::testing::ElementsAre(::testing::StartsWith(c.expect)))
        << exit.stderr_text;
  }
}

TEST(ServerE2eTest, FlagWinsOverEnvironment) {
  std::vector<std::string> args = BaseArgs();
  args.push_back("--queue_capacity=7");
  ServerProcess server(args, {"COMPUTE_QUEUE_CAPACITY=9", "COMPUTE_WORKERS=1"});
  ASSERT_TRUE(server.Spawn());
  ASSERT_TRUE(server.WaitServing().has_value());
  server.Signal(SIGTERM);
  ExitResult exit = server.Wait();
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"queue_capacity\":7"));
  EXPECT_THAT(exit.stderr_text, HasSubstr("\"workers\":1"));
}

TEST(ServerE2eTest, ReflectionListsTheServices) {
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(
      grpc::CreateChannel(absl::StrCat("127.0.0.1:", *port),
                          grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
  auto stream = stub->ServerReflectionInfo(&context);
  grpc::reflection::v1alpha::ServerReflectionRequest request;
  request.set_list_services("");
  ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  grpc::reflection::v1alpha::ServerReflectionResponse response;
  ASSERT_TRUE(stream->Read(&response));
  std::vector<std::string> names;
  for (const auto& s : response.list_services_response().service()) {
    names.push_back(s.name());
  }
  EXPECT_THAT(names, ::testing::IsSupersetOf(
                         {"compute.v1.Compute", "grpc.health.v1.Health",
                          "grpc.reflection.v1alpha.ServerReflection"}));
  EXPECT_TRUE(stream->Finish().ok());
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait().code, 0);
}

// Reflection runs on gRPC's synchronous thread pool, a thread per open
// stream while it waits for the client: a client that opens streams and
// sends nothing must not make the server start a thread for each. Past the
// cap, a new stream is refused at once; Run and health are still served,
// and once the streams go, reflection answers again.
TEST(ServerE2eTest, OpenReflectionStreamsHoldABoundedNumberOfThreads) {
  ServerProcess server(BaseArgs());
  ASSERT_TRUE(server.Spawn());
  std::optional<int> port = server.WaitServing();
  ASSERT_TRUE(port.has_value());
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", *port),
                                     grpc::InsecureChannelCredentials());
  auto stub = grpc::reflection::v1alpha::ServerReflection::NewStub(channel);
  const int threads_before = ThreadsOf(server.pid());
  using Stream = grpc::ClientReaderWriter<
      grpc::reflection::v1alpha::ServerReflectionRequest,
      grpc::reflection::v1alpha::ServerReflectionResponse>;
  constexpr int kStreams = 40;
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<Stream>> streams;
  for (int i = 0; i < kStreams; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    contexts.back()->set_deadline(
        absl::ToChronoTime(absl::Now() + absl::Seconds(30)));
    streams.push_back(stub->ServerReflectionInfo(contexts.back().get()));
  }
  // One more, which asks something: refused, as the pool is full.
  auto ListServices = [&stub]() {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(10)));
    auto stream = stub->ServerReflectionInfo(&context);
    grpc::reflection::v1alpha::ServerReflectionRequest request;
    request.set_list_services("");
    stream->Write(request);
    stream->WritesDone();
    grpc::reflection::v1alpha::ServerReflectionResponse response;
    while (stream->Read(&response)) {
    }
    return stream->Finish();
  };
  grpc::Status refused = ListServices();
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
      << refused.error_message();
  // Unbounded, it was one thread per stream: 40 more.
  EXPECT_LE(ThreadsOf(server.pid()), threads_before + 10);
  // Run is served meanwhile.
  auto compute = StubFor(*port);
  grpc::ClientContext run_context;
  run_context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
  compute::v1::RunResponse response;
  EXPECT_TRUE(compute->Run(&run_context, Fib(10), &response).ok());
  // The streams go; reflection answers again (its threads come back as
  // each stream's handler sees its end).
  for (auto& context : contexts) context->TryCancel();
  for (auto& stream : streams) stream->Finish();
  grpc::Status again;
  EXPECT_TRUE(PollUntil([&] { return (again = ListServices()).ok(); },
                        absl::Seconds(10)))
      << again.error_message();
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait().code, 0);
}

}  // namespace
}  // namespace compute::testing
