// Admission: the pool's budgets and its standing-queue detector, the policy
// half of the scheduler. worker_pool.h's "Budgets" and "Standing queue" say
// what each budget means to a caller; this is where they are decided.
//
// Why a class of its own: the pool (worker_pool.cc) moves tasks between the
// queue, the workers and the timer, and must stay small enough to read in
// one sitting; which task may enter is policy that changes on its own (a
// new budget, a new refusal reason) and is tested through the pool.
//
// Check() reads a snapshot of the pool's load (PoolLoad) that the pool
// fills under its mutex, and decides; it changes nothing. The only state
// here is the overload detector's, fed by every dequeue.
//
// Thread-safety: none; the pool guards it with its mutex.
#ifndef COMPUTE_SERVER_POOL_ADMISSION_H_
#define COMPUTE_SERVER_POOL_ADMISSION_H_

#include <cstddef>
#include <cstdint>

#include "absl/container/inlined_vector.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "server/pool/fair_queue.h"
#include "server/pool/task_types.h"

namespace compute {

struct AdmissionBudgets {
  size_t queue_capacity = 64;      // tasks that may wait for a busy worker
  int64_t max_inflight_bytes = 0;  // 0 = no limit
  // InfiniteDuration = no overload control.
  absl::Duration target_queue_wait = absl::InfiniteDuration();
  // CoDel's interval, in the pool clock's ticks (>= 1).
  int64_t overload_interval_ticks = 1;
};

// What the pool holds when a task arrives, read under the pool's mutex.
struct PoolLoad {
  const FairQueue& queue;
  int running = 0;  // tasks on workers and inline
  // The places admission counts on (>= 1): max_workers, or the live
  // workers while the system refuses to start more.
  int max_workers = 1;
  int64_t task_bytes = 0;            // of the queued and running tasks
  int64_t held_bytes = 0;            // held outside tasks (HoldBytes)
  int64_t running_full_cost_ns = 0;  // full estimated cost of running tasks
  int64_t now_ns = 0;  // the arrival's time (FairQueue's monotonic ns)
  // Appends the estimated time each task running on a worker has left (at
  // most its full cost); called only when a decision needs the exact
  // expected wait.
  using Left = absl::InlinedVector<int64_t, 16>;
  absl::FunctionRef<void(Left*)> running_left_ns;
};

class Admission {
 public:
  explicit Admission(AdmissionBudgets budgets) : budgets_(budgets) {}

  // OK when `options`' task, arriving at `now`, may enter; else the refusal
  // (*why filled: reason, expected wait, retry_after). *victim: when the
  // queue is full but the task may displace a queued one, that one (the
  // caller takes it out, once the task is admitted); else nullptr.
  absl::Status Check(const TaskOptions& options, absl::Time now,
                     const PoolLoad& load, SubmitRefusal* why,
                     FairQueue::Node** victim) const;

  // Zero while a worker is free for a new task; else (the queued cost fair
  // queuing runs first + what the running tasks have left) / workers, over
  // the workers that free up before the task starts: a task still running
  // then adds neither its time nor its worker. (Over all of them, one 20 s
  // task beside one ending in 0.8 s made the wait 10 s, and calls that
  // would have started within a second were refused by their deadline.)
  // For any task, and for a task of `options`' tenant and class.
  static absl::Duration ExpectedWait(const PoolLoad& load);
  // The same for a task of `options`' tenant, class and weight: the other
  // tenants go on sending as they have lately (FairQueue::WorkAheadOf; with
  // `others_keep_sending`, as the pool's checks take them while a queue
  // stands, every tenant of the class keeps sending), and the classes
  // above at their recent rate, for as long as the task waits. The wait W
  // solves W = the start after the work ahead at W; found by bisection to
  // within kWaitPrecisionNs or 1/64 of it (never below it), in at most
  // kWaitSteps steps of O(the flows counted at their rates + workers).
  // kNoStart when the classes above keep the workers and send their
  // worth or more: under strict priority the task would not start while
  // they go on.
  static absl::Duration ExpectedWaitWhileOthersSend(
      const TaskOptions& options, const PoolLoad& load,
      bool others_keep_sending = false);
  static constexpr int64_t kWaitPrecisionNs = 100'000;
  static constexpr int kWaitSteps = 40;
  static constexpr absl::Duration kNoStart = absl::InfiniteDuration();
  // The most pushback of a refusal whose wait counts the classes above at
  // their rate (kNoStart included): the work over which they are judged to
  // keep the workers (not ClampRetry's 10 s: they may stop at any moment,
  // and a refusal costs the client one round trip).
  static constexpr absl::Duration kNoStartRetry =
      absl::Nanoseconds(FairQueue::kKeepsSendingAfterNs);

  // The standing-queue detector (CoDel's rule): every dequeue reports its
  // task's queue wait, and a worker that finds the queue empty a zero.
  // `sparse`: the task's flow held no other queued task (a tenant with one
  // call at a time) while another flow of its class holds a backlog. Fair
  // queuing runs such a task within about one round, whatever stands behind the
  // backlog, so its short wait says nothing about it: it neither ends an
  // interval nor ends overload. (Where no flow holds a backlog, as with many
  // tenants of one call each, the pool reports no task sparse.) Before, one
  // light tenant's calls beside a greedy one kept the detector from ever
  // seeing a standing queue, and the greedy tenant's accepted calls waited
  // the whole queue (692 ms at p50 against 117 ms alone, target 100 ms). A
  // long wait counts whatever the flow: many tenants of one call each can
  // stand a queue too.
  void ObserveQueueWait(absl::Duration wait, int64_t now_ticks,
                        bool sparse = false);
  bool overloaded() const { return overloaded_; }

  const AdmissionBudgets& budgets() const { return budgets_; }

  // What the deadline budget adds to an expected wait: a quarter of it.
  // The wait is an estimate, and the answer still has to reach its client
  // after the task: admitted with no margin, a call with a deadline under
  // the target queue wait joined a queue that admission held at its
  // deadline, where a few ms of jitter made it miss. Open loop at 1x, 2x
  // and 4x capacity (spin 5ms, 2 workers, overload.sh) with 100 ms
  // deadlines, 41-54% of the admitted calls ended DEADLINE_EXCEEDED, for a
  // goodput of 0.45-0.58 of capacity (30-55% and 0.45-0.69 in other runs
  // with 50 and 100 ms); with this margin, under 0.1% did, and goodput was
  // 0.95-0.97 (0.1 still let 0.5-3% miss). An idle pool has no wait, so it
  // still admits any call whose own cost fits. A quarter is a lot for a
  // long wait (50 s of wait needs 62.5 s), where a call that long is
  // rarely near its deadline.
  static constexpr double kDeadlineMarginOfWait = 0.25;
  static absl::Duration DeadlineMargin(absl::Duration wait);

  // The least pushback of a `memory` refusal: the target queue wait, or
  // kMemoryRetryFloorWithoutTarget without one. Its bytes may be held by
  // answers that clients read slowly, which no expected wait can time.
  absl::Duration MemoryRetryFloor() const;
  static constexpr absl::Duration kMemoryRetryFloorWithoutTarget =
      absl::Milliseconds(100);

 private:
  const AdmissionBudgets budgets_;
  bool overloaded_ = false;
  // The end of the interval in which every dequeued task waited over the
  // target; 0 when the last one did not.
  int64_t above_target_until_ticks_ = 0;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_ADMISSION_H_
