// --retry: gRPC's retry policy against a server whose queue is full.
//
// What we can observe: the server offers no hook for request metadata, so
// `grpc-previous-rpc-attempts` itself is out of sight. Instead a
// CallObserver (the server's metrics hook) timestamps every refusal on the
// server's side. One client call then shows up as several refusals, and the
// gap between two of them is at least the pushback the server asked for:
// the client waits exactly that long after receiving the refusal (gRPC adds
// no jitter to a server pushback), and the refusal was sent before it was
// received. gRPC's timers run on a millisecond clock cached per execution
// context, so a wait may end up to a millisecond or so early: the bound
// allows kTimerSlack. Without the pushback the first retry would come after
// a random 0..50 ms (initialBackoff), far below the bound. Only lower
// bounds are asserted, so a slow machine cannot make the test fail; the
// attempt count is exact (maxAttempts 5; the retry throttle, 10 tokens
// less one per failed attempt, lets a process's first call make all 5).
#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/pool/sync.h"
#include "tests/client/client_test_util.h"
#include "tests/integration/test_server.h"

namespace compute::testing {
namespace {

using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;
constexpr auto kTimerSlack = std::chrono::milliseconds(10);

// Each refusal from `first` on came at least `pushback_ms` after the one
// before it (less gRPC's timer slack).
void ExpectSpacedBy(const std::vector<Clock::time_point>& times, size_t first,
                    int pushback_ms) {
  for (size_t i = first + 1; i < times.size(); ++i) {
    EXPECT_GE(times[i] - times[i - 1],
              std::chrono::milliseconds(pushback_ms) - kTimerSlack)
        << "attempt " << i - first;
  }
}

class RefusalLog final : public service::CallObserver {
 public:
  void OnCallStarted(std::string_view) override {}
  void OnCallHandled(std::string_view, grpc::StatusCode,
                     absl::Duration) override {}
  void OnRejected(service::RejectReason reason, Priority) override {
    std::function<void()> hook;
    {
      MutexLock lock(&mu_);
      if (reason == service::RejectReason::kQueueFull) {
        times_.push_back(Clock::now());
      }
      hook = on_reject_;
    }
    if (hook) hook();
  }
  std::vector<Clock::time_point> times() {
    MutexLock lock(&mu_);
    return times_;
  }
  void OnReject(std::function<void()> hook) {
    MutexLock lock(&mu_);
    on_reject_ = std::move(hook);
  }

 private:
  Mutex mu_;
  std::vector<Clock::time_point> times_ ABSL_GUARDED_BY(mu_);
  std::function<void()> on_reject_ ABSL_GUARDED_BY(mu_);
};

// Set to let the blocker end without a cancel (which takes a round trip
// through the transport and an I/O thread).
std::atomic<bool> release_blocker{false};

// The blocker: a "150 ms" spin that runs until it is cancelled or released.
absl::Status SpinUntilCancelled(const tasks::TaskKind& kind,
                                const compute::v1::RunRequest& request,
                                compute::tasks::Payload payload,
                                const CancelToken& cancel,
                                compute::v1::RunResponse* response) {
  if (request.has_spin() && request.spin().duration().nanos() == 150000000) {
    while (!cancel.stop_requested() && !release_blocker.load()) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    return absl::CancelledError("stopped");
  }
  return kind.run(request, payload, cancel, response);
}

class RetryTest : public ::testing::Test {
 protected:
  // One worker, no queue: a second task is refused while the first runs.
  // The first is estimated at 150 ms (a 150 ms spin) and runs until
  // cancelled; the pool's clock is frozen, so the time it has left, the
  // pushback of every refusal, stays 150 ms.
  void SetUp() override {
    release_blocker = false;
    service::ServerConfig config = LocalConfig(1, 0);
    config.observer = &log_;
    config.pool.clock = &clock_;
    config.run_task = &SpinUntilCancelled;
    server_ = StartServer(config);
    ASSERT_NE(server_, nullptr);
    channel_ = Connect(server_->port());
    stub_ = compute::v1::Compute::NewStub(channel_);
    blocker_ =
        std::make_unique<AsyncCall>(*stub_, Spin(absl::Milliseconds(150)));
    ASSERT_TRUE(WaitUntil([&] { return server_->pool().Stats().busy == 1; }));
  }
  void TearDown() override {
    log_.OnReject(nullptr);
    if (blocker_ != nullptr) blocker_->Cancel();
    blocker_.reset();
  }
  uint64_t QueueFull() {
    return server_->service().rejected(service::RejectReason::kQueueFull);
  }
  // The pushback the server sends now, from one refused call.
  int PushbackMs() {
    grpc::ClientContext context;
    compute::v1::RunResponse response;
    grpc::Status s =
        stub_->Run(&context, Spin(absl::Milliseconds(1)), &response);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    auto trailers = context.GetServerTrailingMetadata();
    auto it = trailers.find("grpc-retry-pushback-ms");
    EXPECT_NE(it, trailers.end());
    return it == trailers.end()
               ? 0
               : std::stoi(std::string(it->second.data(), it->second.size()));
  }
  CommandResult RunSpin(bool retry) {
    std::vector<std::string> args = {"run",        "spin",     "--duration",
                                     "1ms",        "--target", Target(*server_),
                                     "--deadline", "20s"};
    if (retry) args.push_back("--retry");
    return RunClient(args);
  }

