// Replicas as one pool: three real compute-server processes on loopback,
// made unequal without burning the machine's two cores (one has 1 worker,
// two have 4; every call is a 20 ms `sleep`, so capacity is set by workers,
// not by CPU), loaded by the real compute-client binary in an open loop.
//
// - At 80% of the fleet's capacity, `--lb least_loaded` serves >= 95% of
//   the calls and gives the 1-worker replica the smallest share, where
//   `round_robin` (same load, same run) gives it a third and loses what it
//   cannot hold.
// - With `--retry`, one replica SIGKILLed and one SIGTERMed (draining)
//   mid-run lose no call: every call ends OK, and the survivor's metrics
//   show the load it took over.
// - Without a retry, one replica draining under load answers every call it
//   accepted OK; the rest end UNAVAILABLE, or CANCELLED for the few that
//   reach gRPC as its Shutdown begins (never seen by the service).
//
// Results are counts, never timings; the latency comparison is a benchmark
// (scripts/bench/fleet.sh).
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/e2e/server_process.h"
#include "tests/sanitized.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::testing {
namespace {

using ::compute::metrics::testing::FreeLoopbackPort;
using ::compute::metrics::testing::Scrape;

constexpr absl::Duration kTaskTime = absl::Milliseconds(20);
// How long a test waits for what a scrape shows. It polls every 10 ms
// (PollUntil), not WaitUntil's 200 us: each poll is a page the replica
// renders on the two cores its calls need.
constexpr absl::Duration kScrapePatience = absl::Seconds(30);

// One replica: the server process and its metrics port.
struct Replica {
  int workers = 0;
  int metrics_port = 0;
  int port = 0;
  std::unique_ptr<ServerProcess> process;

  // Sleep tasks it has finished with `outcome` (or -1 when it cannot be
  // scraped).
  double Tasks(const std::string& outcome = "ok") const {
    auto scrape = Scrape(metrics_port);
    return scrape.ok() ? scrape->Sum("compute_tasks_total",
                                     {{"task", "sleep"}, {"outcome", outcome}})
                       : -1;
  }

  // Workers running a task now (or -1 when it cannot be scraped).
  double Busy() const {
    auto scrape = Scrape(metrics_port);
    return scrape.ok() ? scrape->Sum("compute_pool_workers_busy") : -1;
  }
};

class Fleet {
 public:
  // Starts one replica per entry of `workers`; false if one did not serve.
  bool Start(const std::vector<int>& workers) {
    for (int w : workers) {
      Replica r;
      r.workers = w;
      r.metrics_port = FreeLoopbackPort();
      r.process = std::make_unique<ServerProcess>(std::vector<std::string>{
          "--address=127.0.0.1", "--port=0", "--metrics_address=127.0.0.1",
          absl::StrCat("--metrics_port=", r.metrics_port),
          absl::StrCat("--workers=", w), "--io_threads=1",
          "--drain_timeout=10s"});
      if (!r.process->Spawn()) return false;
      std::optional<int> port = r.process->WaitServing();
      if (!port) return false;
      r.port = *port;
      replicas_.push_back(std::move(r));
    }
    return true;
  }

  Replica& operator[](size_t i) { return replicas_[i]; }

  // "ipv4:127.0.0.1:p1,127.0.0.1:p2,..."
  std::string Target() const {
    std::vector<std::string> addresses;
    for (const Replica& r : replicas_) {
      addresses.push_back(absl::StrCat("127.0.0.1:", r.port));
    }
    return absl::StrCat("ipv4:", absl::StrJoin(addresses, ","));
  }

  // Calls per second the fleet can finish.
  double Capacity() const {
    double workers = 0;
    for (const Replica& r : replicas_) workers += r.workers;
    return workers / absl::ToDoubleSeconds(kTaskTime);
  }

  std::vector<double> OkTasks() const {
    std::vector<double> ok;
    for (const Replica& r : replicas_) ok.push_back(r.Tasks());
    return ok;
  }

