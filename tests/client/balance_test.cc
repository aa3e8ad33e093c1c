// Load balancing over an address list: round_robin (the default) spreads
// calls evenly over three servers; pick_first would pin one; least_loaded
// avoids a busy one.
#include <algorithm>
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/least_loaded.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/client/client_test_util.h"
#include "tests/integration/test_server.h"

namespace compute::testing {
namespace {

class BalanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    target_ = "ipv4:";
    for (int i = 0; i < 3; ++i) {
      servers_.push_back(StartServer(LocalConfig(1, 64)));
      ASSERT_NE(servers_.back(), nullptr);
      absl::StrAppend(&target_, i == 0 ? "" : ",",
                      "127.0.0.1:", servers_.back()->port());
    }
  }
  uint64_t Accepted(int i) { return servers_[i]->pool().Stats().accepted; }

  std::vector<std::unique_ptr<service::ComputeServer>> servers_;
  std::string target_;
};

TEST_F(BalanceTest, RoundRobinGivesEachServerAboutAThird) {
  // Enough calls that the first ones, sent while only one connection is up
  // (longer under ASan), do not move a share past its bounds.
  constexpr int kCalls = 2400;
  CommandResult r = RunClient({"bench", "--target", target_, "--task", "fib",
                               "--n", "1", "--concurrency", "3", "--requests",
                               absl::StrCat(kCalls), "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Object(ParseJson(r.out), "status").fields().at("OK").number_value(),
            kCalls);
  // Exactly a third once all three connections are up; the first calls
  // may all go to whichever server connected (and passed its health
  // check) first, for a second or so under ASan on a loaded machine.
  // Pinning (pick_first: all, none, none) is still far outside.
  for (int i = 0; i < 3; ++i) {
    EXPECT_GE(Accepted(i), kCalls / 6) << "server " << i;
    EXPECT_LE(Accepted(i), kCalls / 2) << "server " << i;
  }
  EXPECT_EQ(Accepted(0) + Accepted(1) + Accepted(2), uint64_t{kCalls});
}

TEST_F(BalanceTest, PickFirstPinsTheFirstAddress) {
  CommandResult r =
      RunClient({"bench", "--target", target_, "--lb", "pick_first", "--task",
                 "fib", "--n", "1", "--requests", "60", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(Accepted(0), 60u);
  EXPECT_EQ(Accepted(1) + Accepted(2), 0u);
}

// least_loaded: a server whose worker is taken (and whose queue holds 30 s
// of work) reports it in every answer, refuses what it cannot finish in
// time, and is then avoided: the calls go to the two idle servers.
TEST_F(BalanceTest, LeastLoadedAvoidsTheBusyServer) {
  auto stub = compute::v1::Compute::NewStub(Connect(servers_[0]->port()));
  AsyncCall running(*stub, Sleep(absl::Seconds(30)), absl::InfiniteDuration());
  AsyncCall queued(*stub, Sleep(absl::Seconds(30)), absl::InfiniteDuration());
  ASSERT_TRUE(
      WaitUntil([&] { return servers_[0]->pool().Stats().queue_depth == 1; }));
  constexpr int kCalls = 300;
  CommandResult r = RunClient(
      {"bench", "--target", target_, "--lb", "least_loaded", "--task", "fib",
       "--n", "5", "--concurrency", "2", "--requests", absl::StrCat(kCalls),
       "--deadline", "10s", "--max_error_rate", "0", "--json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  google::protobuf::Struct json = ParseJson(r.out);
  const double ok = Object(json, "status").fields().at("OK").number_value();
  EXPECT_GE(ok, kCalls - 4) << "only the first calls may meet the busy server";
  EXPECT_EQ(Accepted(0), 2u) << "its own two spins: no fib call ran there";
  EXPECT_EQ(Accepted(1) + Accepted(2), static_cast<uint64_t>(ok));
  EXPECT_GE(Accepted(1), kCalls / 5) << "both idle servers share the calls";
  EXPECT_GE(Accepted(2), kCalls / 5);
}

// A replica that was busy when it last answered, and then got no call,
// must not keep its old report for ever: the idle replica would never be
// chosen again while the others' scores stay below that report.
TEST(LeastLoadedTest, AStaleReportStopsCounting) {
  using client::ReplicaScore;
  using client::ReplicaView;
  // 2 workers each. Busy: 3 (both workers and a queue), just reported.
  const ReplicaView busy_now{.load = 3, .workers = 2};
  const ReplicaView modest_now{.load = 1, .workers = 2, .in_flight = 1};
  EXPECT_LT(ReplicaScore(modest_now), ReplicaScore(busy_now));
  // The same report of 3, two seconds old, and no call of ours there.
  ReplicaView busy_then = busy_now;
  busy_then.load_age = absl::Seconds(2);
  EXPECT_LT(ReplicaScore(busy_then), ReplicaScore(modest_now));
  // An old report still counts this client's own calls in flight.
  busy_then.in_flight = 2;
  EXPECT_GE(ReplicaScore(busy_then), 1.5);
  // Half its weight after one half-life, all of it when fresh.
  ReplicaView half = busy_now;
  half.load_age = client::kLoadHalfLife;
  EXPECT_DOUBLE_EQ(ReplicaScore(half), 1.5 + 0.5);
  EXPECT_DOUBLE_EQ(ReplicaScore(busy_now), 3 + 0.5);
  // Not heard from, nothing on its way: the probe.
  EXPECT_EQ(ReplicaScore(ReplicaView{}), 0);
}

// A clock for LeastLoaded that moves only when told: the pauses these
// tests look at are neither ended nor lengthened by a stalled machine (on
// the steady clock, a 1.3 s stop failed 2 of 6 runs).
class ManualClock {
 public:
  client::LeastLoaded::NowNs Now() {
    return [this] { return ns_.load(); };
  }
  void Advance(absl::Duration d) { ns_.fetch_add(absl::ToInt64Nanoseconds(d)); }

 private:
  std::atomic<int64_t> ns_{int64_t{1} << 40};
};

// Two replicas at addresses where nothing listens, never called: Choose
// and Done alone, on `clock`.
absl::StatusOr<std::unique_ptr<client::LeastLoaded>> TwoReplicasNeverCalled(
    ManualClock& clock) {
  client::ChannelOptions options;
  options.target = "ipv4:127.0.0.1:1,127.0.0.1:2";
  return client::LeastLoaded::Create(options, absl::Seconds(10),
                                     client::ResolveTarget, clock.Now());
}

// `n` calls chosen and left in flight.
std::vector<std::shared_ptr<client::LeastLoaded::Replica>> Choose(
    client::LeastLoaded& lb, int n) {
  std::vector<std::shared_ptr<client::LeastLoaded::Replica>> chosen;
  for (int i = 0; i < n; ++i) chosen.push_back(lb.Choose());
  return chosen;
}

// Chooses until `want` is chosen (each other choice answered OK at once,
// 10 ms of `clock` apart); returns it, in flight, or nullptr if it never
// was within 60 s of that clock.
std::shared_ptr<client::LeastLoaded::Replica> ChooseUntil(
    client::LeastLoaded& lb,
    const std::shared_ptr<client::LeastLoaded::Replica>& want,
    ManualClock& clock) {
  const grpc::ClientContext no_trailers;
  for (int i = 0; i < 6000; ++i) {
    std::shared_ptr<client::LeastLoaded::Replica> r = lb.Choose();
    if (r == want) return r;
    lb.Done(*r, grpc::Status::OK, no_trailers);
    clock.Advance(absl::Milliseconds(10));
  }
  return nullptr;
}

// A replica whose last call ended UNAVAILABLE, once its pause is over,
// takes one call at a time until one is answered: the calls chosen in the
// moment its pause ends must not all go to a replica that is still gone.
TEST(LeastLoadedTest, AReplicaBackFromAPauseTakesOneCallAtATime) {
  ManualClock clock;
  auto balancer = TwoReplicasNeverCalled(clock);
  ASSERT_TRUE(balancer.ok()) << balancer.status();
  client::LeastLoaded& lb = **balancer;
  const grpc::ClientContext no_trailers;
  const grpc::Status gone(grpc::StatusCode::UNAVAILABLE, "connection refused");
  std::shared_ptr<client::LeastLoaded::Replica> lost = lb.Choose();
  lb.Done(*lost, gone, no_trailers);
  // Paused (1 s after UNAVAILABLE): every call goes to the other one.
  // Polled until the lost one is chosen again, its pause over.
  std::shared_ptr<client::LeastLoaded::Replica> probe =
      ChooseUntil(lb, lost, clock);  // kept in flight
  ASSERT_NE(probe, nullptr);
  // While that one call is out, the others go elsewhere, even once the
  // other replica has far more calls in flight (held, not answered).
  std::vector<std::shared_ptr<client::LeastLoaded::Replica>> held;
  for (int i = 0; i < 20; ++i) {
    held.push_back(lb.Choose());
    EXPECT_NE(held.back(), lost) << i;
  }
  for (auto& r : held) lb.Done(*r, grpc::Status::OK, no_trailers);
  held.clear();
  // Answered (any answer, an error too): it takes calls as any replica does
  // again, several at once.
  lb.Done(*probe, grpc::Status(grpc::StatusCode::INTERNAL, "task failed"),
          no_trailers);
  for (int i = 0; i < 20; ++i) held.push_back(lb.Choose());
  EXPECT_GE(std::count(held.begin(), held.end(), lost), 5);
  for (auto& r : held) lb.Done(*r, grpc::Status::OK, no_trailers);
}

// Every replica avoided, one gone (UNAVAILABLE) and one refusing: the calls
// go to the one that answers, with its refusals, not to the gone one, which
// reports no load and would score 0 (before: 162 of 200 calls UNAVAILABLE
// in a bench run beside a refusing server).
TEST(LeastLoadedTest, WhenEveryReplicaIsAvoidedTheOneThatAnswersTakesCalls) {
  ManualClock clock;
  auto balancer = TwoReplicasNeverCalled(clock);
  ASSERT_TRUE(balancer.ok()) << balancer.status();
  client::LeastLoaded& lb = **balancer;
  const grpc::ClientContext no_trailers;
  std::shared_ptr<client::LeastLoaded::Replica> gone = lb.Choose();
  lb.Done(*gone, grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused"),
          no_trailers);
  std::shared_ptr<client::LeastLoaded::Replica> refusing = lb.Choose();
  ASSERT_NE(refusing, gone);
  lb.Done(*refusing,
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"),
          no_trailers);
  // Held, so that each call in flight raises its replica's score.
  std::vector<std::shared_ptr<client::LeastLoaded::Replica>> held;
  for (int i = 0; i < 20; ++i) held.push_back(lb.Choose());
  // At most its one probe call, should its 1 s pause end meanwhile.
  EXPECT_LE(std::count(held.begin(), held.end(), gone), 1);
  for (auto& r : held) lb.Done(*r, grpc::Status::OK, no_trailers);
  held.clear();
}

// A replica that cut a call off (CANCELLED: a server shutting down cancels
// the calls it had not started) is avoided, so a retry goes elsewhere.
TEST(LeastLoadedTest, AReplicaThatCutACallOffIsAvoided) {
  ManualClock clock;
  auto balancer = TwoReplicasNeverCalled(clock);
  ASSERT_TRUE(balancer.ok()) << balancer.status();
  client::LeastLoaded& lb = **balancer;
  const grpc::ClientContext no_trailers;
  std::shared_ptr<client::LeastLoaded::Replica> cut = lb.Choose();
  lb.Done(*cut, grpc::Status(grpc::StatusCode::CANCELLED, "CANCELLED"),
          no_trailers);
  std::vector<std::shared_ptr<client::LeastLoaded::Replica>> held;
  for (int i = 0; i < 20; ++i) held.push_back(lb.Choose());
  EXPECT_EQ(std::count(held.begin(), held.end(), cut), 0);
  for (auto& r : held) lb.Done(*r, grpc::Status::OK, no_trailers);
}

// Calls that were out when replicas stalled (a network blip) time out
// together: they pause each replica once (1 s), not once per call (20 in a
// row paused each for 30 s before), and an answer ends the pause.
TEST(LeastLoadedTest, CallsThatTimeOutTogetherPauseAReplicaOnce) {
  ManualClock clock;
  auto balancer = TwoReplicasNeverCalled(clock);
  ASSERT_TRUE(balancer.ok()) << balancer.status();
  client::LeastLoaded& lb = **balancer;
  const grpc::ClientContext no_trailers;
  std::vector<std::shared_ptr<client::LeastLoaded::Replica>> held =
      Choose(lb, 40);
  const std::shared_ptr<client::LeastLoaded::Replica> answers = lb.Choose();
  ASSERT_GE(std::count(held.begin(), held.end(), answers), 10);
  for (auto& r : held) {
    lb.Done(*r, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"),
            no_trailers);
  }
  EXPECT_GT(lb.UntilOneIsOpen(), absl::ZeroDuration()) << "both paused";
  EXPECT_LE(lb.UntilOneIsOpen(), absl::Seconds(1));
  lb.Done(*answers, grpc::Status::OK, no_trailers);
  EXPECT_EQ(lb.UntilOneIsOpen(), absl::ZeroDuration()) << "one answered";
}

// An answer ends the pause for calls that got none, not the pause a replica
// asked for: gone (UNAVAILABLE, 1 s), then the calls it had out time out,
// then an old call's OK comes back. It stays paused for the UNAVAILABLE.
TEST(LeastLoadedTest, AnAnswerEndsOnlyThePauseForSilence) {
  ManualClock clock;
  auto balancer = TwoReplicasNeverCalled(clock);
  ASSERT_TRUE(balancer.ok()) << balancer.status();
  client::LeastLoaded& lb = **balancer;
  const grpc::ClientContext no_trailers;
  std::vector<std::shared_ptr<client::LeastLoaded::Replica>> held =
      Choose(lb, 40);
  const std::shared_ptr<client::LeastLoaded::Replica> old_call = lb.Choose();
  std::vector<std::shared_ptr<client::LeastLoaded::Replica>> gone;
  for (auto& r : held) {
    if (std::find(gone.begin(), gone.end(), r) == gone.end()) {
      gone.push_back(r);
      lb.Done(*r, grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused"),
              no_trailers);
    } else {
      lb.Done(*r, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"),
              no_trailers);
    }
  }
  ASSERT_EQ(gone.size(), 2u);
  lb.Done(*old_call, grpc::Status::OK, no_trailers);
  EXPECT_GT(lb.UntilOneIsOpen(), absl::ZeroDuration())
      << "both still paused for their UNAVAILABLE";
}

// A replica past its pause but with its one probe call out is not open: a
// retry waits (UntilOneIsOpen > 0) rather than go at once to a replica that
// asked for a pause.
TEST(LeastLoadedTest, AReplicaTakingItsProbeCallIsNotOpenForARetry) {
  ManualClock clock;
  auto balancer = TwoReplicasNeverCalled(clock);
  ASSERT_TRUE(balancer.ok()) << balancer.status();
  client::LeastLoaded& lb = **balancer;
  const grpc::ClientContext no_trailers;
  std::shared_ptr<client::LeastLoaded::Replica> lost = lb.Choose();
  lb.Done(*lost, grpc::Status(grpc::StatusCode::UNAVAILABLE, "refused"),
          no_trailers);
  std::shared_ptr<client::LeastLoaded::Replica> probe =
      ChooseUntil(lb, lost, clock);  // kept in flight
  ASSERT_NE(probe, nullptr);
  // The other one loses 5 calls in a row to their deadlines: avoided 1 s
  // (the last two end within the pause the third began).
  for (int i = 0; i < client::kSilentDeadlines + 2; ++i) {
    std::shared_ptr<client::LeastLoaded::Replica> r = lb.Choose();
    ASSERT_NE(r, lost) << i;
    lb.Done(*r, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "late"),
            no_trailers);
  }
  EXPECT_GT(lb.UntilOneIsOpen(), absl::ZeroDuration());
  lb.Done(*probe, grpc::Status::OK, no_trailers);
  EXPECT_EQ(lb.UntilOneIsOpen(), absl::ZeroDuration());
}

// Every replica avoided, one silent (its last calls lost to their
// deadlines) and one refusing: the calls go to the one that answers. The
// silent one reports no load and would score 0 (before, it was drawn
// with the refusing one and took about half of them).
TEST(LeastLoadedTest, WhenEveryReplicaIsAvoidedASilentOneTakesNoCall) {
  ManualClock clock;
  auto balancer = TwoReplicasNeverCalled(clock);
  ASSERT_TRUE(balancer.ok()) << balancer.status();
  client::LeastLoaded& lb = **balancer;
  const grpc::ClientContext no_trailers;
  const grpc::Status late(grpc::StatusCode::DEADLINE_EXCEEDED, "late");
  std::shared_ptr<client::LeastLoaded::Replica> silent = lb.Choose();
  lb.Done(*silent, late, no_trailers);
  for (int i = 1; i < client::kSilentDeadlines; ++i) {
    std::shared_ptr<client::LeastLoaded::Replica> again =
        ChooseUntil(lb, silent, clock);
    ASSERT_NE(again, nullptr);
    lb.Done(*again, late, no_trailers);
  }
  std::shared_ptr<client::LeastLoaded::Replica> refusing = lb.Choose();
  ASSERT_NE(refusing, silent) << "paused for 1 s";
  lb.Done(*refusing,
          grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "queue full"),
          no_trailers);
  std::vector<std::shared_ptr<client::LeastLoaded::Replica>> held =
      Choose(lb, 20);
  EXPECT_EQ(std::count(held.begin(), held.end(), silent), 0);
  for (auto& r : held) lb.Done(*r, grpc::Status::OK, no_trailers);
}

// Calls lost to their deadlines that end at the same instant on several
// threads count one after the other: the third in a row pauses the
// replica 1 s and the rest end within that pause. Before, two threads
// could both see it unpaused and count a third and a fourth, a 2 s pause
// (the old code failed in the first round, 5 runs of 5).
TEST(LeastLoadedTest, TimeoutsThatEndAtOnceAreCountedOneAfterTheOther) {
  client::ChannelOptions options;
  options.target = "ipv4:127.0.0.1:1";
  ManualClock clock;  // the pause's length is the count's, not a stall's
  auto balancer = client::LeastLoaded::Create(
      options, absl::Seconds(10), client::ResolveTarget, clock.Now());
  ASSERT_TRUE(balancer.ok()) << balancer.status();
  client::LeastLoaded& lb = **balancer;
  const grpc::ClientContext no_trailers;
  const grpc::Status late(grpc::StatusCode::DEADLINE_EXCEEDED, "late");
  constexpr int kThreads = 4;
  for (int round = 0; round < 200; ++round) {
    std::vector<std::shared_ptr<client::LeastLoaded::Replica>> held =
        Choose(lb, client::kSilentDeadlines - 1 + kThreads);
    for (int i = 0; i < client::kSilentDeadlines - 1; ++i) {
      lb.Done(*held[i], late, no_trailers);
    }
    std::atomic<int> ready{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        lb.Done(*held[client::kSilentDeadlines - 1 + t], late, no_trailers);
      });
    }
    for (auto& t : threads) t.join();
    ASSERT_LE(lb.UntilOneIsOpen(), absl::Seconds(1)) << "round " << round;
    ASSERT_GT(lb.UntilOneIsOpen(), absl::ZeroDuration()) << "round " << round;
    // An answer ends the pause and the count, for the next round.
    std::shared_ptr<client::LeastLoaded::Replica> r = lb.Choose();
    lb.Done(*r, grpc::Status::OK, no_trailers);
  }
}

// A compute-load trailer's utilization is taken only when it is a finite
// number >= 0: "inf" never ages (halved, it is still infinite), so the
// replica would not be chosen again while another was open.
TEST(LeastLoadedTest, ALoadThatIsNotAFiniteNumberIsNotTaken) {
  double load = -1;
  int workers = -1;
  EXPECT_TRUE(client::ParseLoad("application_utilization=1.250,workers=4",
                                &load, &workers));
  EXPECT_DOUBLE_EQ(load, 1.25);
  EXPECT_EQ(workers, 4);
  for (const char* bad :
       {"application_utilization=inf", "application_utilization=-inf",
        "application_utilization=nan", "application_utilization=-0.5",
        "workers=4", ""}) {
    EXPECT_FALSE(client::ParseLoad(bad, &load, &workers)) << bad;
  }
  // Workers not a count, or not said: one (0 would read as a replica not
  // heard from, whose reported load is not used).
  for (const char* text :
       {"application_utilization=2,workers=x",
        "application_utilization=2,workers=0", "application_utilization=2"}) {
    EXPECT_TRUE(client::ParseLoad(text, &load, &workers)) << text;
    EXPECT_EQ(workers, 1) << text;
    EXPECT_GT(client::ReplicaScore({.load = load, .workers = workers}), 2)
        << text << ": its load is used";
  }
  // Finite but huge: taken as the most a report counts for, which fades.
  EXPECT_TRUE(
      client::ParseLoad("application_utilization=1e300", &load, &workers));
  EXPECT_EQ(load, client::kMaxReportedLoad);
}

// A replica that leaves the target mid-run (a pod replaced) stops being
// chosen, and what it was sent stays in the run's per-replica counts
// (before, bench's summary listed only the replicas there at the end, so
// its counts did not add up to the calls sent).
TEST(LeastLoadedTest, AReplicaThatLeavesKeepsItsCallsInTheCounts) {
  Mutex mu;
  std::vector<std::string> addresses = {"ipv4:127.0.0.1:1", "ipv4:127.0.0.1:2"};
  auto resolver =
      [&](const std::string&) -> absl::StatusOr<std::vector<std::string>> {
    MutexLock lock(&mu);
    return addresses;
  };
  client::ChannelOptions options;
  options.target = "ipv4:127.0.0.1:1,127.0.0.1:2";
  auto balancer =
      client::LeastLoaded::Create(options, absl::Milliseconds(5), resolver);
  ASSERT_TRUE(balancer.ok()) << balancer.status();
  client::LeastLoaded& lb = **balancer;
  const grpc::ClientContext no_trailers;
  auto answer = [&](int n) {
    for (auto& r : Choose(lb, n)) lb.Done(*r, grpc::Status::OK, no_trailers);
  };
  answer(20);
  const std::vector<std::pair<std::string, uint64_t>> before =
      lb.CallsPerAddress();
  ASSERT_EQ(before.size(), 2u);
  ASSERT_EQ(before[0].first, "ipv4:127.0.0.1:1");
  const uint64_t to_first = before[0].second;
  ASSERT_GT(to_first, 0u);
  {
    MutexLock lock(&mu);
    addresses = {"ipv4:127.0.0.1:2", "ipv4:127.0.0.1:3"};
  }
  ASSERT_TRUE(WaitUntil([&] {
    auto now = lb.replicas();
    return now.size() == 2 && now[1]->address() == "ipv4:127.0.0.1:3";
  }));
  answer(20);
  const std::vector<std::pair<std::string, uint64_t>> after =
      lb.CallsPerAddress();
  ASSERT_EQ(after.size(), 3u);
  EXPECT_EQ(after[0].first, "ipv4:127.0.0.1:2");
  EXPECT_EQ(after[1].first, "ipv4:127.0.0.1:3");
  EXPECT_EQ(after[2], std::make_pair(std::string("ipv4:127.0.0.1:1"), to_first))
      << "gone, its calls kept, none more";
  EXPECT_EQ(after[0].second + after[1].second + after[2].second, 40u);
}

TEST(LeastLoadedTest, ResolvesAddressListsAndNames) {
  auto list = client::ResolveTarget("ipv4:127.0.0.1:1,127.0.0.2:2");
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_EQ(*list,
            (std::vector<std::string>{"ipv4:127.0.0.1:1", "ipv4:127.0.0.2:2"}));
  auto name = client::ResolveTarget("dns:///localhost:50051");
  ASSERT_TRUE(name.ok()) << name.status();
  EXPECT_NE(std::find(name->begin(), name->end(), "ipv4:127.0.0.1:50051"),
            name->end());
  // An address listed twice is one replica.
  auto twice = client::ResolveTarget("ipv4:127.0.0.1:1,127.0.0.1:1");
  ASSERT_TRUE(twice.ok()) << twice.status();
  EXPECT_EQ(*twice, (std::vector<std::string>{"ipv4:127.0.0.1:1"}));
  // gRPC drops the leading slashes of ipv4:///: so does the dedup.
  auto slashes = client::ResolveTarget("ipv4:///127.0.0.1:1,127.0.0.1:1");
  ASSERT_TRUE(slashes.ok()) << slashes.status();
  EXPECT_EQ(*slashes, (std::vector<std::string>{"ipv4:127.0.0.1:1"}));
  auto v6 = client::ResolveTarget("[::1]:7");
  ASSERT_TRUE(v6.ok()) << v6.status();
  EXPECT_EQ(*v6, (std::vector<std::string>{"ipv6:[::1]:7"}));
  // The system's resolver answers, not the DNS server the target names.
  EXPECT_EQ(client::ResolveTarget("dns://8.8.8.8/localhost:1").status().code(),
            absl::StatusCode::kInvalidArgument);
  auto plain = client::ResolveTarget("127.0.0.1:7");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(*plain, (std::vector<std::string>{"ipv4:127.0.0.1:7"}));
  EXPECT_EQ(client::ResolveTarget("unix:/tmp/s").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client::ResolveTarget("ipv4:").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(LeastLoadedTest, ConnectionsDoNotApply) {
  CommandResult r = RunClient({"bench", "--lb", "least_loaded", "--connections",
                               "4", "--requests", "1"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_THAT(r.err, ::testing::HasSubstr("--connections"));
  r = RunClient({"run", "fib", "--n", "1", "--lb", "least_loaded"});
  EXPECT_NE(r.rc, 0);
  EXPECT_THAT(r.err, ::testing::HasSubstr("least_loaded is for bench"));
}

// bench's own list of balancers, which has a third: the channel's message
// named only gRPC's two.
TEST(LeastLoadedTest, BenchNamesEveryBalancerItTakes) {
  CommandResult r = RunClient({"bench", "--lb", "bogus", "--requests", "1"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_EQ(r.err,
            "compute-client bench: --lb must be round_robin, pick_first or "
            "least_loaded (got bogus)\n");
}

}  // namespace
}  // namespace compute::testing