  RefusalLog log_;
  SimulatedClock clock_{absl::Now()};
  std::unique_ptr<service::ComputeServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<compute::v1::Compute::Stub> stub_;
  std::unique_ptr<AsyncCall> blocker_;
};

TEST_F(RetryTest, WithoutRetryOneCallIsOneAttempt) {
  uint64_t before = QueueFull();
  CommandResult r = RunSpin(/*retry=*/false);
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, StartsWith("RESOURCE_EXHAUSTED: server busy"));
  EXPECT_EQ(QueueFull(), before + 1);
}

TEST_F(RetryTest, RetriesAreSpacedByTheServersPushback) {
  const int pushback_ms = PushbackMs();
  EXPECT_EQ(pushback_ms, 150) << "the blocker's estimate";
  const size_t first = log_.times().size();
  Clock::time_point start = Clock::now();
  CommandResult r = RunSpin(/*retry=*/true);
  Clock::duration took = Clock::now() - start;

  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, StartsWith("RESOURCE_EXHAUSTED: "));
  std::vector<Clock::time_point> times = log_.times();
  ASSERT_EQ(times.size() - first, 5u) << "maxAttempts is 5";
  ExpectSpacedBy(times, first, pushback_ms);
  EXPECT_GE(took, 4 * (std::chrono::milliseconds(pushback_ms) - kTimerSlack));
}

// gRPC keeps a call's request for its retries only up to a buffer, 256 KiB
// by default, and commits a larger call to its first attempt: a 1 MiB
// request was never retried.
TEST_F(RetryTest, ALargeRequestIsRetriedToo) {
  const uint64_t before = QueueFull();
  CommandResult r =
      RunClient({"run", "sha256", "--data", std::string(1 << 20, 'x'),
                 "--target", Target(*server_), "--deadline", "20s", "--retry"});
  EXPECT_EQ(r.rc, 1);
  EXPECT_THAT(r.err, StartsWith("RESOURCE_EXHAUSTED: "));
  EXPECT_EQ(QueueFull(), before + 5) << "maxAttempts is 5";
}