 private:
  std::vector<Replica> replicas_;
};

// The compute-client binary, its stdout on a pipe (stderr goes to the
// test's log).
class ClientProcess {
 public:
  explicit ClientProcess(std::vector<std::string> args) {
    PipedChild child = SpawnPiped(COMPUTE_CLIENT_BIN, std::move(args),
                                  STDOUT_FILENO, InheritedEnvironment());
    pid_ = child.pid;
    out_fd_ = child.fd;
  }
  ~ClientProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_fd_ >= 0) close(out_fd_);
  }

  // Reads stdout to its end and waits for the exit; the exit code (-1 if it
  // did not start or was killed). Every client here ends by itself (its
  // --time or --requests): one still running after `limit` is a failure,
  // killed, rather than a test held until ctest's timeout.
  int Finish(absl::Duration limit = absl::Seconds(120)) {
    if (pid_ <= 0) return -1;
    const absl::Time end = absl::Now() + limit;
    char chunk[4096];
    while (true) {
      pollfd p{out_fd_, POLLIN, 0};
      const absl::Duration left = end - absl::Now();
      if (left <= absl::ZeroDuration() ||
          poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(left)) + 1) ==
              0) {
        ADD_FAILURE() << "compute-client still running after " << limit;
        return -1;  // the destructor kills it
      }
      const ssize_t n = read(out_fd_, chunk, sizeof(chunk));
      if (n <= 0) break;
      out_.append(chunk, static_cast<size_t>(n));
    }
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& out() const { return out_; }

 private:
  pid_t pid_ = -1;
  int out_fd_ = -1;
  std::string out_;
};

// What `compute-client bench --json` reported.
struct Bench {
  int rc = -1;
  double sent = 0;
  double refused = 0;
  double errors = 0;
  double retries = 0;
  std::map<std::string, double> status;  // calls by status code name
  std::string json;

  double count(const std::string& code) const {
    auto it = status.find(code);
    return it == status.end() ? 0 : it->second;
  }
  double ok() const { return count("OK"); }
  double completed() const {
    double n = 0;
    for (const auto& [code, calls] : status) n += calls;
    return n;
  }
};

Bench ParseBench(int rc, const std::string& out) {
  Bench b;
  b.rc = rc;
  b.json = out;
  google::protobuf::Struct s;
  if (!google::protobuf::util::JsonStringToMessage(out, &s).ok()) return b;
  auto number = [&](const std::string& key) {
    auto it = s.fields().find(key);
    return it == s.fields().end() ? -1 : it->second.number_value();
  };
  b.sent = number("sent");
  b.refused = number("refused");
  b.errors = number("errors");
  b.retries = number("retries");
  for (const auto& [code, calls] :
       s.fields().at("status").struct_value().fields()) {
    b.status[code] = calls.number_value();
  }
  return b;
}

std::vector<std::string> BenchArgs(const Fleet& fleet, const std::string& lb,
                                   double rate, absl::Duration time) {
  return {"bench",
          "--target",
          fleet.Target(),
          "--lb",
          lb,
          "--task",
          "sleep",
          "--duration",
          absl::FormatDuration(kTaskTime),
          "--rate",
          absl::StrCat(rate),
          "--time",
          absl::FormatDuration(time),
          "--deadline",
          "5s",
          "--json"};
}

Bench RunBench(std::vector<std::string> args) {
  ClientProcess client(std::move(args));
  const int rc = client.Finish();
  return ParseBench(rc, client.out());
}

std::vector<double> Minus(const std::vector<double>& a,
                          const std::vector<double>& b) {
  std::vector<double> d;
  for (size_t i = 0; i < a.size(); ++i) d.push_back(a[i] - b[i]);
  return d;
}

