// FairQueue: the scheduler's queue: strict priority between classes, and
// within a class, fair queuing by cost across tenants.
//
// A compute service is shared, and a FIFO serves clients in proportion to
// what they send: a greedy client starves a modest one. So each (tenant,
// priority) pair is a flow with its own FIFO, and flows of one class take
// turns by start-time fair queuing (Goyal et al., SFQ): each flow's head
// has a virtual start tag, the next task to run is the head with the
// smallest one (the class's virtual time becomes that tag), and the task
// behind it starts where the served one finished: its tag + cost / weight.
// A flow that becomes active starts at the class's virtual time, or where
// its last served task finished if that is later: a tenant whose queue
// empties after each task (one call at a time) still owes what it was
// served. Without that debt such tenants all started at the virtual time,
// which then never moved: ties went to whichever flow sat first in the
// active list, and of 16 tenants calling one at a time 8 were served once
// in 10 s; a tenant of 50 ms tasks with 2 in flight got 0.87 of the CPU
// against one queueing 800 5 ms tasks a second. When the class empties,
// nobody waits, so nobody is owed anything: the virtual time starts again
// at 0 and every debt is forgotten (an epoch count, so that this is O(1)),
// which also keeps tags small. Equal tags go in arrival order (a flow's
// turn: when it became active or was last served), not by the flow's place
// in the active list: debts also go when the sweep below frees a record,
// and 200 tenants calling one at a time with pauses, on equal tags, left 28
// of them never served.
//
// Tags are kept for heads only and advance only when a task is served, so
// a task taken out before it ran (displaced, cancelled, expired) costs its
// flow nothing. With a tag fixed per task at push, as in the paper, every
// displaced task still advanced its flow's tags: under overload a tenant
// whose newest tasks were displaced again and again fell ever further
// behind, and one of 50 ms tasks got 0.17-0.36 of the CPU against one of
// 5 ms tasks instead of 0.5. Where no task leaves early, the order is the
// same as with tags fixed at push.
//
// Costs are estimated run times, so a tenant sending expensive tasks gets
// no more CPU than one sending cheap ones; weights (default 1) scale a
// tenant's share. A served task is charged its estimate when it starts and
// settled at what it ran when it ends (Served): a task cancelled a moment
// after it started (the losing copy of a hedged call, a client gone)
// gives its flow back what it did not use, and one that ran past its
// estimate pays the difference, as fair CPU schedulers charge time used.
// Before 2026-12-03 the estimate was final: a tenant that hedged every
// call was charged twice its CPU, and one whose calls ran longer than the
// model said got more than its share until the model caught up. A
// settlement applies only in the epoch the task was served in (an emptied
// class forgets every debt) and never moves a flow before the virtual time
// (no credit). It is work-conserving: only flows with queued
// work take part, so an idle tenant's share goes to the busy ones, and a
// tenant that returns starts no earlier than the current virtual time (no
// credit saved up while idle).
//
// Classes: kCritical before kDefault before kSheddable, strictly.
//
// Costs: O(active flows of the class) to pick the next task and to count
// the work ahead of a new task (WorkAheadOf; admission's
// search for its wait then takes up to 40 steps over the flows counted at
// a rate, admission.h); the active flows are at most
// the queued tasks (the pool's capacity bounds them). Push, Remove: O(1)
// plus a hash lookup
// for the flow. A flow whose last task leaves is inactive: it takes no part
// in any decision (lookups do not find it) and starts afresh when its tenant
// returns, but its record stays in the map for reuse, so that a queue that
// empties after every task (a server keeping up) allocates nothing per task.
// Inactive records are freed in one sweep once they outnumber the active
// flows plus the tasks being served plus kSpareFlows (a record with a task
// being served stays, for its settlement): at most 2 x active + serving +
// kSpareFlows records exist, for an amortised O(1) per task.
//
// Thread-safety: none; the pool guards it with its mutex.
#ifndef COMPUTE_SERVER_POOL_FAIR_QUEUE_H_
#define COMPUTE_SERVER_POOL_FAIR_QUEUE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "server/pool/arrival_rate.h"