// Retries are throttled: against a server that refuses every call, 20
// calls are not 100 attempts. Each failed attempt costs a token of 10 and
// retries stop at half; the first failures of 20 calls at once spend them.
TEST_F(RetryTest, RetriesAreThrottledWhenEveryCallIsRefused) {
  const uint64_t before = QueueFull();
  CommandResult r =
      RunClient({"bench", "--task", "spin", "--duration", "1ms", "--requests",
                 "20", "--concurrency", "20", "--retry", "--deadline", "20s",
                 "--target", Target(*server_), "--json"});
  EXPECT_EQ(r.rc, 1) << "no call can succeed";
  EXPECT_EQ(Number(ParseJson(r.out), "refused"), 20);
  EXPECT_GE(QueueFull() - before, 20u);
  EXPECT_LE(QueueFull() - before, 20u + 5) << "unthrottled: 100 attempts";
}

// least_loaded retries itself, on another replica; with none open (one
// replica here, refusing), after the pushback it asked for, not at once.
TEST_F(RetryTest, LeastLoadedRetriesWaitForThePushbackWhenNoReplicaIsOpen) {
  const int pushback_ms = PushbackMs();
  const size_t first = log_.times().size();
  CommandResult r = RunClient(
      {"bench", "--lb", "least_loaded", "--retry", "--task", "spin",
       "--duration", "1ms", "--requests", "1", "--concurrency", "1",
       "--deadline", "20s", "--target", "ipv4:" + Target(*server_), "--json"});
  EXPECT_EQ(r.rc, 1) << r.err;
  std::vector<Clock::time_point> times = log_.times();
  ASSERT_EQ(times.size() - first, 5u) << "5 attempts";
  ExpectSpacedBy(times, first, pushback_ms);
}

// A retry that would wait for a pushback past the end of the run is not
// made: the run ends on time instead of waiting up to 4 pushbacks (10 s
// each at most) for calls it has stopped measuring.
TEST_F(RetryTest, LeastLoadedDoesNotWaitToRetryPastTheEndOfTheRun) {
  CommandResult r = RunClient(
      {"bench", "--lb", "least_loaded", "--retry", "--task", "spin",
       "--duration", "1ms", "--time", "100ms", "--concurrency", "1",
       "--deadline", "20s", "--target", "ipv4:" + Target(*server_), "--json"});
  EXPECT_EQ(r.rc, 1) << r.err;
  google::protobuf::Struct json = ParseJson(r.out);
  EXPECT_GT(Number(json, "refused"), 0);
  EXPECT_EQ(Number(json, "retries"), 0) << "each would wait 150 ms";
}

// A retry that would be sent with only a sliver of its deadline left (the
// pushback's wait leaves 5 ms less the refused attempt's own round trip,
// under the 5 ms a timer may be late) is not made: the call ends refused,
// as without --retry, not DEADLINE_EXCEEDED, which counts as a failure.
// Before, it was retried (and on a busy machine ended out of time).
TEST_F(RetryTest, LeastLoadedMakesNoRetryWithASliverOfItsDeadlineLeft) {
  const int pushback_ms = PushbackMs();
  // With room for an answer after the wait, it is retried.
  CommandResult r =
      RunClient({"bench", "--lb", "least_loaded", "--retry", "--task", "spin",
                 "--duration", "1ms", "--requests", "1", "--concurrency", "1",
                 "--deadline", absl::StrCat(2 * pushback_ms + 100, "ms"),
                 "--target", "ipv4:" + Target(*server_), "--json"});
  google::protobuf::Struct json = ParseJson(r.out);
  EXPECT_GE(Number(json, "retries"), 1);
  // With a sliver left after the wait, it is not.
  r = RunClient({"bench", "--lb", "least_loaded", "--retry", "--task", "spin",
                 "--duration", "1ms", "--requests", "1", "--concurrency", "1",
                 "--deadline", absl::StrCat(pushback_ms + 5, "ms"), "--target",
                 "ipv4:" + Target(*server_), "--json"});
  EXPECT_EQ(r.rc, 1) << r.err;
  json = ParseJson(r.out);
  if (Number(json, "refused") == 0 && Number(json, "retries") == 0) {
    // The refused attempt itself took longer than its deadline (a process
    // start and a connection on a loaded machine): nothing to judge. A
    // retry made with the sliver would show in "retries" and fail below.
    GTEST_SKIP() << "the first attempt outlived its " << pushback_ms + 5
                 << " ms deadline: " << r.out;
  }
  EXPECT_EQ(Number(json, "refused"), 1);
  EXPECT_EQ(Number(json, "retries"), 0);
}

