// The metrics end to end, with a real Prometheus: the compute-server binary
// serves /metrics on a free port, Debian's `prometheus` scrapes it every
// second (generated config, temporary TSDB), a known load runs against the
// server, and Prometheus's HTTP API (/api/v1/query) must report the queue
// depth, busy workers and handled totals of that load. `promtool check
// metrics` must pass on a live scrape, and the README's PromQL must be
// accepted by Prometheus.
//
// Every child runs on 127.0.0.1 only, dies with this test process
// (PR_SET_PDEATHSIG) and is killed when the test ends; every wait is bounded.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/integration/test_server.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::testing {
namespace {

constexpr absl::Duration kPatience = absl::Seconds(60);

// A child process with stdout and stderr in a log file. Killed (SIGKILL)
// when this object goes, and by the kernel if the test process dies first.
class Child {
 public:
  Child(std::vector<std::string> argv, std::string log_path)
      : log_path_(std::move(log_path)) {
    std::vector<char*> args;
    for (std::string& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const pid_t parent = getpid();
    int log =
        open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    pid_ = fork();
    if (pid_ == 0) {
      // Only async-signal-safe calls from here to exec.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(log, STDOUT_FILENO);
      dup2(log, STDERR_FILENO);
      execv(args[0], args.data());
      _exit(127);
    }
    if (log >= 0) close(log);
  }
  ~Child() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  bool started() const { return pid_ > 0; }
  std::string Log() const {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }
  // Sends `sig` and waits for the exit status (-1: killed, or timed out).
  int Stop(int sig, absl::Duration timeout = absl::Seconds(30)) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    absl::Time end = absl::Now() + timeout;
    int status = 0;
    while (absl::Now() < end) {
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return -1;
  }

 private:
  std::string log_path_;
  pid_t pid_ = -1;
};

std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += absl::StrCat("%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

// Runs a shell command; its exit status and output (stdout and stderr).
std::pair<int, std::string> Shell(const std::string& command) {
  std::string output;
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return {-1, "popen failed"};
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), p)) > 0)
    output.append(buffer, n);
  int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

