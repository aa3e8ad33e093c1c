#include "server/pool/fair_queue.h"

#include <cmath>
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"

namespace compute {
namespace {

// Owns the nodes; remembers each node's tenant for the assertions.
class Queue {
 public:
  FairQueue::Node* Push(const std::string& tenant, int64_t cost,
                        Priority priority = Priority::kDefault,
                        double weight = 1) {
    nodes_.emplace_back();
    FairQueue::Node* node = &nodes_.back();
    tenant_of_[node] = tenant;
    queue.Push(node, tenant, priority, weight, cost, now_ns);
    queue.CheckInvariants();
    return node;
  }
  // The time pushes arrive at (the arrival rates').
  int64_t now_ns = 0;
  // The work ahead of a new task of weight 1 of (tenant, priority), each
  // other flow of its class counted at most what it holds now
  // (WorkAhead::AsQueued), or as if it kept sending (WorkAhead::AtMost).
  int64_t AheadAsQueued(std::string_view tenant,
                        Priority priority = Priority::kDefault) const {
    return queue.WorkAheadOf(tenant, priority, 1, 1, now_ns).AsQueued();
  }
  int64_t AheadAtMost(std::string_view tenant,
                      Priority priority = Priority::kDefault) const {
    return queue.WorkAheadOf(tenant, priority, 1, 1, now_ns).AtMost();
  }
  // Pops n, returning their tenants in order.
  std::vector<std::string> Pop(int n) {
    std::vector<std::string> order;
    for (int i = 0; i < n; ++i) {
      FairQueue::Node* node = queue.Pop();
      if (node == nullptr) break;
      order.push_back(tenant_of_[node]);
      queue.CheckInvariants();
    }
    return order;
  }
  // Pops everything; the cost served to each tenant within the first
  // `budget` of cost.
  std::map<std::string, int64_t> ServedWithin(int64_t budget) {
    std::map<std::string, int64_t> served;
    int64_t total = 0;
    while (total < budget) {
      FairQueue::Node* node = queue.Pop();
      if (node == nullptr) break;
      served[tenant_of_[node]] += node->cost_ns;
      total += node->cost_ns;
    }
    return served;
  }

  FairQueue queue;