// least_loaded's --retry, when every replica refuses (the one here): the
// retry budget (20% of the calls + 10, or the calls in flight) stops retries
// multiplying the load; without it, 100 calls would be 500 attempts.
TEST_F(RetryTest, LeastLoadedRetriesStayWithinTheBudget) {
  constexpr int kCalls = 100;
  const uint64_t before = QueueFull();
  CommandResult r =
      RunClient({"bench", "--lb", "least_loaded", "--retry", "--task", "spin",
                 "--duration", "1ms", "--requests", absl::StrCat(kCalls),
                 "--concurrency", "4", "--deadline", "20s", "--target",
                 "ipv4:" + Target(*server_), "--json"});
  ASSERT_EQ(r.rc, 1) << "no call can succeed: " << r.out;
  google::protobuf::Struct json = ParseJson(r.out);
  EXPECT_EQ(Number(json, "refused"), kCalls);
  EXPECT_GT(Number(json, "retries"), 0);
  EXPECT_LE(Number(json, "retries"), 0.2 * kCalls + 10);
  EXPECT_GT(Number(json, "retries_over_budget"), 0);
  EXPECT_EQ(QueueFull() - before, kCalls + Number(json, "retries"));
}

TEST_F(RetryTest, ARetryAfterThePushbackSucceedsOnceTheWorkerIsFree) {
  // The first refusal frees the worker before it is sent; the next
  // attempt, one pushback later, finds it idle. (Freed by a cancel instead,
  // the worker waited on the transport and an I/O thread, and on a loaded
  // machine all five attempts were once refused.) The hook runs on the
  // thread that refuses, outside the pool's lock; the worker needs no I/O
  // thread to finish.
  log_.OnReject([this] {
    release_blocker = true;
    WaitUntil([&] { return server_->pool().Stats().busy == 0; });
  });
  uint64_t before = QueueFull();
  CommandResult r = RunSpin(/*retry=*/true);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("spin(duration=1.00ms) = spun "));
  EXPECT_EQ(QueueFull(), before + 1);
}

// A closed-loop lane refused with a pushback pauses before its next call,
// but not once --requests are all claimed: the run ends with its last
// answer. Before 2026-12-07 the lane waited out its pause (up to 12 s), and
// one that reached --time made the run count as ended by --time, its
// elapsed time exactly --time's (here 120 ms, inside the 150 ms pushback).
TEST_F(RetryTest, ABenchEndsWithItsLastAnswerNotWithALanesPause) {
  CommandResult r =
      RunClient({"bench", "--task", "spin", "--duration", "1ms", "--requests",
                 "1", "--concurrency", "1", "--time", "120ms", "--target",
                 Target(*server_), "--json"});
  EXPECT_EQ(r.rc, 1) << r.err;
  google::protobuf::Struct json = ParseJson(r.out);
  EXPECT_EQ(Number(json, "refused"), 1);
  // Its one answer's time, whatever the machine's speed; never --time's.
  EXPECT_NE(Number(json, "elapsed_seconds"), 0.12) << r.out;
}