TEST(FleetE2eTest, LeastLoadedServesTheUnequalFleetRoundRobinCannot) {
  Fleet fleet;
  ASSERT_TRUE(fleet.Start({1, 4, 4}));
  const double rate = 0.8 * fleet.Capacity();  // 360 calls/s
  const absl::Duration time = absl::Seconds(4);

  const std::vector<double> start = fleet.OkTasks();
  const Bench least = RunBench(BenchArgs(fleet, "least_loaded", rate, time));
  const std::vector<double> after_least = fleet.OkTasks();
  const Bench round = RunBench(BenchArgs(fleet, "round_robin", rate, time));
  const std::vector<double> after_round = fleet.OkTasks();
  ASSERT_EQ(least.rc, 0) << least.json;
  ASSERT_EQ(round.rc, 0) << round.json;
  const std::vector<double> by_least = Minus(after_least, start);
  const std::vector<double> by_round = Minus(after_round, after_least);

  const double least_goodput = least.ok() / least.sent;
  const double round_goodput = round.ok() / round.sent;
  RecordProperty("least_loaded_goodput", absl::StrCat(least_goodput));
  RecordProperty("round_robin_goodput", absl::StrCat(round_goodput));
  SCOPED_TRACE(absl::StrCat("OK per replica (1, 4, 4 workers): least_loaded ",
                            absl::StrJoin(by_least, "/"), ", round_robin ",
                            absl::StrJoin(by_round, "/")));
  EXPECT_GT(least.sent, 0.5 * rate * absl::ToDoubleSeconds(time));
  EXPECT_GE(least_goodput, 0.95) << least.json;
  EXPECT_EQ(least.errors, 0) << least.json;
  // The 1-worker replica finishes at most 50 calls/s (120/s is a third of
  // the load): round robin must lose what it cannot hold, and least_loaded
  // must not send it what it cannot hold.
  EXPECT_LT(round_goodput, least_goodput) << round.json;
  EXPECT_LT(by_least[0], by_least[1]);
  EXPECT_LT(by_least[0], by_least[2]);
  // Each server counted every OK call the client saw, and no other.
  double least_total = 0;
  for (double n : by_least) least_total += n;
  EXPECT_EQ(least_total, least.ok());
}

TEST(FleetE2eTest, RetryLosesNoCallWhenReplicasAreKilledOrDrained) {
  // Equal replicas, so that least_loaded sends each its share at a load the
  // last survivor (4 workers, 200 calls/s) can hold alone.
  Fleet fleet;
  ASSERT_TRUE(fleet.Start({4, 4, 4}));
  const double rate = 120;
  std::vector<std::string> args =
      BenchArgs(fleet, "least_loaded", rate, absl::Seconds(6));
  args.push_back("--retry");
  ClientProcess client(std::move(args));

  // Once the load reaches them: SIGKILL one replica, then SIGTERM (drain)
  // another.
  ASSERT_TRUE(
      PollUntil([&] { return fleet[0].Tasks() >= 10; }, kScrapePatience));
  fleet[0].process->Signal(SIGKILL);
  const double drained_before = fleet[1].Tasks();
  ASSERT_TRUE(PollUntil([&] { return fleet[1].Tasks() >= drained_before + 50; },
                        kScrapePatience));
  const double survivor_before = fleet[2].Tasks();
  fleet[1].process->Signal(SIGTERM);
  const ExitResult drained = fleet[1].process->Wait();

  const Bench bench = ParseBench(client.Finish(), client.out());
  const double survivor_after = fleet[2].Tasks();
  EXPECT_EQ(drained.code, 0) << drained.stderr_text;
  EXPECT_TRUE(absl::StrContains(drained.stderr_text, "\"stopped\""))
      << drained.stderr_text;
  ASSERT_EQ(bench.rc, 0) << bench.json;
  EXPECT_GT(bench.sent, 0.5 * rate * 6);
  // Nothing lost: every call OK, on its first replica or a retry. The
  // faults came mid-run (the killed replica had served 10 calls, the
  // drained one 50 more, and the survivor takes the load after, below).
  // How many calls needed a retry is left to chance: least_loaded stops
  // choosing a replica once its connection drops, so only the calls in
  // flight at the kill (about one, at this rate) fail there; until
  // 2026-12-05 it went on choosing the dead replica until a call failed,
  // and this test also asserted a retry, which now fails about half the
  // time with nothing lost.
  EXPECT_EQ(bench.ok(), bench.sent) << bench.json;
  // The survivor took the load over after the drain began.
  EXPECT_GT(survivor_after - survivor_before,
            0.5 * rate * absl::ToDoubleSeconds(absl::Seconds(1)))
      << bench.json;
}