 private:
  std::deque<FairQueue::Node> nodes_;
  std::map<FairQueue::Node*, std::string> tenant_of_;
};

TEST(FairQueueTest, OneTenantIsFifo) {
  Queue q;
  FairQueue::Node* a = q.Push("a", 5);
  FairQueue::Node* b = q.Push("a", 1);
  FairQueue::Node* c = q.Push("a", 9);
  EXPECT_EQ(q.queue.Pop(), a);
  EXPECT_EQ(q.queue.Pop(), b);
  EXPECT_EQ(q.queue.Pop(), c);
  EXPECT_EQ(q.queue.Pop(), nullptr);
  EXPECT_TRUE(q.queue.empty());
}

TEST(FairQueueTest, TenantsTakeTurns) {
  Queue q;
  for (int i = 0; i < 4; ++i) q.Push("greedy", 10);
  q.Push("modest", 10);
  // The modest tenant's task goes second, not fifth.
  EXPECT_EQ(q.Pop(3), (std::vector<std::string>{"greedy", "modest", "greedy"}));
}

// Fair by cost, not by count: a tenant sending 10x more expensive tasks gets
// the same CPU, so about a tenth of the tasks.
TEST(FairQueueTest, SharesAreByCostNotByCount) {
  Queue q;
  for (int i = 0; i < 100; ++i) q.Push("expensive", 100);
  for (int i = 0; i < 1000; ++i) q.Push("cheap", 10);
  auto served = q.ServedWithin(10000);
  EXPECT_NEAR(served["expensive"], 5000, 200);
  EXPECT_NEAR(served["cheap"], 5000, 200);
}

TEST(FairQueueTest, WeightsScaleShares) {
  Queue q;
  for (int i = 0; i < 300; ++i) q.Push("gold", 10, Priority::kDefault, 4);
  for (int i = 0; i < 300; ++i) q.Push("silver", 10, Priority::kDefault, 1);
  auto served = q.ServedWithin(2000);
  EXPECT_NEAR(served["gold"], 1600, 20);
  EXPECT_NEAR(served["silver"], 400, 20);
}

// Work-conserving without saved-up credit: a tenant idle for a while gets
// its share from when it returns, not a burst for the time it was away.
TEST(FairQueueTest, AnIdleTenantSavesNoCredit) {
  Queue q;
  for (int i = 0; i < 20; ++i) q.Push("busy", 10);
  EXPECT_EQ(q.Pop(10), std::vector<std::string>(10, "busy"))
      << "alone, it gets everything";
  for (int i = 0; i < 5; ++i) q.Push("back", 10);
  // It starts at the current virtual time (ahead of busy's next task, which
  // starts one task later), then they alternate: no burst of five.
  EXPECT_EQ(q.Pop(4),
            (std::vector<std::string>{"back", "busy", "back", "busy"}));
}

// Once the whole class has emptied, nobody was kept waiting: a tenant that
// returns then starts at the class's virtual time, not after the finish tag
// of its last (expensive) task.
TEST(FairQueueTest, AReturningTenantStartsAfreshOnceTheClassEmptied) {
  Queue q;
  q.Push("back", 1000);
  EXPECT_EQ(q.Pop(1), std::vector<std::string>{"back"});
  for (int i = 0; i < 5; ++i) q.Push("busy", 10);
  EXPECT_EQ(q.Pop(1), std::vector<std::string>{"busy"});
  q.Push("back", 10);
  EXPECT_EQ(q.Pop(2), (std::vector<std::string>{"back", "busy"}));
}

// Clients that call one at a time: each tenant has one task queued, its
// queue empties when it is served, and it sends the next at once. Each must
// get its turn in a round, not the two that happen to sit first (the
// queue's first version kept serving 2 of 10 such tenants, for ever).
TEST(FairQueueTest, TenantsWithOneTaskQueuedEachTakeTurns) {
  Queue q;
  constexpr int kTenants = 10;
  for (int t = 0; t < kTenants; ++t) q.Push("t" + std::to_string(t), 5);
  std::map<std::string, int> served;
  for (int i = 0; i < 10 * kTenants; ++i) {
    std::vector<std::string> one = q.Pop(1);
    ASSERT_EQ(one.size(), 1u);
    ++served[one[0]];
    q.Push(one[0], 5);  // its next call
  }
  ASSERT_EQ(served.size(), size_t{kTenants}) << "a tenant was never served";
  for (const auto& [tenant, n] : served) EXPECT_EQ(n, 10) << tenant;
}

// Among heads with equal tags, the flow that became active first goes
// first: tenants whose debts are gone (a new class epoch, or a record freed
// by the sweep) must not be served by their place in the active list,
// which let the last arrivals jump ahead of the others for ever.
TEST(FairQueueTest, EqualTagsAreServedInArrivalOrder) {
  Queue q;
  for (const char* t : {"a", "b", "c", "d"}) q.Push(t, 5);
  EXPECT_EQ(q.Pop(4), (std::vector<std::string>{"a", "b", "c", "d"}));
}

// Many tenants calling one at a time with pauses, so that most flows sit
// inactive and the sweep frees their records (and with them what they
// owed): each tenant still gets its turn.
TEST(FairQueueTest, TenantsWhoseDebtsAreSweptStillTakeTurns) {
  Queue q;
  constexpr int kTenants = 200;
  constexpr size_t kPause = 170;  // pops before a served tenant calls again
  for (int t = 0; t < kTenants; ++t) q.Push("t" + std::to_string(t), 5);
  std::deque<std::string> pausing;
  std::map<std::string, int> served;
  for (int i = 0; i < 20 * kTenants; ++i) {
    std::vector<std::string> one = q.Pop(1);
    ASSERT_EQ(one.size(), 1u);
    ++served[one[0]];
    pausing.push_back(one[0]);
    if (pausing.size() > kPause) {
      q.Push(pausing.front(), 5);
      pausing.pop_front();
    }
  }
  ASSERT_EQ(served.size(), size_t{kTenants}) << "a tenant was never served";
  for (const auto& [tenant, n] : served) EXPECT_GE(n, 15) << tenant;
}

// Fair by cost even when the expensive tenant queues one task at a time:
// what it was served counts after its queue empties, while others wait.
TEST(FairQueueTest, AnExpensiveTenantCallingOneAtATimeGetsItsShare) {
  Queue q;
  for (int i = 0; i < 100; ++i) q.Push("cheap", 5);
  q.Push("dear", 50);
  int64_t dear = 0;
  int64_t cheap = 0;
  while (dear + cheap < 20000) {
    FairQueue::Node* node = q.queue.Pop();
    ASSERT_NE(node, nullptr);
    q.queue.CheckInvariants();
    const bool was_dear = node->cost_ns == 50;
    (was_dear ? dear : cheap) += node->cost_ns;
    q.Push(was_dear ? "dear" : "cheap", node->cost_ns);  // the next one
  }
  // Half each; the first version gave dear ten times cheap's share.
  EXPECT_NEAR(dear, 10000, 200);
  EXPECT_NEAR(cheap, 10000, 200);
}

// Records of emptied flows are freed in sweeps, so thousands of tenants
// passing through leave at most a bounded number behind (CheckInvariants
// checks the bound after every push and pop).
TEST(FairQueueTest, EmptiedFlowsAreSwept) {
  Queue q;
  q.Push("steady", 1);
  for (int i = 0; i < 2000; ++i) {
    q.Push("tenant-" + std::to_string(i), 1);
    FairQueue::Node* served = q.queue.Pop();  // empties one flow
    ASSERT_NE(served, nullptr);
    q.queue.Served(served, 1);
    q.queue.CheckInvariants();
  }
  EXPECT_EQ(q.queue.size(), 1u);
}

TEST(FairQueueTest, ClassesAreStrict) {
  Queue q;
  q.Push("a", 1, Priority::kSheddable);
  q.Push("a", 1, Priority::kDefault);
  q.Push("b", 1, Priority::kCritical);
  FairQueue::Node* first = q.queue.Pop();
  EXPECT_EQ(first->next, nullptr);  // taken out: links cleared
  q.queue.Served(first, 1);
  EXPECT_EQ(first->flow, nullptr);  // settled: its flow forgotten
  std::vector<std::string> rest = q.Pop(2);
  EXPECT_EQ(rest, (std::vector<std::string>{"a", "a"}));
  // Critical first, then default, then sheddable.
  Queue r;
  FairQueue::Node* shed = r.Push("a", 1, Priority::kSheddable);
  FairQueue::Node* def = r.Push("a", 1, Priority::kDefault);
  FairQueue::Node* crit = r.Push("b", 1, Priority::kCritical);
  EXPECT_EQ(r.queue.Pop(), crit);
  EXPECT_EQ(r.queue.Pop(), def);
  EXPECT_EQ(r.queue.Pop(), shed);
}

TEST(FairQueueTest, RemoveKeepsTheRestAndFreesAnEmptyFlow) {
  Queue q;
  FairQueue::Node* a1 = q.Push("a", 5);
  FairQueue::Node* b1 = q.Push("b", 7);
  FairQueue::Node* a2 = q.Push("a", 3);
  q.queue.Remove(a1);
  q.queue.CheckInvariants();
  q.queue.Remove(b1);
  q.queue.CheckInvariants();
  EXPECT_EQ(q.queue.size(), 1u);
  EXPECT_EQ(q.queue.cost_ns(), 3);
  EXPECT_EQ(q.queue.Pop(), a2);
  EXPECT_TRUE(q.queue.empty());
}

// A task taken out before it ran (displaced, cancelled, expired) costs its
// flow no turn: under overload the scheduler displaces a tenant's newest
// tasks again and again, and if each one still advanced its flow's virtual
// time, a tenant of large tasks would fall ever further behind and starve.
TEST(FairQueueTest, TasksTakenOutBeforeTheyRanCostTheirFlowNothing) {
  Queue q;
  for (int i = 0; i < 30; ++i) q.Push("small", 1);
  q.Push("large", 10);
  // Its newest task displaced five times over, as a full queue does.
  for (int i = 0; i < 5; ++i) q.queue.Remove(q.Push("large", 10));
  q.Push("large", 10);
  q.queue.CheckInvariants();
  // As if the five had never come: large's two tasks start at virtual
  // times 0 and 10 (charged for the five, the second would start at 60).
  // A tie goes to the flow that arrived or was served longer ago: small at
  // 0, large at 10.
  std::vector<std::string> expected = {"small", "large"};
  for (int i = 0; i < 9; ++i) expected.push_back("small");
  expected.push_back("large");
  expected.push_back("small");
  EXPECT_EQ(q.Pop(13), expected);

  // Its head taken out: the next task takes the head's turn.
  Queue r;
  FairQueue::Node* head = r.Push("large", 10);
  r.Push("large", 10);
  for (int i = 0; i < 20; ++i) r.Push("small", 1);
  r.queue.Remove(head);
  r.queue.CheckInvariants();
  EXPECT_EQ(r.Pop(2), (std::vector<std::string>{"large", "small"}));
}

// A task stopped soon after it started (a client cancel, the losing copy of
// a hedged call) is charged what it ran, not its estimate: its tenant's
// next task comes in its turn, not after the whole estimate's worth of the
// others' work (before 2026-12-03: 11th here, as if it had run 100).
TEST(FairQueueTest, ATaskStoppedEarlyIsChargedWhatItRan) {
  Queue q;
  q.Push("hedger", 100);
  q.Push("hedger", 100);
  for (int i = 0; i < 20; ++i) q.Push("steady", 10);
  FairQueue::Node* cancelled = q.queue.Pop();
  ASSERT_EQ(cancelled->cost_ns, 100);
  q.queue.Served(cancelled, 1);
  q.queue.CheckInvariants();
  EXPECT_EQ(q.Pop(2), (std::vector<std::string>{"steady", "hedger"}));
}

// And one that ran past its estimate pays the difference: its tenant waits
// while the others are served what it took.
TEST(FairQueueTest, ATaskThatOverranIsChargedWhatItRan) {
  Queue q;
  for (int i = 0; i < 3; ++i) q.Push("slow", 10);
  for (int i = 0; i < 20; ++i) q.Push("steady", 10);
  FairQueue::Node* overran = q.queue.Pop();
  q.queue.Served(overran, 100);
  q.queue.CheckInvariants();
  // slow's next task starts at 100: after steady's ten at 0..90.
  std::vector<std::string> expected(10, "steady");
  expected.push_back("slow");
  EXPECT_EQ(q.Pop(11), expected);
}

// A settlement never gives credit past the virtual time, and none at all
// once the class has emptied (every debt is forgotten then).
TEST(FairQueueTest, SettlementsGiveNoCredit) {
  Queue q;
  q.Push("a", 100);
  FairQueue::Node* alone = q.queue.Pop();  // the class empties
  q.queue.Served(alone, 0);
  q.queue.CheckInvariants();
  q.Push("a", 10);
  q.Push("b", 10);
  q.Push("a", 10);
  q.Push("b", 10);
  EXPECT_EQ(q.Pop(4), (std::vector<std::string>{"a", "b", "a", "b"}));
}

// Nor credit past the virtual time: a task that ran nothing, settled once
// the others have moved the virtual time on, puts its tenant at the
// virtual time, not before the tasks already due there.
TEST(FairQueueTest, ASettlementGivesNoCreditPastTheVirtualTime) {
  Queue q;
  q.Push("a", 100);
  q.Push("a", 10);
  for (int i = 0; i < 3; ++i) q.Push("b", 10);
  FairQueue::Node* stopped = q.queue.Pop();  // a's 100, at 0
  ASSERT_EQ(stopped->cost_ns, 100);
  EXPECT_EQ(q.Pop(2), (std::vector<std::string>{"b", "b"}));  // at 0, 10
  q.queue.Served(stopped, 0);  // a at max(10, 100 - 100): 10, not 0
  q.queue.CheckInvariants();
  // a's 10 at 10, then b's at 20 and a's next at 20: b was served longer
  // ago. (With the credit, a at 0: its 10 at 0 and again at 10, both before
  // b's.)
  EXPECT_EQ(q.Pop(2), (std::vector<std::string>{"a", "b"}));
}

// A tenant's record stays while its task runs, however many tenants pass
// through and are swept meanwhile (ASan would see a freed one used).
TEST(FairQueueTest, ARecordStaysUntilItsTaskIsSettled) {
  Queue q;
  q.Push("steady", 1);
  std::vector<FairQueue::Node*> running;
  for (int i = 0; i < 100; ++i) {
    q.Push("long-" + std::to_string(i), 1);
  }
  for (int i = 0; i < 50; ++i) running.push_back(q.queue.Pop());
  for (int i = 0; i < 2000; ++i) {
    q.Push("passing-" + std::to_string(i), 1);
    FairQueue::Node* n = q.queue.Pop();
    q.queue.Served(n, 1);
    q.queue.CheckInvariants();
  }
  for (FairQueue::Node* n : running) q.queue.Served(n, 1);
  q.queue.CheckInvariants();
}

// A flow whose head starts after the virtual time (it was served and
// returned) has only the part past its head ahead of a new tenant's task.
TEST(FairQueueTest, WorkAheadCountsFromEachFlowsHead) {
  Queue q;
  q.Push("t0", 50);
  q.Push("t0", 40);
  for (int t = 1; t < 20; ++t) {
    for (int i = 0; i < 3; ++i) q.Push("t" + std::to_string(t), 50);
  }
  // One round: every flow's head now starts at 50, the virtual time is 0.
  EXPECT_EQ(q.Pop(20).size(), 20u);
  // t0's next task would start at 90 (its 40 starts at 50): of each other
  // flow only the task at 50 starts before it, not the one at 100.
  EXPECT_EQ(q.AheadAsQueued("t0", Priority::kDefault), 40 + 19 * 50);
  // A new tenant starts at 0: before every flow's head (ties aside, one
  // task of one flow).
  EXPECT_LE(q.AheadAsQueued("new", Priority::kDefault), 50);
}

// The expected wait of a new task counts only what would run before it.
TEST(FairQueueTest, WorkAheadIsTheWorkThatRunsFirst) {
  Queue q;
  for (int i = 0; i < 40; ++i) q.Push("greedy", 5);
  // A modest tenant's first task waits for one greedy task at most.
  EXPECT_LE(q.AheadAsQueued("modest", Priority::kDefault), 5);
  // The greedy tenant's next waits for all of its own.
  EXPECT_EQ(q.AheadAsQueued("greedy", Priority::kDefault), 200);
  // Work of a higher class always goes first.
  q.Push("c", 50, Priority::kCritical);
  EXPECT_GE(q.AheadAsQueued("modest", Priority::kDefault), 50);
  EXPECT_EQ(q.AheadAsQueued("x", Priority::kCritical), 50);
  // A sheddable task waits for everything above it.
  EXPECT_EQ(q.AheadAsQueued("y", Priority::kSheddable), 250);
}

// Taken to stay backlogged, a flow's next calls count too: the work
// counted ahead of a light tenant's next call includes what a heavy tenant
// (weight 50) will send meanwhile, which fair queuing also runs first.
// As queued, only the heavy tenant's 2 queued tasks count (10 of the 255
// that ran first).
TEST(FairQueueTest, WorkAheadCountsABackloggedFlowsNextCalls) {
  Queue q;
  q.Push("heavy", 5, Priority::kDefault, 50);
  q.Push("heavy", 5, Priority::kDefault, 50);
  q.Push("light", 5);
  const int64_t ahead = q.AheadAtMost("light", Priority::kDefault);
  EXPECT_EQ(q.AheadAsQueued("light", Priority::kDefault), 15);
  FairQueue::Node* next = q.Push("light", 5);
  // The heavy tenant sends a call each time one of its calls starts.
  int64_t ran_first = 0;
  for (FairQueue::Node* n = q.queue.Pop(); n != next; n = q.queue.Pop()) {
    ASSERT_NE(n, nullptr);
    ran_first += n->cost_ns;
    if (n->flow->tenant == "heavy") q.Push("heavy", 5, Priority::kDefault, 50);
  }
  EXPECT_GE(ran_first, 250);
  EXPECT_NEAR(static_cast<double>(ahead), static_cast<double>(ran_first), 5);
}

// At recent rates, a flow counts what it holds plus what it sends while the
// new call waits, at most what it would be served if it kept sending: a
// weight-50 tenant that has been sending half a worker's worth counts 10 +
// 0.5 x the wait (up to 250) ahead of a light tenant's next call, and once
// it has stopped for long, only what it holds.
TEST(FairQueueTest, WorkAheadCountsWhatATenantSendsMeanwhile) {
  constexpr int64_t kMs = 1'000'000;
  Queue q;
  // 10 s of 5 ms calls every 10 ms, each taken out again (uncharged): only
  // the rate remains.
  ArrivalRate heavy;
  for (int i = 0; i < 1000; ++i) {
    q.now_ns = i * 10 * kMs;
    q.queue.Remove(q.Push("heavy", 5 * kMs, Priority::kDefault, 50));
    heavy.Add(5 * kMs, q.now_ns);
  }
  q.now_ns = 10'000 * kMs;
  for (int i = 0; i < 2; ++i) {
    q.Push("heavy", 5 * kMs, Priority::kDefault, 50);
    heavy.Add(5 * kMs, q.now_ns);
  }
  const double rate = heavy.At(q.now_ns);
  EXPECT_NEAR(rate, 0.5, 0.02);
  q.Push("light", 5 * kMs);
  auto ahead = [&](int64_t wait_ns) {
    return static_cast<double>(
        q.queue.WorkAheadOf("light", Priority::kDefault, 1, 1, q.now_ns)
            .At(wait_ns));
  };
  // Its own 5 and the heavy tenant's 10, as queued.
  EXPECT_NEAR(ahead(0), 15 * kMs, 1);
  EXPECT_NEAR(ahead(100 * kMs), 15 * kMs + rate * 100 * kMs, 1);
  // At most what it is served before the light tenant's call: 5 x 50.
  EXPECT_EQ(q.AheadAtMost("light", Priority::kDefault), 255 * kMs);
  EXPECT_NEAR(ahead(1'000 * kMs), 255 * kMs, 1);
  // 30 s without a call: what it holds.
  q.now_ns += 30'000 * kMs;
  EXPECT_NEAR(ahead(1'000 * kMs), 15 * kMs, 1);
}

// The classes above a call go first whatever its tag: what they hold, and
// while they keep the workers (queued work at every moment a worker freed
// up, over a second of their work served in a row) also what they send
// while the call waits, at their recent rate, every tenant together, with
// no bound. A critical loop keeping a call queued, sending half a worker's
// worth, counts 5 + 0.5 x the wait ahead of a default call; nothing ahead
// of a critical one; a sheddable call counts the default class's rate
// too. Once a worker frees up with nothing of theirs queued, they count
// what they hold.
TEST(FairQueueTest, WorkAheadCountsWhatHigherClassesSendMeanwhile) {
  constexpr int64_t kMs = 1'000'000;
  Queue q;
  // 10 s of 5 ms critical calls every 10 ms from two tenants in turn; at
  // each arrival the oldest queued call is served: one stays queued.
  for (int i = 0; i < 1000; ++i) {
    q.now_ns = i * 10 * kMs;
    q.Push(i % 2 == 0 ? "a" : "b", 5 * kMs, Priority::kCritical);
    if (q.queue.size() > 1) {
      FairQueue::Node* served = q.queue.Pop();
      q.queue.Served(served, served->cost_ns);
    }
  }
  q.now_ns = 10'000 * kMs;
  q.Push("x", 1 * kMs, Priority::kDefault);
  const double rate = q.queue.HigherRate(Priority::kDefault, q.now_ns);
  EXPECT_NEAR(rate, 0.5, 0.02);
  const FairQueue::WorkAhead ahead =
      q.queue.WorkAheadOf("light", Priority::kDefault, 1, 1, q.now_ns);
  EXPECT_EQ(ahead.HigherRate(), rate);
  // The critical 5 and the default tenant's 1, as queued; then the
  // critical class's calls meanwhile, with no bound.
  EXPECT_EQ(ahead.AsQueued(), 6 * kMs);
  EXPECT_EQ(ahead.AtMost(), 6 * kMs);
  EXPECT_NEAR(static_cast<double>(ahead.At(1'000 * kMs)),
              6 * kMs + rate * 1'000 * kMs, 1);
  // Nothing above a critical call.
  EXPECT_EQ(q.queue.HigherRate(Priority::kCritical, q.now_ns), 0);
  EXPECT_EQ(q.queue.WorkAheadOf("light", Priority::kCritical, 1, 1, q.now_ns)
                .At(1'000 * kMs),
            5 * kMs);
  // Below the default class: its rate (1 ms just sent) too.
  EXPECT_NEAR(q.queue.HigherRate(Priority::kSheddable, q.now_ns), rate + 0.001,
              1e-9);
  // Served with nothing queued behind them (a worker frees up and finds
  // nothing to start): the classes above do not keep the workers, and
  // count what they hold.
  for (int i = 0; i < 2; ++i) {
    FairQueue::Node* served = q.queue.Pop();
    q.queue.Served(served, served->cost_ns);
  }
  ASSERT_TRUE(q.queue.empty());
  q.Push("a", 5 * kMs, Priority::kCritical);
  q.Push("x", 1 * kMs, Priority::kDefault);
  EXPECT_EQ(q.queue.HigherRate(Priority::kDefault, q.now_ns), 0);
  EXPECT_EQ(q.queue.HigherRate(Priority::kSheddable, q.now_ns), 0);
  EXPECT_EQ(q.queue.WorkAheadOf("light", Priority::kSheddable, 1, 1, q.now_ns)
                .At(1'000 * kMs),
            6 * kMs);
}

// A higher class that does not keep the workers counts what it holds,
// however much it sends: a critical closed loop of one call at a time
// (a worker frees up with nothing of it queued, finds nothing to start or
// starts a lower call: then a lower call starts), sending the worker's
// worth, and calls queued for seconds that no worker took. Counted at its
// rate, the loop shut out a default tenant that would have waited one call
// at most (a review's simulation). A loop that keeps a call queued at
// every free moment is counted once a second of its work has been served
// that way.
TEST(FairQueueTest, AHigherClassWithoutABacklogCountsWhatItHolds) {
  constexpr int64_t kMs = 1'000'000;
  Queue q;
  // 10 s of it; every other call, the freed worker starts a default call
  // queued meanwhile instead of finding nothing.
  for (int i = 0; i < 2000; ++i) {
    q.now_ns = i * 5 * kMs;
    q.Push("loop", 5 * kMs, Priority::kCritical);
    FairQueue::Node* served = q.queue.Pop();
    if (i % 2 == 1) q.Push("light", 0, Priority::kDefault);
    q.queue.Served(served, served->cost_ns);
    if (i % 2 == 1) q.queue.Served(q.queue.Pop(), 0);
  }
  q.now_ns = 10'000 * kMs;
  q.Push("loop", 5 * kMs, Priority::kCritical);
  EXPECT_EQ(q.queue.HigherRate(Priority::kDefault, q.now_ns), 0);
  EXPECT_EQ(q.queue.WorkAheadOf("light", Priority::kDefault, 1, 1, q.now_ns)
                .At(1'000 * kMs),
            5 * kMs);
  // Two seconds later, queued all along and never served.
  q.now_ns += 2'000 * kMs;
  EXPECT_EQ(q.queue.HigherRate(Priority::kDefault, q.now_ns), 0);
  // Then a loop that keeps one call queued at every free moment: counted
  // once a second of its work has been served so.
  for (int i = 1; i <= 300; ++i) {
    q.now_ns += 5 * kMs;
    q.Push("loop", 5 * kMs, Priority::kCritical);
    FairQueue::Node* served = q.queue.Pop();
    q.queue.Served(served, served->cost_ns);
    if (i == 100) {
      EXPECT_EQ(q.queue.HigherRate(Priority::kDefault, q.now_ns), 0)
          << "half a second";
    }
  }
  EXPECT_GT(q.queue.HigherRate(Priority::kDefault, q.now_ns), 0.5);
}

// Whether the classes above a call keep the workers is judged over them
// all together, and only them: a default loop that keeps a call queued at
// every free moment, with a critical call now and then, counts (with the
// critical calls) at its rate ahead of a sheddable call; the critical
// class, which never keeps the worker, counts nothing ahead of a default
// call. One long call, with nothing queued behind it when it ends, does
// not keep the worker however long it ran; nor does a class whose queued
// calls left unrun once a worker takes a lower call.
TEST(FairQueueTest, TheClassesAboveKeepTheWorkersTogether) {
  constexpr int64_t kMs = 1'000'000;
  Queue q;
  q.Push("loop", 5 * kMs, Priority::kDefault);
  for (int i = 1; i <= 400; ++i) {
    q.now_ns = i * 5 * kMs;
    if (i % 50 == 0) q.Push("ops", 1 * kMs, Priority::kCritical);
    q.Push("loop", 5 * kMs, Priority::kDefault);
    while (q.queue.size() > 1) {
      FairQueue::Node* served = q.queue.Pop();
      q.queue.Served(served, served->cost_ns);
    }
  }
  EXPECT_EQ(q.queue.HigherRate(Priority::kDefault, q.now_ns), 0);
  EXPECT_GT(q.queue.HigherRate(Priority::kSheddable, q.now_ns), 0.5);
  // A 2 s critical call, nothing queued when it ends.
  Queue alone;
  alone.Push("ops", 2'000 * kMs, Priority::kCritical);
  FairQueue::Node* served = alone.queue.Pop();
  alone.now_ns = 2'000 * kMs;
  alone.queue.Served(served, served->cost_ns);
  alone.Push("ops", 2'000 * kMs, Priority::kCritical);
  EXPECT_EQ(alone.queue.HigherRate(Priority::kDefault, alone.now_ns), 0);
  // A critical loop that kept the worker, whose queued call then left
  // unrun (expired, cancelled): once the worker takes a default call, it
  // keeps the worker no more.
  Queue expired;
  FairQueue::Node* queued = expired.Push("ops", 5 * kMs, Priority::kCritical);
  for (int i = 1; i <= 300; ++i) {
    expired.now_ns = i * 5 * kMs;
    queued = expired.Push("ops", 5 * kMs, Priority::kCritical);
    FairQueue::Node* ran = expired.queue.Pop();
    expired.queue.Served(ran, ran->cost_ns);
  }
  ASSERT_GT(expired.queue.HigherRate(Priority::kDefault, expired.now_ns), 0.5);
  expired.queue.Remove(queued);
  expired.Push("x", 1 * kMs, Priority::kDefault);
  expired.queue.Pop();
  EXPECT_EQ(expired.queue.HigherRate(Priority::kDefault, expired.now_ns), 0);
}

// A flow that keeps a backlog (active for a second or more, served at
// least what it holds since) counts what it would be served if it kept
// sending, however slowly it has sent: held to its share, it sends more
// while the new call waits. The same flow just activated counts its rate,
// and so does one that comes back after it stopped.
TEST(FairQueueTest, WorkAheadCountsAFlowKeepingABacklogInFull) {
  constexpr int64_t kMs = 1'000'000;
  Queue q;
  std::deque<FairQueue::Node*> heavy;  // its queued calls, oldest first
  for (int i = 0; i < 2; ++i) {
    heavy.push_back(q.Push("heavy", 5 * kMs, Priority::kDefault, 50));
  }
  auto ahead = [&] {
    return q.queue.WorkAheadOf("light", Priority::kDefault, 1, 1, q.now_ns)
        .At(100 * kMs);
  };
  // Served one call every 50 ms (a tenth of a worker), sending the next:
  // 2 queued all along.
  for (int i = 1; i <= 30; ++i) {
    q.now_ns = i * 50 * kMs;
    FairQueue::Node* served = q.queue.Pop();
    ASSERT_EQ(served, heavy.front());
    heavy.pop_front();
    q.queue.Served(served, served->cost_ns);
    heavy.push_back(q.Push("heavy", 5 * kMs, Priority::kDefault, 50));
    if (i == 10) {
      // Half a second: not yet. Its own 5, the heavy tenant's 10 + its
      // rate so far (a twentieth of a worker) x 100.
      FairQueue::Node* light = q.Push("light", 5 * kMs);
      EXPECT_NEAR(static_cast<double>(ahead()), 19.6 * kMs, 0.1 * kMs);
      q.queue.Remove(light);
    }
  }
  // A second and a half: its own 5 and the heavy tenant's 49 x 5 (its
  // head already starts a fiftieth of a call after the virtual time).
  FairQueue::Node* light = q.Push("light", 5 * kMs);
  EXPECT_EQ(ahead(), 250 * kMs);
  // Everyone stops (their calls taken out). 10 s later the heavy tenant
  // sends two calls, and one is served at once: active again only now, its
  // old rate faded, it counts what it holds (5) and its new rate (10 ms
  // over the rate's second) x 100 ms, beside the light tenant's own 5.
  q.queue.Remove(light);
  for (FairQueue::Node* node : heavy) q.queue.Remove(node);
  q.now_ns += 10'000 * kMs;
  q.Push("heavy", 5 * kMs, Priority::kDefault, 50);
  q.Push("heavy", 5 * kMs, Priority::kDefault, 50);
  FairQueue::Node* served = q.queue.Pop();
  q.queue.Served(served, served->cost_ns);
  q.Push("light", 5 * kMs);
  EXPECT_NEAR(static_cast<double>(ahead()), 11 * kMs, 0.01 * kMs);
}

// A closed loop whose flow empties between its calls (one call in flight
// more than the workers take) never keeps a backlog, but sends its whole
// share: at least kKeepsSendingShare of it counts as keeping on sending.
// Here it sends half a worker's worth, its share beside the light tenant
// (equal weights, one worker): the light tenant's second 50 ms call counts
// the heavy tenant's 50 ms ahead of it, not the 1 it holds + 0.5 x 20 ms.
// At a fifth of a worker it counts its rate.
TEST(FairQueueTest, WorkAheadCountsATenantSendingItsShareInFull) {
  constexpr int64_t kMs = 1'000'000;
  for (int64_t every : {2 * kMs, 5 * kMs}) {
    Queue q;
    // 10 s of one 1 ms call every `every`, each served before the next.
    for (q.now_ns = 0; q.now_ns < 10'000 * kMs; q.now_ns += every) {
      q.Push("heavy", 1 * kMs);
      FairQueue::Node* served = q.queue.Pop();
      q.queue.Served(served, served->cost_ns);
    }
    q.Push("heavy", 1 * kMs);
    q.Push("light", 50 * kMs);
    const int64_t ahead =
        q.queue.WorkAheadOf("light", Priority::kDefault, 1, 1, q.now_ns)
            .At(20 * kMs);
    if (every == 2 * kMs) {
      EXPECT_EQ(ahead, 100 * kMs);
    } else {
      EXPECT_NEAR(static_cast<double>(ahead), 55 * kMs, 0.1 * kMs);
    }
  }
}

// As queued, a tenant's own long call just served (its debt) does not make
// another tenant's two short queued calls count as its whole length: its
// next call starts after them (the reviewer's lockout: 1,999 ms ahead of a
// call that would start in 2).
TEST(FairQueueTest, WorkAheadAsQueuedCountsOnlyWhatIsQueued) {
  Queue q;
  q.Push("x", 2000);
  q.Push("y", 1);
  FairQueue::Node* running = q.queue.Pop();
  ASSERT_EQ(running->cost_ns, 2000);
  q.Push("y", 1);
  EXPECT_EQ(q.AheadAsQueued("x", Priority::kDefault), 2);
  EXPECT_EQ(q.AheadAtMost("x", Priority::kDefault), 2000);
  // At recent rates, 2 s on (as long as x's call ran): y's calls have
  // waited all along, served nothing, so y is not taken to keep sending.
  q.now_ns = 2'000'000'000;
  EXPECT_EQ(q.queue.WorkAheadOf("x", Priority::kDefault, 1, 1, q.now_ns)
                .At(2'000'000'000),
            2);
  q.queue.Served(running, 2000);
}

// Weights far apart (the pool's range, 0.001 to 1,000) do not overflow the
// count: it stops at kMaxCostAheadNs.
TEST(FairQueueTest, WorkAheadIsBoundedWithWeightsFarApart) {
  Queue q;
  q.Push("heavy", 1, Priority::kDefault, 1000);
  q.Push("light", 3'600'000'000'000, Priority::kDefault, 0.001);  // 1 h
  EXPECT_EQ(q.AheadAtMost("light", Priority::kDefault),
            static_cast<int64_t>(FairQueue::kMaxCostAheadNs));
}

TEST(FairQueueTest, SharesAndTheMostOverShare) {
  Queue q;
  for (int i = 0; i < 9; ++i) q.Push("greedy", 10);
  FairQueue::Node* newest = q.Push("greedy", 10);
  q.Push("modest", 10);
  FairQueue::Share modest =
      q.queue.ShareOf("modest", Priority::kDefault, 1, 10);
  EXPECT_EQ(modest.held, 10);
  EXPECT_EQ(modest.fair, 60);  // half of 110 + 10
  FairQueue::Share greedy =
      q.queue.ShareOf("greedy", Priority::kDefault, 1, 10);
  EXPECT_EQ(greedy.held, 100);
  EXPECT_GT(greedy.held, greedy.fair);
  EXPECT_EQ(
      q.queue.NewestOfTheMostOverShare("modest", Priority::kDefault, 1, 10),
      newest);
  EXPECT_EQ(
      q.queue.NewestOfTheMostOverShare("greedy", Priority::kDefault, 1, 10),
      nullptr)
      << "the modest tenant is not over its share";
  // Alone in its class a tenant holds exactly its share; a newcomer's
  // arrival puts it over.
  Queue alone;
  alone.Push("greedy", 10);
  FairQueue::Node* back = alone.Push("greedy", 10);
  EXPECT_EQ(
      alone.queue.NewestOfTheMostOverShare("new", Priority::kDefault, 1, 10),
      back);
  // A new tenant's share counts its own weight.
  FairQueue::Share fresh = q.queue.ShareOf("new", Priority::kDefault, 2, 0);
  EXPECT_EQ(fresh.fair, 55);  // 2 / 4 x 110
}

// Shares of places count queued tasks, whatever they cost; a share that is
// whole in exact arithmetic stays whole in doubles (0.3 / 0.6 x 4 came out
// 1.9999999999999998, one place short), and the newest task below a class
// is taken from the flow holding the most places, not the most cost.
TEST(FairQueueTest, SharesOfPlacesCountTasks) {
  Queue q;
  q.Push("flood", 1, Priority::kDefault, 0.1);
  q.Push("other", 1, Priority::kDefault, 0.2);
  q.Push("costly", 100, Priority::kDefault, 0.3);
  constexpr auto kTasks = FairQueue::Measure::kTasks;
  FairQueue::Share costly =
      q.queue.ShareOf("costly", Priority::kDefault, 0.3, 1, kTasks);
  EXPECT_EQ(costly.held, 1);
  EXPECT_EQ(costly.fair, 2);  // 0.3 / 0.6 x (3 + 1)
  EXPECT_EQ(q.queue.ShareOf("costly", Priority::kDefault, 0.3, 100).fair, 101)
      << "by cost: 0.3 / 0.6 x (102 + 100)";
  Queue shed;
  FairQueue::Node* newest_cheap = nullptr;
  for (int i = 0; i < 3; ++i) {
    newest_cheap = shed.Push("flood", 1, Priority::kSheddable);
  }
  FairQueue::Node* costly_one = shed.Push("modest", 100, Priority::kSheddable);
  EXPECT_EQ(shed.queue.NewestBelow(Priority::kDefault, kTasks), newest_cheap);
  EXPECT_EQ(shed.queue.NewestBelow(Priority::kDefault), costly_one);
}

// Tenants are looked up by their whole name within their class: two long
// names (IPv6 peers, past the short-string buffer) that differ in their last
// byte are two flows, and one tenant in two classes is two flows.
TEST(FairQueueTest, LongTenantsAndClassesKeepTheirOwnFlows) {
  const std::string a = "2001:db8:85a3::8a2e:370:7334:aaaa";
  const std::string b = "2001:db8:85a3::8a2e:370:7334:aaab";
  Queue q;
  for (int i = 0; i < 3; ++i) q.Push(a, 10);
  q.Push(b, 10);
  q.Push(a, 7, Priority::kSheddable);
  EXPECT_EQ(q.queue.ShareOf(a, Priority::kDefault, 1, 0).held, 30);
  EXPECT_EQ(q.queue.ShareOf(b, Priority::kDefault, 1, 0).held, 10);
  EXPECT_EQ(q.queue.ShareOf(a, Priority::kSheddable, 1, 0).held, 7);
  EXPECT_EQ(
      q.queue.ShareOf(a.substr(0, a.size() - 1), Priority::kDefault, 1, 0).held,
      0)
      << "a prefix of a tenant is another tenant";
  EXPECT_EQ(q.Pop(5), (std::vector<std::string>{a, b, a, a, a}));
  EXPECT_TRUE(q.queue.empty());
}

TEST(FairQueueTest, NewestBelowTakesFromTheLowestClassFirst) {
  Queue q;
  EXPECT_EQ(q.queue.NewestBelow(Priority::kCritical), nullptr);
  q.Push("a", 1, Priority::kDefault);
  FairQueue::Node* a_newest = q.Push("a", 1, Priority::kDefault);
  q.Push("c", 1, Priority::kDefault);
  EXPECT_EQ(q.queue.NewestBelow(Priority::kSheddable), nullptr);
  EXPECT_EQ(q.queue.NewestBelow(Priority::kDefault), nullptr)
      << "nothing below default yet";
  EXPECT_EQ(q.queue.NewestBelow(Priority::kCritical), a_newest)
      << "the default flow holding the most";
  q.Push("b", 1, Priority::kSheddable);
  FairQueue::Node* b_newest = q.Push("b", 1, Priority::kSheddable);
  EXPECT_EQ(q.queue.NewestBelow(Priority::kCritical), b_newest)
      << "sheddable before default";
  EXPECT_EQ(q.queue.NewestBelow(Priority::kDefault), b_newest);
}

// With min_bytes, only flows whose newest task holds that many count: a
// class with none is passed over, and of those that hold enough the one
// holding the most cost per weight gives its newest; an older task with
// enough bytes behind a newer one without is not taken.
TEST(FairQueueTest, NewestBelowWithBytesTakesTheNewestThatHoldsEnough) {
  Queue q;
  FairQueue::Node* no_bytes = q.Push("spin", 100, Priority::kSheddable);
  FairQueue::Node* small = q.Push("small", 50, Priority::kDefault);
  small->bytes = 100;
  FairQueue::Node* large = q.Push("large", 1, Priority::kDefault);
  large->bytes = 600;
  FairQueue::Node* larger = q.Push("larger", 2, Priority::kDefault);
  larger->bytes = 700;
  FairQueue::Node* older = q.Push("older", 10, Priority::kDefault);
  older->bytes = 900;
  q.Push("older", 10, Priority::kDefault);  // newest, no bytes
  EXPECT_EQ(q.queue.NewestBelow(Priority::kCritical), no_bytes);
  constexpr auto kCost = FairQueue::Measure::kCost;
  EXPECT_EQ(q.queue.NewestBelow(Priority::kCritical, kCost, 100), small)
      << "the most cost among those that hold enough";
  EXPECT_EQ(q.queue.NewestBelow(Priority::kCritical, kCost, 600), larger);
  EXPECT_EQ(q.queue.NewestBelow(Priority::kCritical, kCost, 701), nullptr)
      << "not an older task";
  EXPECT_EQ(q.queue.NewestBelow(Priority::kDefault, kCost, 1), nullptr)
      << "the sheddable class holds no bytes";
}

}  // namespace
}  // namespace compute
