#include "server/metrics/tenant_metrics.h"

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::metrics {
namespace {

using ::testing::ElementsAre;
using testing::Exposition;

constexpr absl::Duration kInterval = absl::Seconds(10);

Exposition Parse(const TenantMetrics& metrics) {
  auto e = testing::SerializeAndParse(metrics.Collect());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : Exposition();
}

// `n` OK tasks of `tenant`, each estimated and run for `cost`.
void Send(TenantMetrics& m, const std::string& tenant, int n,
          absl::Duration cost) {
  for (int i = 0; i < n; ++i) {
    m.OnTenantTask(tenant, TaskOutcome::kOk, cost, cost);
  }
}

TEST(TenantMetricsTest, CountsEachNamedTenantAndEveryoneElseAsOther) {
  SimulatedClock clock;
  TenantMetrics m(2, clock, kInterval);
  m.OnTenantTask("alice", TaskOutcome::kOk, absl::Milliseconds(5),
                 absl::Milliseconds(4));
  m.OnTenantTask("alice", TaskOutcome::kPreempted, absl::Milliseconds(5),
                 absl::ZeroDuration());
  m.OnTenantRejected("bob", absl::Milliseconds(5));
  // No place left: carol counts as other.
  m.OnTenantTask("carol", TaskOutcome::kOk, absl::Milliseconds(1),
                 absl::Milliseconds(2));
  m.OnTenantRejected("carol", absl::Milliseconds(1));

  EXPECT_THAT(m.NamedTenants(), ElementsAre("alice", "bob"));
  Exposition e = Parse(m);
  EXPECT_EQ(e.types["compute_tenant_tasks_total"], "counter");
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "alice"}, {"outcome", "ok"}}),
            1);
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "alice"}, {"outcome", "preempted"}}),
            1);
  EXPECT_DOUBLE_EQ(
      *e.Value("compute_tenant_run_seconds_total", {{"tenant", "alice"}}),
      0.004);
  EXPECT_EQ(e.Value("compute_tenant_rejected_total", {{"tenant", "bob"}}), 1);
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "other"}, {"outcome", "ok"}}),
            1);
  EXPECT_EQ(e.Value("compute_tenant_rejected_total", {{"tenant", "other"}}), 1);
  EXPECT_DOUBLE_EQ(
      *e.Value("compute_tenant_run_seconds_total", {{"tenant", "other"}}),
      0.002);
  EXPECT_EQ(e.All("compute_tenant_tasks_total").size(),
            size_t{3} * kNumTaskOutcomes);
  EXPECT_FALSE(e.Value("compute_tenant_rejected_total", {{"tenant", "carol"}})
                   .has_value());
}

TEST(TenantMetricsTest, OtherExistsFromTheStart) {
  SimulatedClock clock;
  TenantMetrics m(5, clock, kInterval);
  Exposition e = Parse(m);
  EXPECT_EQ(e.All("compute_tenant_tasks_total").size(),
            size_t{kNumTaskOutcomes});
  EXPECT_EQ(e.Value("compute_tenant_rejected_total", {{"tenant", "other"}}), 0);
  EXPECT_EQ(e.Value("compute_tenant_run_seconds_total", {{"tenant", "other"}}),
            0);
}

TEST(TenantMetricsTest, AHeavierTenantTakesThePlaceOfALightOne) {
  SimulatedClock clock;
  TenantMetrics m(1, clock, kInterval);
  Send(m, "light", 1, absl::Milliseconds(1));
  Send(m, "heavy", 100, absl::Milliseconds(10));
  EXPECT_THAT(m.NamedTenants(), ElementsAre("light"));
  clock.Advance(kInterval);
  Send(m, "heavy", 1, absl::Milliseconds(10));  // re-ranks first
  EXPECT_THAT(m.NamedTenants(), ElementsAre("heavy"));

  // The new place starts from zero; what it sent before stays in other.
  Exposition e = Parse(m);
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "heavy"}, {"outcome", "ok"}}),
            1);
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "other"}, {"outcome", "ok"}}),
            100);
  EXPECT_FALSE(e.Value("compute_tenant_tasks_total",
                       {{"tenant", "light"}, {"outcome", "ok"}})
                   .has_value());
}