namespace compute {

enum class Priority : int { kCritical = 0, kDefault = 1, kSheddable = 2 };
inline constexpr int kNumPriorities = 3;
// "critical", "default", "sheddable".
std::string_view PriorityName(Priority priority);

class FairQueue {
 public:
  struct Flow;
  // A queued task's links: the pool's task record derives from it.
  struct Node {
    Node* prev = nullptr;
    Node* next = nullptr;
    // Its flow: while queued, and from Pop until Served.
    Flow* flow = nullptr;
    int64_t cost_ns = 0;  // set by Push; kept after the node leaves
    // Bytes its task holds (TaskOptions::bytes), set by the pool: the queue
    // only carries them, so that admission knows what displacing it frees.
    int64_t bytes = 0;
    // Its class's epoch when Pop served it.
    uint64_t served_epoch = 0;
  };
  struct Flow {
    std::string tenant;
    Priority priority = Priority::kDefault;
    double weight = 1;
    Node* front = nullptr;
    Node* back = nullptr;
    size_t size = 0;
    int64_t cost_ns = 0;  // of its queued tasks
    // Virtual start tag of `front`; while inactive, where its next task
    // would start (the last served task's finish), valid in `epoch` only.
    double head_tag = 0;
    uint64_t epoch = 0;  // of its class, when head_tag was last set
    // Order among equal head tags: when it became active or was last
    // served (its class's counter then); the smaller goes first.
    uint64_t turn = 0;
    size_t active_index = 0;  // in its class's active list
    // Tasks served and not yet settled (Served): the record stays while
    // there are any.
    size_t serving = 0;
    // What its tenant has been sending lately (every Push; kept while the
    // record is).
    ArrivalRate arrivals;
    // Since it last became active, and the cost served since (Pop).
    int64_t active_since_ns = 0;
    int64_t served_while_active_ns = 0;
    // Virtual finish tag of its last queued task.
    double finish_tag() const {
      return head_tag + static_cast<double>(cost_ns) / weight;
    }
  };

  FairQueue() = default;
  FairQueue(const FairQueue&) = delete;
  FairQueue& operator=(const FairQueue&) = delete;

  // Queues `node` at the back of (tenant, priority)'s flow. `weight` > 0
  // is the tenant's; the one given when the flow becomes active is kept
  // until it empties. `now_ns`: a monotonic clock's time, for the arrival
  // rates.
  void Push(Node* node, std::string_view tenant, Priority priority,
            double weight, int64_t cost_ns, int64_t now_ns);
  // The next task to run, taken out; nullptr when empty. Every node popped
  // must be given to Served once its task has ended.
  Node* Pop();
  // `node`'s task, popped, has ended after running `ran_ns`: its flow is
  // charged that instead of the node's cost, if still in the epoch it was
  // served in (see the header), and the node leaves its flow.
  void Served(Node* node, int64_t ran_ns);
  // Takes a queued node out (cancel, expiry, displacement), uncharged: the
  // tasks behind it move up into its turn.
  void Remove(Node* node);

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }
  int64_t cost_ns() const { return cost_ns_; }
  // Flows with queued tasks, over every class: O(classes).
  size_t ActiveFlows() const;
  // Tasks queued in the classes below `priority` (served after it).
  size_t SizeBelow(Priority priority) const;
  // Whether a flow of `priority`'s class holds more than one queued task.
  bool HasBacklog(Priority priority) const;