class PrometheusE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(std::filesystem::exists(PROMETHEUS_BIN))
        << "no prometheus binary (" << PROMETHEUS_BIN
        << "): run scripts/install-deps.sh (Debian package prometheus)";
    ASSERT_TRUE(std::filesystem::exists(PROMTOOL_BIN)) << PROMTOOL_BIN;
    std::string tmpl =
        (std::filesystem::temp_directory_path() / "compute-e2e-XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (HasFailure()) {
      if (server_) std::cerr << "--- compute-server log\n" << server_->Log();
      if (prometheus_)
        std::cerr << "--- prometheus log\n" << prometheus_->Log();
    }
    prometheus_.reset();
    server_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Starts compute-server and reads its gRPC port from the "serving" line.
  void StartServer(int workers, int capacity) {
    metrics_port_ = metrics::testing::FreeLoopbackPort();
    server_ = std::make_unique<Child>(
        std::vector<std::string>{
            COMPUTE_SERVER_BIN, "--address=127.0.0.1", "--port=0",
            absl::StrCat("--workers=", workers),
            absl::StrCat("--queue_capacity=", capacity),
            "--metrics_address=127.0.0.1",
            absl::StrCat("--metrics_port=", metrics_port_)},
        (dir_ / "server.log").string());
    ASSERT_TRUE(server_->started());
    absl::Time end = absl::Now() + kPatience;
    while (grpc_port_ == 0 && absl::Now() < end) {
      for (absl::string_view line : absl::StrSplit(server_->Log(), '\n')) {
        google::protobuf::Struct log;
        if (!google::protobuf::util::JsonStringToMessage(std::string(line),
                                                         &log)
                 .ok()) {
          continue;
        }
        const auto& f = log.fields();
        if (f.contains("msg") && f.at("msg").string_value() == "serving") {
          grpc_port_ = static_cast<int>(f.at("port").number_value());
          EXPECT_EQ(f.at("metrics_port").number_value(), metrics_port_);
        }
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    ASSERT_GT(grpc_port_, 0) << "no serving line";
    stub_ = compute::v1::Compute::NewStub(Connect(grpc_port_));
  }

  void StartPrometheus() {
    prometheus_port_ = metrics::testing::FreeLoopbackPort();
    std::filesystem::path config = dir_ / "prometheus.yml";
    std::ofstream(config) << "global:\n"
                             "  scrape_interval: 1s\n"
                             "  scrape_timeout: 1s\n"
                             "  evaluation_interval: 1s\n"
                             "scrape_configs:\n"
                             "  - job_name: compute\n"
                             "    static_configs:\n"
                             "      - targets: ['127.0.0.1:"
                          << metrics_port_ << "']\n";
    prometheus_ = std::make_unique<Child>(
        std::vector<std::string>{
            PROMETHEUS_BIN, absl::StrCat("--config.file=", config.string()),
            absl::StrCat("--storage.tsdb.path=", (dir_ / "tsdb").string()),
            absl::StrCat("--web.listen-address=127.0.0.1:", prometheus_port_)},
        (dir_ / "prometheus.log").string());
    ASSERT_TRUE(prometheus_->started());
    ASSERT_TRUE(WaitUntil(
        [&] {
          auto r = metrics::testing::HttpGet("127.0.0.1", prometheus_port_,
                                             "/-/ready", absl::Seconds(2));
          return r.ok() && r->status == 200;
        },
        kPatience, absl::Milliseconds(100)))
        << "prometheus not ready";
  }

  // An instant query: the value of its single sample, or nullopt when the
  // result is empty (or not one sample). Fails the test on API errors.
  std::optional<double> Query(const std::string& promql) {
    auto r = metrics::testing::HttpGet(
        "127.0.0.1", prometheus_port_,
        absl::StrCat("/api/v1/query?query=", UrlEncode(promql)));
    if (!r.ok()) {
      ADD_FAILURE() << promql << ": " << r.status();
      return std::nullopt;
    }
    google::protobuf::Struct json;
    if (!google::protobuf::util::JsonStringToMessage(r->body, &json).ok() ||
        json.fields().at("status").string_value() != "success") {
      ADD_FAILURE() << promql << ": HTTP " << r->status << " " << r->body;
      return std::nullopt;
    }
    const auto& result =
        json.fields().at("data").struct_value().fields().at("result");
    if (result.list_value().values_size() != 1) return std::nullopt;
    const auto& value = result.list_value()
                            .values(0)
                            .struct_value()
                            .fields()
                            .at("value")
                            .list_value();
    double v = 0;
    if (value.values_size() != 2 ||
        !absl::SimpleAtod(value.values(1).string_value(), &v)) {
      ADD_FAILURE() << promql << ": " << r->body;
      return std::nullopt;
    }
    return v;
  }

  // Waits until Prometheus reports `want` for `promql`; on timeout, returns
  // false and says what it saw last.
  ::testing::AssertionResult QueryReaches(const std::string& promql,
                                          double want) {
    std::optional<double> last;
    if (WaitUntil(
            [&] {
              last = Query(promql);
              return last == want;
            },
            // Prometheus scrapes once a second: a query every 100 ms
            // sees each new sample soon enough.
            kPatience, absl::Milliseconds(100))) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << promql << " = "
           << (last ? absl::StrCat(*last) : std::string("(no sample)"))
           << ", want " << want;
  }

  std::filesystem::path dir_;
  std::unique_ptr<Child> server_;
  std::unique_ptr<Child> prometheus_;
  int grpc_port_ = 0;
  int metrics_port_ = 0;
  int prometheus_port_ = 0;
  std::unique_ptr<compute::v1::Compute::Stub> stub_;
};

TEST_F(PrometheusE2ETest, PrometheusSeesTheLoad) {
  constexpr int kWorkers = 2;
  constexpr int kCapacity = 3;
  constexpr int kOk = 4;
  ASSERT_NO_FATAL_FAILURE(StartServer(kWorkers, kCapacity));
  ASSERT_NO_FATAL_FAILURE(StartPrometheus());
  EXPECT_TRUE(QueryReaches("up{job=\"compute\"}", 1));
  EXPECT_TRUE(QueryReaches("compute_pool_workers", kWorkers));
  EXPECT_TRUE(QueryReaches("compute_pool_queue_capacity", kCapacity));
  EXPECT_TRUE(QueryReaches("compute_build_info", 1));

  // Completed calls.
  for (int i = 0; i < kOk; ++i) {
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    compute::v1::RunResponse r;
    ASSERT_TRUE(stub_->Run(&context, Fib(20), &r).ok());
  }
  EXPECT_TRUE(QueryReaches(
      "grpc_server_handled_total{grpc_service=\"compute.v1.Compute\","
      "grpc_method=\"Run\",grpc_type=\"unary\",grpc_code=\"OK\"}",
      kOk));
  EXPECT_TRUE(
      QueryReaches("compute_tasks_total{task=\"fib\",outcome=\"ok\"}", kOk));

  // W running, C queued, one refused.
  std::vector<std::unique_ptr<AsyncCall>> calls;
  for (int i = 0; i < kWorkers + kCapacity; ++i) {
    calls.push_back(
        std::make_unique<AsyncCall>(*stub_, Sleep(absl::Seconds(60))));
  }
  ASSERT_TRUE(WaitUntil(
      [&] {
        auto e = metrics::testing::Scrape(metrics_port_);
        return e.ok() && e->Value("compute_pool_queue_depth") == kCapacity &&
               e->Value("compute_pool_workers_busy") == kWorkers;
      },
      kWaitLimit, kIoPoll));
  {
    // The queue is full: refused at once (queue_full is checked before the
    // deadline, which only bounds a hang).
    grpc::ClientContext context;
    context.set_deadline(absl::ToChronoTime(absl::Now() + kWait));
    compute::v1::RunResponse r;
    ASSERT_EQ(stub_->Run(&context, Spin(absl::Seconds(1)), &r).error_code(),
              grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  EXPECT_TRUE(QueryReaches("compute_pool_workers_busy", kWorkers));
  EXPECT_TRUE(QueryReaches("compute_pool_queue_depth", kCapacity));
  // (Health and reflection calls are counted too: select the service.)
  EXPECT_TRUE(
      QueryReaches("grpc_server_handled_total{grpc_service="
                   "\"compute.v1.Compute\",grpc_code=\"ResourceExhausted\"}",
                   1));
  EXPECT_TRUE(
      QueryReaches("compute_tasks_rejected_total{reason=\"queue_full\"}", 1));
  EXPECT_TRUE(QueryReaches(
      "sum(grpc_server_started_total{grpc_service=\"compute.v1.Compute\"})",
      kOk + kWorkers + kCapacity + 1));
  // The README's saturation query.
  EXPECT_TRUE(QueryReaches(
      "sum(compute_pool_workers_busy) / sum(compute_pool_workers)", 1));

  // The exposition passes promtool's lint, under load too.
  auto scrape =
      metrics::testing::HttpGet("127.0.0.1", metrics_port_, "/metrics");
  ASSERT_TRUE(scrape.ok()) << scrape.status();
  std::filesystem::path exposition = dir_ / "metrics.txt";
  std::ofstream(exposition) << scrape->body;
  auto [code, output] = Shell(
      absl::StrCat(PROMTOOL_BIN, " check metrics < ", exposition.string()));
  EXPECT_EQ(code, 0) << output;
  EXPECT_EQ(output, "") << "promtool check metrics has something to say";

  // The load ends: cancelled, every one.
  for (auto& c : calls) c->Cancel();
  for (auto& c : calls) {
    EXPECT_EQ(c->Wait().error_code(), grpc::StatusCode::CANCELLED);
  }
  EXPECT_TRUE(QueryReaches("compute_pool_workers_busy", 0));
  EXPECT_TRUE(QueryReaches("compute_pool_queue_depth", 0));
  EXPECT_TRUE(
      QueryReaches("grpc_server_handled_total{grpc_service="
                   "\"compute.v1.Compute\",grpc_code=\"Canceled\"}",
                   kWorkers + kCapacity));
  EXPECT_TRUE(QueryReaches(
      "sum(grpc_server_handled_total{grpc_service=\"compute.v1.Compute\"})",
      kOk + kWorkers + kCapacity + 1));
  EXPECT_TRUE(
      QueryReaches("sum(compute_tasks_total)", kOk + kWorkers + kCapacity));
  // The running ones ran; a queued one may have started as a worker freed
  // before its own cancel arrived.
  std::optional<double> ran =
      Query("compute_task_run_seconds_count{task=\"sleep\"}");
  EXPECT_GE(ran.value_or(-1), kWorkers);
  EXPECT_LE(ran.value_or(-1), kWorkers + kCapacity);
  EXPECT_TRUE(QueryReaches("compute_task_queue_wait_seconds_count",
                           kOk + kWorkers + kCapacity));

  // The README's other queries are valid PromQL over these series (their
  // values depend on timing; that each evaluates to at least one sample is
  // the check).
  for (const char* promql : {
           "sum(rate(compute_tasks_rejected_total[1m])) / "
           "sum(rate(grpc_server_started_total[1m]))",
           "histogram_quantile(0.99, sum by (le) "
           "(rate(compute_task_queue_wait_seconds_bucket[1m])))",
           "sum by (grpc_code) (rate(grpc_server_handled_total[1m]))",
           "sum by (task, outcome) (rate(compute_tasks_total[1m]))",
       }) {
    auto r = metrics::testing::HttpGet(
        "127.0.0.1", prometheus_port_,
        absl::StrCat("/api/v1/query?query=", UrlEncode(promql)));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << promql << ": " << r->body;
    EXPECT_THAT(r->body, ::testing::HasSubstr("\"result\":[{"))
        << promql << ": no sample";
  }

  EXPECT_EQ(server_->Stop(SIGTERM), 0) << "clean drain and exit";
}

}  // namespace
}  // namespace compute::testing