// Refused calls used no worker: their estimates (here 60 s each) do not
// take the place of a tenant whose calls ran.
TEST(TenantMetricsTest, RefusedCallsDoNotOutrankWorkDone) {
  SimulatedClock clock;
  TenantMetrics m(1, clock, kInterval);
  Send(m, "worker", 100, absl::Milliseconds(10));  // 1 s of work
  for (int i = 0; i < 10; ++i) m.OnTenantRejected("refused", absl::Seconds(60));
  clock.Advance(kInterval);
  Send(m, "worker", 1, absl::Milliseconds(10));  // re-ranks first
  EXPECT_THAT(m.NamedTenants(), ElementsAre("worker"));
  // A flood of refusals still scores: 10,000 of them against 1 s of work.
  for (int i = 0; i < 10000; ++i) {
    m.OnTenantRejected("flood", absl::Seconds(60));
  }
  clock.Advance(kInterval);
  Send(m, "worker", 1, absl::Milliseconds(10));
  EXPECT_THAT(m.NamedTenants(), ElementsAre("flood"));
}

TEST(TenantMetricsTest, ASimilarTenantDoesNotTakeAPlace) {
  SimulatedClock clock;
  TenantMetrics m(1, clock, kInterval);
  Send(m, "first", 10, absl::Milliseconds(10));
  Send(m, "second", 15, absl::Milliseconds(10));  // 1.5x: not enough
  clock.Advance(kInterval);
  Send(m, "first", 1, absl::Milliseconds(10));
  EXPECT_THAT(m.NamedTenants(), ElementsAre("first"));
}

TEST(TenantMetricsTest, ScoresDecaySoRecentDemandWins) {
  SimulatedClock clock;
  TenantMetrics m(1, clock, kInterval);
  Send(m, "old", 100, absl::Milliseconds(10));  // 1 s of cost, long ago
  for (int i = 0; i < 6; ++i) {
    clock.Advance(kInterval);
    Send(m, "new", 10, absl::Milliseconds(10));  // 0.1 s per interval
  }
  // old: 1 s halved six times = 0.016 s; new: about 0.2 s.
  EXPECT_THAT(m.NamedTenants(), ElementsAre("new"));
}

TEST(TenantMetricsTest, AFloodOfTenantsKeepsMemoryBounded) {
  SimulatedClock clock;
  TenantMetrics m(2, clock, kInterval);
  Send(m, "a", 1, absl::Milliseconds(1));
  Send(m, "b", 1, absl::Milliseconds(1));
  const int kFlood = 10000;
  for (int i = 0; i < kFlood; ++i) {
    m.OnTenantRejected(absl::StrCat("x", i), absl::Microseconds(1));
  }
  Exposition e = Parse(m);
  EXPECT_EQ(e.All("compute_tenant_rejected_total").size(), 3u);
  EXPECT_EQ(e.Value("compute_tenant_rejected_total", {{"tenant", "other"}}),
            kFlood);
  EXPECT_THAT(m.NamedTenants(), ElementsAre("a", "b"));
}