  // Estimated work (ns of cost) that would run before a new task of
  // (tenant, priority) if it were pushed now: every queued task of the
  // classes above, its own flow, and what each other flow of its class is
  // served before it starts (in virtual time), as a function of how long
  // the new task waits, W. Its two ends: WorkAhead::AsQueued counts each
  // other flow at most what it holds now; WorkAhead::AtMost what it would
  // be served if its tenant kept sending, as tenants do while a queue
  // stands (its next calls start before this one too). Capped at what it
  // holds, a light tenant beside one of weight 50 was told a wait the heavy
  // tenant's next calls then overtook: 22-26 of its ~100 admitted calls a
  // run with 200 ms deadlines expired in the queue. Not always: after a
  // tenant's own 2 s call, another's two queued 1 ms calls counted 2 s
  // ahead of its next one, which would start in a millisecond. Between the
  // two, WorkAhead::At, with each other flow of the class told apart by
  // what it has been doing at `now_ns` (a monotonic time, as Push's):
  // - one that keeps sending counts as in AtMost: it has kept a
  //   backlog (active for kKeepsSendingAfterNs or more, and served at least
  //   what it holds since: a deep closed loop, a tenant over its share), or
  //   it has been sending at least kKeepsSendingShare of its share of the
  //   `workers` (weight / the class's active weights, this tenant's
  //   `weight` included), which a closed loop held to its share does even
  //   when its flow empties between its calls. Its arrival rate alone would
  //   not do: held to its share, it takes more while the new task waits (a
  //   tenant of 1 ms calls, 8 in flight, sent 0.65 of a worker beside one
  //   of 50 ms calls, and all of it meanwhile);
  // - any other counts what it holds plus what it sends in W at its recent
  //   rate (its ArrivalRate), at most as much: a burst, a tenant below its
  //   share, one that has stopped (the 2 s case above: two calls queued,
  //   none served, nothing sent since).
  // With `others_keep_sending` (while a queue stands), every other flow of
  // the class counts as one that keeps sending.
  // The classes above go first whatever their tenants' tags: they count
  // what they hold, and while they keep the workers (kKeepsSendingAfterNs
  // of their work ended in a row with work of theirs still queued: see
  // Class::served_in_a_row_ns) also what they send in W at their recent rate
  // (each class's ArrivalRate, every tenant of it together), with no
  // bound: a lower call starts only at a moment a worker frees up with
  // nothing of theirs queued, and they leave none. Until 2026-12-07 only
  // what they held counted: a default call beside a critical closed loop
  // of 2 calls in flight (one worker, spin 5ms) was told 10 ms and
  // admitted with a 100 ms deadline, and 58 of 61 expired in the queue.
  // Counted at their rate whenever they sent (a first version, 1ff7e89), a
  // critical loop of 1 call in flight, which leaves the worker free
  // between its calls, read as the worker's worth once it ran alone, and
  // shut out a default tenant that would have waited one call at most (a
  // review's simulation: 0 of 2,000 calls OK against 2,000; on the real
  // server 37 of 176 against 589); so did bursts and regular arrivals
  // under the workers' worth. A class that merely stayed non-empty for a
  // second did not tell them apart either: a closed loop of 2 on one
  // worker empties it between each answer and the next call.
  // Made in one pass over the class (O(active flows)), so that admission's
  // search for W (admission.h) costs O(flows counted at a rate) a step.
  // Summed in doubles: with weights far apart (0.001 against 1,000) one
  // flow's part can pass what an int64_t holds.
  class WorkAhead {
   public:
    // Each other flow at most what it holds now, and the classes above
    // what they hold (W = 0).
    int64_t AsQueued() const;
    // After waiting `wait_ns`.
    int64_t At(int64_t wait_ns) const;
    // Each other flow of the class as if it kept sending, and the classes
    // above what they hold: At(W) is at most AtMost() + HigherRate() x W.
    int64_t AtMost() const;
    // The recent arrivals of the classes above while they keep the
    // workers, ns of cost per ns (workers' worth).
    double HigherRate() const { return higher_rate_; }
    // Whether At() grows with the wait (flows counted at a rate, or a
    // higher class sending).
    bool DependsOnWait() const { return !sending_.empty() || higher_rate_ > 0; }

   private:
    friend class FairQueue;
    // A flow counted at its rate: min(bound, held + rate x W).
    struct Sending {
      double held = 0;   // ns of cost queued now
      double bound = 0;  // served before the new task if it kept sending
      double rate = 0;   // recent arrivals, ns of cost per ns
    };
    static int64_t Capped(double ns);
    double as_queued_ = 0;
    double at_most_ = 0;
    double at_fixed_ = 0;  // At's part that does not depend on W
    double higher_rate_ = 0;
    absl::InlinedVector<Sending, 8> sending_;
  };
  WorkAhead WorkAheadOf(std::string_view tenant, Priority priority,
                        double weight, int workers, int64_t now_ns,
                        bool others_keep_sending = false) const;
  // What the classes above `priority` have been sending lately, all told,
  // while they keep the workers (see WorkAhead); else 0
  // (WorkAhead::HigherRate): O(classes).
  double HigherRate(Priority priority, int64_t now_ns) const;
  static constexpr int64_t kKeepsSendingAfterNs = 1'000'000'000;
  static constexpr double kKeepsSendingShare = 0.8;
  // Whether a new task of (tenant, priority) would start at its class's
  // virtual time: the tenant has nothing queued and owes nothing. Then no
  // other flow of its class is served more before it than it holds now,
  // whatever anyone sends meanwhile (every count above is the same).
  bool OwesNothing(std::string_view tenant, Priority priority) const;
  // About 11.6 days: past any deadline worth waiting for, and far inside
  // an int64_t.
  static constexpr double kMaxCostAheadNs = 1e15;

