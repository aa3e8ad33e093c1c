// Admission alone: the budgets' decisions on a given load, and the
// standing-queue detector on given queue waits. The same rules through the
// pool, with real tasks, are in scheduler_test.cc.
#include "server/pool/admission.h"

#include <deque>
#include <functional>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace compute {
namespace {

constexpr int64_t kMs = 1'000'000;  // ns

class AdmissionTest : public ::testing::Test {
 protected:
  // A load of the queue below, `running` of `max_workers` busy, whose
  // tasks on workers have running_left_ left (each).
  PoolLoad Load(int running, int max_workers, int64_t task_bytes = 0,
                int64_t held_bytes = 0) {
    return PoolLoad{.queue = queue_,
                    .running = running,
                    .max_workers = max_workers,
                    .task_bytes = task_bytes,
                    .held_bytes = held_bytes,
                    .running_full_cost_ns = std::accumulate(
                        running_left_.begin(), running_left_.end(), int64_t{0}),
                    .now_ns = now_ns_,
                    .running_left_ns = running_left_fn_};
  }
  FairQueue::Node* Queue(Priority priority, int64_t cost_ns,
                         const std::string& tenant = "") {
    nodes_.emplace_back();
    queue_.Push(&nodes_.back(), tenant, priority, 1, cost_ns, push_ns_);
    return &nodes_.back();
  }
  // A task of `priority` holding `bytes` (no deadline).
  static TaskOptions Holding(int64_t bytes,
                             Priority priority = Priority::kDefault) {
    TaskOptions options;
    options.priority = priority;
    options.bytes = bytes;
    return options;
  }
  TaskOptions Task(absl::Duration cost, absl::Duration deadline_in) {
    TaskOptions options;
    options.cost = cost;
    options.deadline = now_ + deadline_in;
    return options;
  }

  // Queued in `priority`'s class: "heavy" (weight 50) 2 x 5 ms, "light"
  // 1 x 5 ms; one worker busy with 1 ms left. The budgets: a 100 ms target
  // over an interval of 1,000 ticks.
  AdmissionBudgets HeavyAndLightTenants(Priority priority) {
    for (auto [tenant, weight] :
         {std::pair{"heavy", 50.0}, {"heavy", 50.0}, {"light", 1.0}}) {
      nodes_.emplace_back();
      queue_.Push(&nodes_.back(), tenant, priority, weight, 5 * kMs, push_ns_);
    }
    running_left_ = {1 * kMs};
    AdmissionBudgets budgets;
    budgets.target_queue_wait = absl::Milliseconds(100);
    budgets.overload_interval_ticks = 1000;
    return budgets;
  }
  // `tenant` (weight 50) sent a 5 ms call every `every_ns` in the 10 s
  // before push_ns_, each taken out again: only its arrival rate remains.
  void HeavySentLately(int64_t every_ns) {
    for (int64_t t = push_ns_ - 10'000 * kMs; t < push_ns_; t += every_ns) {
      nodes_.emplace_back();
      queue_.Push(&nodes_.back(), "heavy", Priority::kDefault, 50, 5 * kMs, t);
      queue_.Remove(&nodes_.back());
    }
  }
  // Waits over the target for a whole interval: the queue stands.
  static void MakeStand(Admission& admission) {
    admission.ObserveQueueWait(absl::Milliseconds(150), 1);
    admission.ObserveQueueWait(absl::Milliseconds(150), 1001);
  }