// A call whose own estimate is longer than its deadline is refused with
// pushback -1 (gRFC A6: do not retry): least_loaded neither retries it nor
// avoids the replica for it (it was the call, not the replica). Before, each
// such call was sent up to 5 times, and the replica avoided after each.
TEST(RetryNotAskedForTest,
     LeastLoadedDoesNotRetryACallThatCannotFitItsDeadline) {
  std::unique_ptr<service::ComputeServer> server =
      StartServer(LocalConfig(1, 8));
  ASSERT_NE(server, nullptr);
  constexpr int kCalls = 5;
  CommandResult r =
      RunClient({"bench", "--lb", "least_loaded", "--retry", "--task", "spin",
                 "--duration", "5s", "--requests", absl::StrCat(kCalls),
                 "--concurrency", "1", "--deadline", "1s", "--target",
                 "ipv4:" + Target(*server), "--json"});
  ASSERT_EQ(r.rc, 1) << "no call can succeed: " << r.out;
  google::protobuf::Struct json = ParseJson(r.out);
  EXPECT_EQ(Number(json, "refused"), kCalls);
  EXPECT_EQ(Number(json, "retries"), 0) << r.out;
  EXPECT_EQ(server->service().rejected(service::RejectReason::kDeadline),
            static_cast<uint64_t>(kCalls));
}

// The same refusal in a closed loop: the lane backs off (10 ms doubling)
// instead of resending at once, with a balancer too (no replica is avoided
// for a -1, so waiting for one to open would be no wait at all).
TEST(RetryNotAskedForTest, AClosedLoopLaneBacksOffAfterADoNotRetryRefusal) {
  std::unique_ptr<service::ComputeServer> server =
      StartServer(LocalConfig(1, 8));
  ASSERT_NE(server, nullptr);
  CommandResult r = RunClient(
      {"bench", "--lb", "least_loaded", "--task", "spin", "--duration", "5s",
       "--time", "1s", "--concurrency", "1", "--deadline", "1s", "--target",
       "ipv4:" + Target(*server), "--json"});
  ASSERT_EQ(r.rc, 1) << "no call can succeed: " << r.out;
  google::protobuf::Struct json = ParseJson(r.out);
  // 10, 20, 40 ... 640 ms: about 7 in the second; at once, thousands.
  EXPECT_LE(Number(json, "sent"), 20) << r.out;
  EXPECT_EQ(Number(json, "refused"), Number(json, "sent"));
}

// A request over the server's --max_message_bytes is refused by gRPC
// itself, RESOURCE_EXHAUSTED "Received message larger than max", with no
// pushback; every replica would refuse it again. least_loaded's --retry
// neither retries it nor avoids the replica, and a closed-loop lane backs
// off as after a do-not-retry refusal. Before 2026-12-07, 3 such calls were
// 13 attempts (the whole retry budget).
TEST(RetryNotAskedForTest, LeastLoadedDoesNotRetryAMessageOverTheLimit) {
  service::ServerConfig config = LocalConfig(1, 8);
  config.max_message_bytes = 4096;
  std::unique_ptr<service::ComputeServer> server = StartServer(config);
  ASSERT_NE(server, nullptr);
  const std::string data(6000, 'a');
  constexpr int kCalls = 3;
  CommandResult r = RunClient(
      {"bench", "--lb", "least_loaded", "--retry", "--task", "sha256", "--data",
       data, "--requests", absl::StrCat(kCalls), "--concurrency", "1",
       "--deadline", "20s", "--target", "ipv4:" + Target(*server), "--json"});
  ASSERT_EQ(r.rc, 1) << "no call can succeed: " << r.out;
  google::protobuf::Struct json = ParseJson(r.out);
  EXPECT_EQ(Number(json, "refused"), kCalls) << r.out;
  EXPECT_EQ(Number(json, "retries"), 0) << r.out;
  r = RunClient({"bench", "--lb", "least_loaded", "--task", "sha256", "--data",
                 data, "--time", "1s", "--concurrency", "1", "--target",
                 "ipv4:" + Target(*server), "--json"});
  ASSERT_EQ(r.rc, 1) << "no call can succeed: " << r.out;
  json = ParseJson(r.out);
  // 10, 20, 40 ... 640 ms: about 7 in the second; at once, thousands.
  EXPECT_LE(Number(json, "sent"), 20) << r.out;
  EXPECT_EQ(Number(json, "refused"), Number(json, "sent"));
}

}  // namespace
}  // namespace compute::testing