// A replica draining a long call sends its GOAWAY at once, so clients with
// one connection to it (pick_first, or any through a Kubernetes ClusterIP
// Service) go to another replica for the whole drain. Until 2026-12-03 the
// GOAWAY came only once the pool had drained: 150 of 350 calls at 50/s
// were refused UNAVAILABLE ("server is draining") during a 3 s drain while
// the other replica idled, with --retry too (each retry went back to the
// same connection). Calls sent while the GOAWAY is on its way may still be
// refused UNAVAILABLE (or end CANCELLED: gRPC's race, the README's "one
// gap"): at most 15% are allowed, about 600 ms of the client's reaction to
// the GOAWAY (3 of 200 once in CI, the machine loaded: the client took
// ~60 ms; a sanitized client on two shared cores can take several times
// that), against 40% before, when the GOAWAY waited for the drain.
TEST(FleetE2eTest, ADrainingReplicasClientsGoElsewhereAtOnce) {
  for (const std::string lb : {"pick_first", "round_robin"}) {
    SCOPED_TRACE(lb);
    Fleet fleet;
    ASSERT_TRUE(fleet.Start({2, 2}));
    // A call that keeps replica 0's drain open for a while, running before
    // the load starts (the load's own calls would make it look busy too,
    // and a call that came after the SIGTERM would be refused).
    // 6 s: still running at the SIGTERM however slowly the load starts.
    ClientProcess long_call({"run", "sleep", "--duration", "6s", "--target",
                             absl::StrCat("ipv4:127.0.0.1:", fleet[0].port)});
    ASSERT_TRUE(
        PollUntil([&] { return fleet[0].Busy() >= 1; }, kScrapePatience));
    ClientProcess client(BenchArgs(fleet, lb, 50, absl::Seconds(4)));
    ASSERT_TRUE(
        PollUntil([&] { return fleet[0].Tasks() + fleet[1].Tasks() >= 20; },
                  kScrapePatience));
    fleet[0].process->Signal(SIGTERM);
    const ExitResult drained = fleet[0].process->Wait();
    EXPECT_EQ(drained.code, 0) << drained.stderr_text;
    EXPECT_EQ(long_call.Finish(), 0) << "the accepted call is answered OK";
    const Bench bench = ParseBench(client.Finish(), client.out());
    EXPECT_GT(bench.sent, 0.5 * 50 * 4) << bench.json;
    EXPECT_EQ(bench.completed(), bench.sent) << bench.json;
    EXPECT_GE(bench.ok(), 0.85 * bench.sent) << bench.json;
  }
}

// The drain alone, for a client that does not retry: what a replica
// answers while it drains. (In CI, under ASan, one call in 720 of the test
// above once ended CANCELLED while one replica was killed and another
// drained.)
struct DrainRun {
  ExitResult server;
  std::optional<google::protobuf::Struct> stopped;  // its "stopped" line
  Bench bench;
};