  // What a share is counted in: queued cost (ns), the measure of the time
  // budgets; or queued tasks, the measure of the queue's places (its count
  // budget). Counted in cost for places, a tenant's one expensive call was
  // "over its share" of a queue full of another's cheap calls: displaced,
  // and its next call refused, while the flooder kept the places.
  enum class Measure { kCost, kTasks };

  // The tenant's fair share of its class's queue if it were queued with
  // `extra` more (ns of cost, or tasks): weight / (sum of the weights of the
  // class's active flows, its own included) x (the class's queued amount +
  // extra), rounded down; and what its flow holds now.
  struct Share {
    int64_t held = 0;
    int64_t fair = 0;
  };
  Share ShareOf(std::string_view tenant, Priority priority, double weight,
                int64_t extra, Measure measure = Measure::kCost) const;

  // A victim to make room for a task of (tenant, priority, weight) adding
  // `extra`, whose tenant is under its share: the newest task of the flow
  // furthest over its share (held / weight, largest) in `priority`'s class
  // or a lower one, shares counted as if the new task were queued; skips
  // `tenant`'s own flows; nullptr if no flow is over its share.
  Node* NewestOfTheMostOverShare(std::string_view tenant, Priority priority,
                                 double weight, int64_t extra,
                                 Measure measure = Measure::kCost) const;
  // A victim to make room for a task of `priority`: the newest task of the
  // flow holding the most (in `measure`) per weight in the lowest non-empty
  // class below `priority` (sheddable first); nullptr when those classes
  // are empty. With `min_bytes`, only flows whose newest task holds that
  // many bytes count (a class with none is passed over): the memory
  // budget's victim must free enough. Only newest tasks: a flow gives up
  // its newest first, as for places, so its older tasks keep their turn.
  // O(active flows of the classes below).
  Node* NewestBelow(Priority priority, Measure measure = Measure::kCost,
                    int64_t min_bytes = 0) const;

  // Every queued node, in no particular order (shutdown, checks).
  template <typename F>
  void ForEach(F f) const {
    for (const Class& c : classes_) {
      for (const Flow* flow : c.active) {
        for (Node* n = flow->front; n != nullptr; n = n->next) f(n);
      }
    }
  }

  // Checks the sums, links and tags; aborts on a violation.
  void CheckInvariants() const;

 private:
  struct Class {
    // The class's flows by tenant: every active one, and inactive ones kept
    // for reuse. Looked up by string_view, so a lookup allocates nothing.
    absl::flat_hash_map<std::string, std::unique_ptr<Flow>> flows;
    std::vector<Flow*> active;  // flows with queued tasks
    double vtime = 0;           // virtual time: the last start tag served
    uint64_t epoch = 0;         // times the class emptied
    uint64_t turns = 0;         // Flow::turn's counter
    int64_t cost_ns = 0;
    size_t size = 0;       // queued tasks
    double weights = 0;    // sum over active
    ArrivalRate arrivals;  // every Push of the class
    // The cost of the tasks of this class and the ones above that ended
    // (Served) in a row with work of theirs still queued, at most
    // kKeepsSendingAfterNs; zero after a free moment at which none was: a
    // task Served with nothing of theirs queued (its worker then looks for
    // the next, under the same lock in the pool), or a Pop of a class
    // below.
    int64_t served_in_a_row_ns = 0;
  };
  static constexpr size_t kSpareFlows = 64;
  // The relative error allowed a share computed in doubles.
  static constexpr double kShareSlack = 1e-9;
  // The active flow of (tenant, priority); nullptr if it has no tasks.
  const Flow* FindFlow(std::string_view tenant, Priority priority) const;
  // Where a flow that becomes active now starts (`flow` may be nullptr: a
  // tenant without a record).
  static double StartTag(const Class& c, const Flow* flow);
  // What a class holds in `measure`.
  static double ClassHeld(const Class& c, Measure measure);
  void Unlink(Node* node);
  // Frees the inactive flows' records once there are too many (see above).
  void SweepInactiveFlows();
  size_t FlowRecords() const;

  std::array<Class, kNumPriorities> classes_;
  size_t serving_ = 0;  // nodes popped and not yet Served
  size_t size_ = 0;
  int64_t cost_ns_ = 0;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_FAIR_QUEUE_H_