  absl::Time now_ = absl::UnixEpoch() + absl::Hours(1);
  // The fair queue's clock: tasks are queued at push_ns_, and the load is
  // read at now_ns_, an hour later unless a test says otherwise, so that
  // the tenants' arrival rates have decayed to nothing.
  int64_t push_ns_ = 0;
  int64_t now_ns_ = absl::ToInt64Nanoseconds(absl::Hours(1));
  std::vector<int64_t> running_left_;  // of each task on a worker
  FairQueue queue_;
  std::deque<FairQueue::Node> nodes_;
  SubmitRefusal why_;
  FairQueue::Node* victim_ = nullptr;
  std::function<void(PoolLoad::Left*)> running_left_fn_ =
      [this](PoolLoad::Left* left) {
        left->assign(running_left_.begin(), running_left_.end());
      };
};

// The lockout of #11: whatever ran before, an idle server admits a task
// whose own cost fits its deadline, and refuses one whose cost does not.
TEST_F(AdmissionTest, AnIdlePoolAdmitsWhatFitsItsDeadline) {
  Admission admission(AdmissionBudgets{});
  EXPECT_TRUE(admission
                  .Check(Task(absl::Milliseconds(40), absl::Milliseconds(50)),
                         now_, Load(0, 2), &why_, &victim_)
                  .ok());
  absl::Status refused =
      admission.Check(Task(absl::Milliseconds(60), absl::Milliseconds(50)),
                      now_, Load(0, 2), &why_, &victim_);
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_EQ(why_.reason, RefusalReason::kDeadline);
  EXPECT_EQ(refused.message(),
            "deadline cannot be met: expected 60 ms (0 ms queue wait + 0 ms "
            "margin + 60 ms run) but only 50 ms left");
}

// A call whose own cost alone is past its deadline is refused as such
// (own_cost: the service answers "do not retry") whatever budget is also
// spent: until 2026-12-06 a full queue refused it first, with the queue's
// pushback, which gRPC's retry policy waited out to DEADLINE_EXCEEDED.
TEST_F(AdmissionTest, ACallLongerThanItsDeadlineIsRefusedForItsOwnCostFirst) {
  AdmissionBudgets budgets;
  budgets.queue_capacity = 1;
  budgets.max_inflight_bytes = 1000;
  Admission admission(budgets);
  Queue(Priority::kDefault, 5 * kMs);
  running_left_ = {8000 * kMs};
  // The queue is full, and the memory budget spent, for a call that fits.
  EXPECT_EQ(admission
                .Check(Task(absl::Milliseconds(1), absl::Seconds(60)), now_,
                       Load(1, 1), &why_, &victim_)
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(why_.reason, RefusalReason::kQueueFull);
  TaskOptions too_large = Holding(2000);
  too_large.cost = absl::Milliseconds(1);
  too_large.deadline = now_ + absl::Seconds(60);
  queue_.Remove(&nodes_.back());
  EXPECT_FALSE(
      admission.Check(too_large, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.reason, RefusalReason::kMemory);
  Queue(Priority::kDefault, 5 * kMs);
  // Its own cost is over its deadline: that is the refusal, both ways.
  for (int64_t bytes : {0, 2000}) {
    TaskOptions doomed = Task(absl::Seconds(5), absl::Seconds(1));
    doomed.bytes = bytes;
    absl::Status refused =
        admission.Check(doomed, now_, Load(1, 1), &why_, &victim_);
    EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
    EXPECT_EQ(why_.reason, RefusalReason::kDeadline) << bytes;
    EXPECT_TRUE(why_.own_cost) << bytes;
    EXPECT_EQ(victim_, nullptr);
  }
}

// A long task on one worker does not hold up the others: the wait is
// counted over the workers that free up before the new task starts. Over
// all of them, a 20 s task beside one ending in 0.8 s made it 10.4 s, and
// calls that would have started within a second were refused.
TEST_F(AdmissionTest, ALongTaskDoesNotHoldTheWaitForTheOtherWorkers) {
  Admission admission(AdmissionBudgets{});
  running_left_ = {20'000 * kMs, 800 * kMs};  // 2 workers busy
  EXPECT_TRUE(admission
                  .Check(Task(absl::Milliseconds(1), absl::Seconds(2)), now_,
                         Load(2, 2), &why_, &victim_)
                  .ok());
  EXPECT_FALSE(admission
                   .Check(Task(absl::Milliseconds(1), absl::Milliseconds(500)),
                          now_, Load(2, 2), &why_, &victim_)
                   .ok());
  EXPECT_EQ(why_.expected_wait, absl::Milliseconds(800));
  // Queued work fills the worker that frees first while the long task
  // still runs: 800 ms + 1 s.
  Queue(Priority::kDefault, 1000 * kMs);
  EXPECT_FALSE(admission
                   .Check(Task(absl::Milliseconds(1), absl::Seconds(1)), now_,
                          Load(2, 2), &why_, &victim_)
                   .ok());
  EXPECT_EQ(why_.expected_wait, absl::Milliseconds(1800));
  // Work enough to wait for the long one too: shared by both again,
  // (20 + 0.8 + 29.2) / 2 s.
  Queue(Priority::kDefault, 28'200 * kMs);
  EXPECT_FALSE(admission
                   .Check(Task(absl::Milliseconds(1), absl::Seconds(1)), now_,
                          Load(2, 2), &why_, &victim_)
                   .ok());
  EXPECT_EQ(why_.expected_wait, absl::Seconds(25));
}

// Busy workers and a queue: the wait is (queued cost + what the running
// tasks have left) / workers, and the deadline is held against it with a
// margin of a quarter of the wait.
TEST_F(AdmissionTest, TheDeadlineBudgetCountsTheWorkAhead) {
  Admission admission(AdmissionBudgets{});
  Queue(Priority::kDefault, 100 * kMs);
  running_left_ = {30 * kMs, 30 * kMs};  // 2 workers busy
  // Wait (100 + 60) / 2 = 80 ms, + a 20 ms margin + 10 ms of its own:
  // fits 110, not 109, nor 95 (where it would fit with no margin).
  EXPECT_TRUE(admission
                  .Check(Task(absl::Milliseconds(10), absl::Milliseconds(110)),
                         now_, Load(2, 2), &why_, &victim_)
                  .ok());
  EXPECT_FALSE(admission
                   .Check(Task(absl::Milliseconds(10), absl::Milliseconds(109)),
                          now_, Load(2, 2), &why_, &victim_)
                   .ok());
  absl::Status refused =
      admission.Check(Task(absl::Milliseconds(10), absl::Milliseconds(95)),
                      now_, Load(2, 2), &why_, &victim_);
  EXPECT_EQ(refused.message(),
            "deadline cannot be met: expected 110 ms (80 ms queue wait + 20 ms "
            "margin + 10 ms run) but only 95 ms left");
  EXPECT_EQ(why_.reason, RefusalReason::kDeadline);
  EXPECT_EQ(why_.expected_wait, absl::Milliseconds(80));
  EXPECT_EQ(why_.retry_after, absl::Milliseconds(80));
  // Already past: expired, not a budget.
  absl::Status expired =
      admission.Check(Task(absl::ZeroDuration(), absl::ZeroDuration()), now_,
                      Load(0, 2), &why_, &victim_);
  EXPECT_TRUE(absl::IsDeadlineExceeded(expired)) << expired;
  EXPECT_EQ(why_.reason, RefusalReason::kExpired);
}

TEST_F(AdmissionTest, TheMemoryBudgetCountsTasksAndHeldBytes) {
  AdmissionBudgets budgets;
  budgets.max_inflight_bytes = 1000;
  Admission admission(budgets);
  TaskOptions task;
  task.bytes = 300;
  EXPECT_TRUE(
      admission.Check(task, now_, Load(1, 2, 400, 300), &why_, &victim_).ok());
  absl::Status refused =
      admission.Check(task, now_, Load(1, 2, 400, 301), &why_, &victim_);
  EXPECT_TRUE(absl::IsResourceExhausted(refused)) << refused;
  EXPECT_EQ(why_.reason, RefusalReason::kMemory);
  EXPECT_EQ(refused.message(),
            "memory budget spent: 400 bytes held by queued and running tasks "
            "+ 301 by results not yet delivered + 300 for this one > limit "
            "1000");
}

// A memory refusal's pushback: the budget may be held by answers that
// clients read slowly, which the expected wait cannot see (it says 0 with
// a worker free): at least the target queue wait (100 ms without one), so
// that retries, each carrying its whole request, do not come every 1 ms.
TEST_F(AdmissionTest, AMemoryRefusalAsksForAtLeastTheTargetWait) {
  AdmissionBudgets budgets;
  budgets.max_inflight_bytes = 1000;
  TaskOptions task;
  task.bytes = 300;
  // Workers idle, the budget held by results not yet delivered.
  EXPECT_FALSE(Admission(budgets)
                   .Check(task, now_, Load(0, 2, 0, 900), &why_, &victim_)
                   .ok());
  EXPECT_EQ(why_.reason, RefusalReason::kMemory);
  EXPECT_EQ(why_.expected_wait, absl::ZeroDuration());
  EXPECT_EQ(why_.retry_after, absl::Milliseconds(100));
  budgets.target_queue_wait = absl::Milliseconds(250);
  EXPECT_FALSE(Admission(budgets)
                   .Check(task, now_, Load(0, 2, 0, 900), &why_, &victim_)
                   .ok());
  EXPECT_EQ(why_.retry_after, absl::Milliseconds(250));
  // Held by running tasks with longer left to run: the expected wait.
  running_left_ = {1000 * kMs, 1000 * kMs};  // 2 workers busy
  EXPECT_FALSE(Admission(budgets)
                   .Check(task, now_, Load(2, 2, 900, 0), &why_, &victim_)
                   .ok());
  EXPECT_EQ(why_.expected_wait, absl::Seconds(1));
  EXPECT_EQ(why_.retry_after, absl::Seconds(1));
  // The budget spent with a tenant over its share of the queued cost: the
  // refusal is still `memory` (the queue does not count bytes per tenant;
  // by cost it blamed a tenant holding kilobytes beside one holding the
  // budget), with the floor.
  running_left_ = {0, 0};
  Queue(Priority::kDefault, 30 * kMs, "greedy");
  Queue(Priority::kDefault, kMs, "modest");
  task.tenant = "greedy";
  task.cost = absl::Milliseconds(10);
  EXPECT_FALSE(Admission(budgets)
                   .Check(task, now_, Load(2, 2, 0, 900), &why_, &victim_)
                   .ok());
  EXPECT_EQ(why_.reason, RefusalReason::kMemory);
  EXPECT_LT(why_.expected_wait, absl::Milliseconds(250));
  EXPECT_EQ(why_.retry_after, absl::Milliseconds(250));
}

// An idle worker's place is in the queue too: a task handed to it waits
// there until the worker wakes. The message says so (with no queue, it
// read "1 tasks queued (capacity 0), 0 of 1 workers busy": an idle server).
TEST_F(AdmissionTest, AQueueFullOfTasksForIdleWorkersSaysSo) {
  AdmissionBudgets budgets;
  budgets.queue_capacity = 0;
  Admission admission(budgets);
  Queue(Priority::kDefault, kMs);
  const absl::Status refused =
      admission.Check(TaskOptions(), now_, Load(0, 1), &why_, &victim_);
  EXPECT_EQ(why_.reason, RefusalReason::kQueueFull) << refused;
  EXPECT_EQ(refused.message(),
            "queue full: 1 tasks queued (capacity 0, and 1 for idle workers "
            "to start), 0 of 1 workers busy");
}

// A full queue refuses a task of the same class, and makes room for a
// more critical one by naming the newest task of the lowest class.
TEST_F(AdmissionTest, AFullQueueDisplacesOnlyLessCriticalWork) {
  AdmissionBudgets budgets;
  budgets.queue_capacity = 2;
  Admission admission(budgets);
  Queue(Priority::kSheddable, kMs);
  FairQueue::Node* newest = Queue(Priority::kSheddable, kMs);
  TaskOptions sheddable;
  sheddable.priority = Priority::kSheddable;
  absl::Status refused =
      admission.Check(sheddable, now_, Load(2, 2), &why_, &victim_);
  EXPECT_EQ(why_.reason, RefusalReason::kQueueFull) << refused;
  EXPECT_EQ(refused.message(),
            "queue full: 2 tasks queued (capacity 2), 2 of 2 workers busy");
  EXPECT_EQ(victim_, nullptr);
  EXPECT_TRUE(
      admission.Check(TaskOptions(), now_, Load(2, 2), &why_, &victim_).ok());
  EXPECT_EQ(victim_, newest);
}

// The task a full queue gives way with frees its bytes too: a critical
// task that fits once a sheddable one's bytes are gone is admitted (it was
// refused "memory budget spent", the sheddable one's bytes counted).
TEST_F(AdmissionTest, ADisplacedTasksBytesAreFreedForTheTaskThatTakesItsPlace) {
  AdmissionBudgets budgets;
  budgets.queue_capacity = 1;
  budgets.max_inflight_bytes = 1000;
  Admission admission(budgets);
  FairQueue::Node* sheddable = Queue(Priority::kSheddable, kMs);
  sheddable->bytes = 600;
  TaskOptions critical = Holding(600, Priority::kCritical);
  absl::Status admitted =
      admission.Check(critical, now_, Load(1, 1, 600), &why_, &victim_);
  EXPECT_TRUE(admitted.ok()) << admitted;
  EXPECT_EQ(victim_, sheddable);
  // What the victim frees is all it frees: 401 bytes more do not fit.
  critical.bytes = 600 + 401;
  absl::Status refused =
      admission.Check(critical, now_, Load(1, 1, 600), &why_, &victim_);
  EXPECT_EQ(why_.reason, RefusalReason::kMemory) << refused;
  EXPECT_EQ(victim_, nullptr) << "nothing is displaced for a refused task";
}

// A full budget, the queue not full: a more critical task displaces the
// lower-class task NewestBelow names, when its bytes are enough; a task of
// the same class displaces nothing.
TEST_F(AdmissionTest, AFullMemoryBudgetGivesWayToMoreCriticalWork) {
  AdmissionBudgets budgets;
  budgets.max_inflight_bytes = 1000;
  Admission admission(budgets);
  FairQueue::Node* queued = Queue(Priority::kDefault, kMs);
  queued->bytes = 600;
  TaskOptions task = Holding(600);
  absl::Status refused =
      admission.Check(task, now_, Load(1, 1, 600), &why_, &victim_);
  EXPECT_EQ(why_.reason, RefusalReason::kMemory) << refused;
  EXPECT_EQ(victim_, nullptr) << "the same class displaces nothing";
  task.priority = Priority::kCritical;
  absl::Status admitted =
      admission.Check(task, now_, Load(1, 1, 600), &why_, &victim_);
  EXPECT_TRUE(admitted.ok()) << admitted;
  EXPECT_EQ(victim_, queued);
  task.bytes = 600 + 401;  // more than displacing it frees
  refused = admission.Check(task, now_, Load(1, 1, 600), &why_, &victim_);
  EXPECT_EQ(why_.reason, RefusalReason::kMemory) << refused;
  EXPECT_EQ(victim_, nullptr);
}

// The victim must hold enough bytes: a lower class's task of no bytes
// (queued in the lowest class, so named first by places and by cost) is
// passed over for one of a higher class below the caller's that holds
// enough, whether the queue is full or only the budget is.
TEST_F(AdmissionTest, TheMemoryBudgetsVictimIsOneThatHoldsEnoughBytes) {
  Queue(Priority::kSheddable, 100 * kMs, "spin");  // no bytes
  FairQueue::Node* blur = Queue(Priority::kDefault, kMs, "blur");
  blur->bytes = 600;
  for (size_t capacity : {size_t{2}, size_t{10}}) {
    SCOPED_TRACE(capacity == 2 ? "queue full" : "budget full");
    AdmissionBudgets budgets;
    budgets.queue_capacity = capacity;
    budgets.max_inflight_bytes = 1000;
    Admission admission(budgets);
    TaskOptions critical = Holding(600, Priority::kCritical);
    absl::Status admitted =
        admission.Check(critical, now_, Load(1, 1, 600), &why_, &victim_);
    EXPECT_TRUE(admitted.ok()) << admitted;
    EXPECT_EQ(victim_, blur);
    // A default task may displace only the sheddable one, which frees
    // nothing.
    TaskOptions task = Holding(600);
    absl::Status refused =
        admission.Check(task, now_, Load(1, 1, 600), &why_, &victim_);
    EXPECT_EQ(why_.reason, RefusalReason::kMemory) << refused;
    EXPECT_EQ(victim_, nullptr);
  }
}

// CoDel's rule: overloaded once every wait for a whole interval was over
// the target; it ends only when a wait falls under half the target.
TEST_F(AdmissionTest, AStandingQueueIsOneAboveTargetForAWholeInterval) {
  AdmissionBudgets budgets;
  budgets.target_queue_wait = absl::Milliseconds(100);
  budgets.overload_interval_ticks = 1000;
  Admission admission(budgets);
  const absl::Duration above = absl::Milliseconds(150);
  admission.ObserveQueueWait(above, 1);
  admission.ObserveQueueWait(above, 900);
  EXPECT_FALSE(admission.overloaded());  // a burst, not yet standing
  admission.ObserveQueueWait(absl::Milliseconds(80), 950);  // the run ends
  admission.ObserveQueueWait(above, 1000);
  admission.ObserveQueueWait(above, 1999);
  EXPECT_FALSE(admission.overloaded());
  admission.ObserveQueueWait(above, 2000);
  EXPECT_TRUE(admission.overloaded());
  admission.ObserveQueueWait(absl::Milliseconds(60), 2100);  // under target
  EXPECT_TRUE(admission.overloaded());  // but not under half of it
  // Overloaded: a default task is refused when its wait is over the target.
  Queue(Priority::kDefault, 300 * kMs);
  TaskOptions task;
  absl::Status refused =
      admission.Check(task, now_, Load(2, 2), &why_, &victim_);
  EXPECT_EQ(why_.reason, RefusalReason::kOverload) << refused;
  task.priority = Priority::kCritical;  // exempt
  EXPECT_TRUE(admission.Check(task, now_, Load(2, 2), &why_, &victim_).ok());
  admission.ObserveQueueWait(absl::Milliseconds(40), 2200);
  EXPECT_FALSE(admission.overloaded());
}

// While a queue stands, the tenants with queued calls are taken to keep
// sending: a light tenant's next call waits for what a heavy one (weight
// 50) will be served before it, not only for what the heavy one holds now.
// Without a standing queue, only what is queued counts (a tenant that
// stops sending would otherwise hold every other tenant's calls off).
TEST_F(AdmissionTest, WhileAQueueStandsOtherTenantsAreTakenToKeepSending) {
  const AdmissionBudgets budgets = HeavyAndLightTenants(Priority::kDefault);
  TaskOptions light = Task(absl::Milliseconds(5), absl::Milliseconds(20));
  light.tenant = "light";
  // Not standing: its own 5 ms, the heavy tenant's 10 and the running 1.
  Admission calm(budgets);
  EXPECT_FALSE(calm.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.reason, RefusalReason::kDeadline);
  EXPECT_EQ(why_.expected_wait, absl::Milliseconds(16));
  // Standing: the heavy tenant is served 5 ms x 50 before the light
  // tenant's next call starts.
  Admission standing(budgets);
  MakeStand(standing);
  ASSERT_TRUE(standing.overloaded());
  EXPECT_FALSE(standing.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.expected_wait, absl::Milliseconds(256));
}

// Without a standing queue, a tenant that keeps sending is counted as
// such: a light tenant's next call waits for what a heavy one (weight 50),
// sending a worker's worth, will be served before it, 5 ms x 50, not for
// the 10 ms it holds now. Before, such calls were told 16 ms and admitted
// with 100 ms deadlines, and waited the heavy tenant's 250 ms (a review's
// simulation: 470 of 471 admitted calls expired in the queue).
TEST_F(AdmissionTest, ATenantThatKeepsSendingCountsWhatItWillBeServedFirst) {
  push_ns_ = now_ns_ = 20'000 * kMs;
  HeavySentLately(5 * kMs);  // a worker's worth
  Admission calm(HeavyAndLightTenants(Priority::kDefault));
  TaskOptions light = Task(absl::Milliseconds(5), absl::Milliseconds(100));
  light.tenant = "light";
  EXPECT_FALSE(calm.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.reason, RefusalReason::kDeadline);
  // 1 running, its own 5 and 250 of the heavy tenant's.
  EXPECT_EQ(why_.expected_wait, absl::Milliseconds(256));
}

// Sending half a worker's worth, a tenant's calls count at that rate while
// another's call waits; stopped for long, it counts what it holds, as
// before (a tenant that stops sending must not hold others' calls off).
TEST_F(AdmissionTest, ATenantsCallsMeanwhileCountAtItsRecentRate) {
  push_ns_ = now_ns_ = 20'000 * kMs;
  HeavySentLately(10 * kMs);  // half a worker's worth
  Admission calm(HeavyAndLightTenants(Priority::kDefault));
  TaskOptions light = Task(absl::Milliseconds(5), absl::Milliseconds(100));
  light.tenant = "light";
  // The wait W = 16 ms + about 0.5 x W: 32 ms, to within the bisection's
  // precision.
  const absl::Duration wait =
      Admission::ExpectedWaitWhileOthersSend(light, Load(1, 1));
  EXPECT_GE(wait, absl::Milliseconds(32));
  EXPECT_LE(wait, absl::Milliseconds(33));
  EXPECT_TRUE(calm.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
  light.deadline = now_ + absl::Milliseconds(30);
  EXPECT_FALSE(calm.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.expected_wait, wait);
  // 30 s without a call: what it holds, 16 ms; with 25 ms left (16, its
  // margin 4, its own 5) the call fits.
  now_ns_ += 30'000 * kMs;
  EXPECT_EQ(Admission::ExpectedWaitWhileOthersSend(light, Load(1, 1)),
            absl::Milliseconds(16));
  light.deadline = now_ + absl::Milliseconds(25);
  EXPECT_TRUE(calm.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
}

// A light tenant with nothing queued may still owe its last call: then a
// heavy tenant that keeps sending goes first, and the deadline's quick
// bound (what is queued and running) does not bound the wait. Once the
// class has emptied, nobody owes anything, and the quick bound admits.
TEST_F(AdmissionTest, ATenantThatOwesItsLastCallWaitsForOthersSending) {
  push_ns_ = now_ns_ = 20'000 * kMs;
  HeavySentLately(5 * kMs);  // a worker's worth
  Admission calm(HeavyAndLightTenants(Priority::kDefault));
  // Served: a heavy call, then the light one (its tag was the lowest); the
  // light tenant now owes its 5 ms, one heavy call is queued.
  ASSERT_EQ(queue_.Pop(), &nodes_[nodes_.size() - 3]);
  FairQueue::Node* light_served = queue_.Pop();
  ASSERT_EQ(light_served, &nodes_.back());
  queue_.Served(light_served, 5 * kMs);
  ASSERT_FALSE(queue_.OwesNothing("light", Priority::kDefault));
  TaskOptions light = Task(absl::Milliseconds(5), absl::Milliseconds(100));
  light.tenant = "light";
  EXPECT_FALSE(calm.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.reason, RefusalReason::kDeadline);
  // 1 running and the heavy tenant's 49 calls of 5 ms.
  EXPECT_EQ(why_.expected_wait, absl::Milliseconds(246));
  // The class empties and the heavy tenant sends again: nothing is owed.
  queue_.Pop();
  ASSERT_TRUE(queue_.empty());
  Queue(Priority::kDefault, 5 * kMs, "heavy");
  ASSERT_TRUE(queue_.OwesNothing("light", Priority::kDefault));
  EXPECT_TRUE(calm.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
}

// The classes above a call go first, and one that keeps a backlog sends
// while it waits: a critical loop keeping a call queued, sending half a
// worker's worth, doubles a default call's wait; sending more than the
// workers' worth, it leaves the call no start while it goes on, and a call
// with any deadline is refused at once, saying so, with a second's
// pushback. Until 2026-12-07 such a call was told what the class held (10
// ms here), admitted, and expired in the queue. The deadline's quick bound
// counts the same (over the workers the classes above leave), and so does
// a standing queue.
TEST_F(AdmissionTest, ACallWaitsForWhatHigherClassesSendMeanwhile) {
  push_ns_ = now_ns_ = 20'000 * kMs;
  // A 5 ms critical call every `every_ns` in the 10 s before push_ns_, the
  // oldest queued served at each: one stays queued.
  auto critical_loop_every = [&](int64_t every_ns) {
    for (int64_t t = push_ns_ - 10'000 * kMs; t < push_ns_; t += every_ns) {
      nodes_.emplace_back();
      queue_.Push(&nodes_.back(), "ops", Priority::kCritical, 1, 5 * kMs, t);
      if (queue_.size() > 1) {
        FairQueue::Node* served = queue_.Pop();
        queue_.Served(served, served->cost_ns);
      }
    }
  };
  critical_loop_every(10 * kMs);  // half a worker's worth
  running_left_ = {5 * kMs};
  AdmissionBudgets budgets;
  budgets.target_queue_wait = absl::Milliseconds(100);
  budgets.overload_interval_ticks = 1000;
  Admission admission(budgets);
  TaskOptions call = Task(absl::Milliseconds(5), absl::Milliseconds(25));
  call.tenant = "light";
  // W = 10 ms + 0.5 x W: 20 ms, to within the bisection's precision.
  const absl::Duration wait =
      Admission::ExpectedWaitWhileOthersSend(call, Load(1, 1));
  EXPECT_GE(wait, absl::Milliseconds(19));
  EXPECT_LE(wait, absl::Microseconds(20'500));
  // 20 + 5 margin + 5 > 25 (what was queued and running, 10 + 2.5 + 5,
  // would have fitted); 40 ms fits.
  EXPECT_FALSE(admission.Check(call, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.reason, RefusalReason::kDeadline);
  EXPECT_EQ(why_.expected_wait, wait);
  call.deadline = now_ + absl::Milliseconds(40);
  EXPECT_TRUE(admission.Check(call, now_, Load(1, 1), &why_, &victim_).ok());
  // Behind a 1 s call: W = 1,005 ms + 0.5 x W, about 2 s, but the
  // pushback is at most a second (they may stop at any moment).
  running_left_ = {1'000 * kMs};
  EXPECT_FALSE(admission.Check(call, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_GE(why_.expected_wait, absl::Milliseconds(1'900));
  EXPECT_EQ(why_.retry_after, absl::Seconds(1));
  running_left_ = {5 * kMs};
  // A critical call of another tenant waits for the running 5 ms only: fair
  // queuing serves it before the loop's queued call.
  TaskOptions critical = call;
  critical.priority = Priority::kCritical;
  EXPECT_EQ(Admission::ExpectedWaitWhileOthersSend(critical, Load(1, 1)),
            absl::Milliseconds(5));
  // A standing queue counts the classes above the same way.
  call.deadline = now_ + absl::Milliseconds(25);
  MakeStand(admission);
  ASSERT_TRUE(admission.overloaded());
  EXPECT_FALSE(admission.Check(call, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.reason, RefusalReason::kDeadline);
  EXPECT_EQ(why_.expected_wait, wait);

  // 20 s later, sending 1.25 workers' worth.
  push_ns_ = now_ns_ = 40'000 * kMs;
  now_ += absl::Seconds(20);
  critical_loop_every(4 * kMs);
  call.deadline = now_ + absl::Seconds(10);
  // Still standing: refused for the standing queue, whose wait has no end.
  const absl::Status overloaded =
      admission.Check(call, now_, Load(1, 1), &why_, &victim_);
  EXPECT_EQ(why_.reason, RefusalReason::kOverload);
  EXPECT_NE(overloaded.message().find(
                "expected wait without end (higher priority classes keep "
                "every worker busy)"),
            std::string::npos)
      << overloaded;
  const Admission calm{AdmissionBudgets()};
  const absl::Status refused =
      calm.Check(call, now_, Load(1, 1), &why_, &victim_);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(why_.reason, RefusalReason::kDeadline);
  EXPECT_EQ(why_.expected_wait, Admission::kNoStart);
  EXPECT_EQ(why_.retry_after, absl::Seconds(1));
  // A memory refusal asks for the same second (at least the floor).
  AdmissionBudgets bytes;
  bytes.max_inflight_bytes = 1000;
  TaskOptions holding = call;
  holding.bytes = 200;
  EXPECT_FALSE(Admission(bytes)
                   .Check(holding, now_, Load(1, 1, 900), &why_, &victim_)
                   .ok());
  EXPECT_EQ(why_.reason, RefusalReason::kMemory);
  EXPECT_EQ(why_.retry_after, absl::Seconds(1));
  EXPECT_NE(refused.message().find("higher priority classes keep every "
                                   "worker busy (arriving at 1.25 workers' "
                                   "worth of 1)"),
            std::string::npos)
      << refused;
  // With 2 workers (one free, one running the 5 ms) they leave 0.75 of
  // one: W = (5 + 1.25 x W + 5 + 0) / 2, 13.3 ms (the rate read 4 ms
  // after the last call: 1.2475, and 13.29 ms).
  const absl::Duration two =
      Admission::ExpectedWaitWhileOthersSend(call, Load(1, 2));
  EXPECT_GE(two, absl::Microseconds(13'200));
  EXPECT_LE(two, absl::Microseconds(13'600));
  // 20 s later, sending 2.5 workers' worth: none with 2 either.
  push_ns_ = now_ns_ = 60'000 * kMs;
  critical_loop_every(2 * kMs);
  EXPECT_EQ(Admission::ExpectedWaitWhileOthersSend(call, Load(1, 2)),
            Admission::kNoStart);
}

// A critical loop of one call at a time leaves the worker free between its
// calls, and then a default call starts: however much of the worker it
// has been using, it counts what it holds. (Counted at its rate, a
// default tenant that came after it had been running alone was refused
// every call, with a 10 s pushback, where each would have waited one
// critical call at most: a review's simulation, 0 of 2,000 calls OK
// against 2,000.)
TEST_F(AdmissionTest, AHigherClassThatLeavesTheWorkersFreeCountsWhatItHolds) {
  push_ns_ = now_ns_ = 20'000 * kMs;
  for (int64_t t = push_ns_ - 10'000 * kMs; t < push_ns_; t += 5 * kMs) {
    nodes_.emplace_back();
    queue_.Push(&nodes_.back(), "ops", Priority::kCritical, 1, 5 * kMs, t);
    FairQueue::Node* served = queue_.Pop();
    queue_.Served(served, served->cost_ns);  // nothing queued then
  }
  running_left_ = {5 * kMs};
  const Admission admission{AdmissionBudgets()};
  TaskOptions call = Task(absl::Milliseconds(5), absl::Milliseconds(20));
  call.tenant = "light";
  EXPECT_TRUE(admission.Check(call, now_, Load(1, 1), &why_, &victim_).ok());
  Queue(Priority::kCritical, 5 * kMs, "ops");
  EXPECT_EQ(Admission::ExpectedWaitWhileOthersSend(call, Load(1, 1)),
            absl::Milliseconds(10));
}

// Critical calls are above the overload rule, and their class goes ahead
// of the standing queue: their wait is what is queued, which the deadline's
// quick bound bounds. Until 2026-12-06 a standing queue made their wait
// count other tenants' next calls too, while the quick bound did not: in
// this set-up a 25 ms deadline was admitted by the bound, a 24 ms one
// refused for an expected 325 ms, and a 200 ms one admitted though the
// wait it was told was 256 ms (a review's test).
TEST_F(AdmissionTest, ACriticalCallsWaitIsWhatIsQueuedWhileAQueueStands) {
  Admission standing(HeavyAndLightTenants(Priority::kCritical));
  MakeStand(standing);
  ASSERT_TRUE(standing.overloaded());
  TaskOptions light = Task(absl::Milliseconds(5), absl::Milliseconds(20));
  light.tenant = "light";
  light.priority = Priority::kCritical;
  // 16 ms ahead (the heavy tenant's 10 queued, the light one's 5, the
  // running 1), 4 ms of margin, its own 5: 25 ms.
  EXPECT_FALSE(standing.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.reason, RefusalReason::kDeadline);
  EXPECT_EQ(why_.expected_wait, absl::Milliseconds(16));
  light.deadline = now_ + absl::Milliseconds(24);
  EXPECT_FALSE(standing.Check(light, now_, Load(1, 1), &why_, &victim_).ok());
  EXPECT_EQ(why_.expected_wait, absl::Milliseconds(16));
  for (absl::Duration left :
       {absl::Milliseconds(25), absl::Milliseconds(200)}) {
    light.deadline = now_ + left;
    EXPECT_TRUE(standing.Check(light, now_, Load(1, 1), &why_, &victim_).ok())
        << left;
  }
}

// A light tenant's calls (one at a time, each its flow's only task) wait
// about one round of fair queuing beside a greedy tenant's standing queue:
// their short waits neither end the interval nor overload. Before, each
// reset the interval, and the greedy tenant's queue stood at its capacity.
TEST_F(AdmissionTest, ALightTenantsShortWaitsDoNotHideAStandingQueue) {
  AdmissionBudgets budgets;
  budgets.target_queue_wait = absl::Milliseconds(100);
  budgets.overload_interval_ticks = 1000;
  Admission admission(budgets);
  const absl::Duration above = absl::Milliseconds(150);
  admission.ObserveQueueWait(above, 1);
  admission.ObserveQueueWait(absl::Milliseconds(2), 500, /*sparse=*/true);
  admission.ObserveQueueWait(above, 1001);
  EXPECT_TRUE(admission.overloaded());
  admission.ObserveQueueWait(absl::Milliseconds(2), 1100, /*sparse=*/true);
  EXPECT_TRUE(admission.overloaded());
  // A long wait of a sparse flow still counts: here it keeps the interval.
  admission.ObserveQueueWait(above, 1200, /*sparse=*/true);
  EXPECT_TRUE(admission.overloaded());
  // The greedy flow's own short wait ends it, as before.
  admission.ObserveQueueWait(absl::Milliseconds(40), 1300);
  EXPECT_FALSE(admission.overloaded());
}

}  // namespace
}  // namespace compute