// One replica loaded with 200 20-ms sleeps a second for 3 s, SIGTERMed
// once it has answered 50 and has calls running. 32 workers, at an eighth
// of their capacity: no call waits long enough to be refused, however busy
// the two cores are. Checks what must hold of every drain: every call the
// replica accepted is answered OK (none stopped by the drain, none lost on
// the way), the rest end UNAVAILABLE or CANCELLED (see below), and it
// exits 0.
void DrainUnderLoad(DrainRun* run) {
  Fleet fleet;
  ASSERT_TRUE(fleet.Start({32}));
  Replica& replica = fleet[0];
  std::vector<std::string> args =
      BenchArgs(fleet, "round_robin", 200, absl::Seconds(3));
  // UNAVAILABLE is expected here: bench exits 0 all the same.
  args.insert(args.end(), {"--max_error_rate", "1"});
  ClientProcess client(std::move(args));
  ASSERT_TRUE(
      PollUntil([&] { return replica.Tasks() >= 50 && replica.Busy() >= 2; },
                kScrapePatience));
  replica.process->Signal(SIGTERM);
  run->server = replica.process->Wait();
  run->stopped = LogLine(run->server.stderr_text, "stopped");
  run->bench = ParseBench(client.Finish(), client.out());

  const Bench& bench = run->bench;
  EXPECT_EQ(run->server.code, 0) << run->server.stderr_text;
  ASSERT_TRUE(run->stopped.has_value()) << run->server.stderr_text;
  ASSERT_EQ(bench.rc, 0) << bench.json;
  EXPECT_EQ(bench.completed(), bench.sent) << bench.json;
  for (const auto& [code, calls] : bench.status) {
    EXPECT_TRUE(code == "OK" || code == "UNAVAILABLE" || code == "CANCELLED")
        << calls << " calls ended " << code << ": " << bench.json;
  }
  EXPECT_GT(bench.ok(), 0) << bench.json;
  EXPECT_GT(bench.count("UNAVAILABLE"), 0)
      << "no call was refused: the drain came after the load. " << bench.json;
  // Every task the replica ran reached its client as OK. (gRPC's own
  // shutdown, had it cut one, would show here: it ends the calls left
  // after its grace UNAVAILABLE "Cancelling all calls".)
  const auto& stopped = run->stopped->fields();
  EXPECT_EQ(stopped.at("tasks_completed").number_value(), bench.ok())
      << run->server.stderr_text << bench.json;
  EXPECT_EQ(stopped.at("tasks_shut_down").number_value(), 0)
      << run->server.stderr_text;
}

TEST(FleetE2eTest, DrainAnswersEveryAcceptedCallOk) {
  DrainRun run;
  ASSERT_NO_FATAL_FAILURE(DrainUnderLoad(&run));
  RecordProperty("cancelled", absl::StrCat(run.bench.count("CANCELLED")));
}

// A call the draining replica does not accept is refused UNAVAILABLE, so
// none ends CANCELLED, for a client that watches health (compute-client's
// round_robin has a healthCheckConfig). gRPC 1.51 cancels every call that
// reaches the server after its shutdown has begun, before the client has
// read the GOAWAY that shutdown sends (no other API sends one), and such a
// call is never handed to the service: CANCELLED, never run. Until
// 2026-12-04 the GOAWAY came at once with the drain, and this test was
// disabled: 6 runs in 20 had 1 or 2 CANCELLED of 600 calls, and at 2,000
// calls/s every run had some. Now the drain says NOT_SERVING, the client
// stops sending, and the GOAWAY waits until calls stop arriving
// (ComputeServer::AwaitCallsStopArriving): 0 in 23 runs, 20 of them with a
// busy loop on one of the two cores (with a 50 ms quiet period; 5 of 5 with
// today's 20 ms). A client that does not watch health
// (pick_first) can still lose the calls it sends into the GOAWAY.
//
// That needs a client that acts on NOT_SERVING within the drain's 100 ms
// at most, and is not descheduled for the 20 ms quiet period meanwhile. A
// sanitized client on two cores shared with another test cannot promise
// that, and a bound loose enough for it could not catch the 1 or 2 calls
// in 600 this test was written for: the plain build checks it.
TEST(FleetE2eTest, DrainRefusesEveryOtherCallUnavailable) {
  if (COMPUTE_TEST_SANITIZED) {
    GTEST_SKIP() << "timing a sanitized client cannot promise; checked in "
                    "the plain build";
  }
  DrainRun run;
  ASSERT_NO_FATAL_FAILURE(DrainUnderLoad(&run));
  EXPECT_EQ(run.bench.count("CANCELLED"), 0) << run.bench.json;
}

}  // namespace
}  // namespace compute::testing