// A flood of new tenants (a client changing its name or address on every
// call) makes room in passes that each free about half the map, not in
// one scan of the whole map per newcomer; and a heavy tenant without a
// place keeps its score through it, to win a place at the next re-rank.
TEST(TenantMetricsTest, AFloodOfNewTenantsIsCheapAndKeepsTheHeavyOnes) {
  SimulatedClock clock;
  TenantMetrics m(2, clock, kInterval);  // 2 * 16 + 64 = 96 tracked
  Send(m, "a", 1, absl::Milliseconds(1));
  Send(m, "b", 1, absl::Milliseconds(1));
  Send(m, "heavy", 1, absl::Milliseconds(5));  // no place left for it
  const int kFlood = 10000;
  for (int i = 0; i < kFlood; ++i) {
    m.OnTenantRejected(absl::StrCat("x", i), absl::Microseconds(1));
  }
  // About 46 newcomers per pass: a scan per newcomer would be 9,900.
  EXPECT_LE(m.forget_passes(), size_t{kFlood / 40});
  EXPECT_THAT(m.NamedTenants(), ElementsAre("a", "b"));
  clock.Advance(kInterval);
  Send(m, "a", 1, absl::Microseconds(1));  // the re-rank is due
  EXPECT_THAT(m.NamedTenants(), ::testing::Contains("heavy"));
}

TEST(TenantMetricsTest, ATenantCalledOtherIsEveryoneElse) {
  SimulatedClock clock;
  TenantMetrics m(3, clock, kInterval);
  m.OnTenantRejected("other", absl::Milliseconds(1));
  EXPECT_TRUE(m.NamedTenants().empty());
  Exposition e = Parse(m);
  EXPECT_EQ(e.Value("compute_tenant_rejected_total", {{"tenant", "other"}}), 1);
  EXPECT_EQ(e.All("compute_tenant_rejected_total").size(), 1u);
}

// A tenant's name is a label value, and one that is not UTF-8 made
// Prometheus (and `promtool check metrics`: "invalid label value") refuse
// the whole scrape. Its bad bytes are written as U+FFFD; UTF-8 is kept.
TEST(TenantMetricsTest, ANameThatIsNotUtf8IsWrittenAsValidUtf8) {
  SimulatedClock clock;
  TenantMetrics m(5, clock, kInterval);
  const absl::Duration ms = absl::Milliseconds(1);
  m.OnTenantTask("bad\xff\xfe", TaskOutcome::kOk, ms, ms);
  // The same name once made valid: the same tenant, one series.
  m.OnTenantRejected("bad\xfe\xff", ms);
  m.OnTenantTask("cut\xe2\x82", TaskOutcome::kOk, ms, ms);  // cut short
  // Overlong '/', then a surrogate (U+D800).
  m.OnTenantTask("\xc0\xaf\xed\xa0\x80", TaskOutcome::kOk, ms, ms);
  m.OnTenantTask("Zo\xc3\xab", TaskOutcome::kOk, ms, ms);

  const std::string bad = "\xef\xbf\xbd";  // U+FFFD
  EXPECT_THAT(m.NamedTenants(),
              ElementsAre("Zo\xc3\xab", "bad" + bad + bad, "cut" + bad + bad,
                          bad + bad + bad + bad + bad));
  // Parse fails on a label value that is not UTF-8, as Prometheus does.
  Exposition e = Parse(m);
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "bad" + bad + bad}, {"outcome", "ok"}}),
            1);
  EXPECT_EQ(
      e.Value("compute_tenant_rejected_total", {{"tenant", "bad" + bad + bad}}),
      1);
  EXPECT_EQ(e.Value("compute_tenant_tasks_total",
                    {{"tenant", "Zo\xc3\xab"}, {"outcome", "ok"}}),
            1);
  EXPECT_EQ(e.All("compute_tenant_rejected_total").size(), 5u);
}

TEST(TenantMetricsTest, ConcurrentCallsLoseNothing) {
  SimulatedClock clock;
  TenantMetrics m(4, clock, kInterval);
  constexpr int kThreads = 4;
  constexpr int kCalls = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&m, t] {
      for (int i = 0; i < kCalls; ++i) {
        m.OnTenantTask(absl::StrCat("t", (t + i) % 6), TaskOutcome::kOk,
                       absl::Microseconds(5), absl::Microseconds(5));
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(Parse(m).Sum("compute_tenant_tasks_total"), kThreads * kCalls);
}

}  // namespace
}  // namespace compute::metrics
