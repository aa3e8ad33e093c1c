#include "server/pool/fair_queue.h"

#include <algorithm>
#include <cstdlib>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "server/base/crash_line.h"

namespace compute {
namespace {

void Check(bool ok, const char* what) {
  // Not blocking on a stalled stderr: the process must end (crash_line.h).
  if (!ok) {
    base::AbortOnFailedCheck(__FILE__, __LINE__, "fair queue invariant failed",
                             what);
  }
}

// The map's key type for a lookup that copies nothing: Debian's abseil has
// its own string_view, not std::string_view.
absl::string_view AsKey(std::string_view s) { return {s.data(), s.size()}; }

}  // namespace

std::string_view PriorityName(Priority priority) {
  switch (priority) {
    case Priority::kCritical:
      return "critical";
    case Priority::kDefault:
      return "default";
    case Priority::kSheddable:
      return "sheddable";
  }
  return "unknown";
}

const FairQueue::Flow* FairQueue::FindFlow(std::string_view tenant,
                                           Priority priority) const {
  const Class& c = classes_[static_cast<int>(priority)];
  auto it = c.flows.find(AsKey(tenant));
  return it == c.flows.end() || it->second->size == 0 ? nullptr
                                                      : it->second.get();
}

double FairQueue::StartTag(const Class& c, const Flow* flow) {
  if (flow == nullptr || flow->epoch != c.epoch) return c.vtime;
  return std::max(c.vtime, flow->head_tag);
}

size_t FairQueue::ActiveFlows() const {
  size_t active = 0;
  for (const Class& c : classes_) active += c.active.size();
  return active;
}

size_t FairQueue::SizeBelow(Priority priority) const {
  size_t below = 0;
  for (int q = static_cast<int>(priority) + 1; q < kNumPriorities; ++q) {
    below += classes_[q].size;
  }
  return below;
}

bool FairQueue::HasBacklog(Priority priority) const {
  const Class& c = classes_[static_cast<int>(priority)];
  return c.size > c.active.size();
}

size_t FairQueue::FlowRecords() const {
  size_t records = 0;
  for (const Class& c : classes_) records += c.flows.size();
  return records;
}

void FairQueue::SweepInactiveFlows() {
  if (FlowRecords() <= 2 * ActiveFlows() + serving_ + kSpareFlows) return;
  for (Class& c : classes_) {
    absl::erase_if(c.flows, [](const auto& entry) {
      return entry.second->size == 0 && entry.second->serving == 0;
    });
  }
}

void FairQueue::Push(Node* node, std::string_view tenant, Priority priority,
                     double weight, int64_t cost_ns, int64_t now_ns) {
  Class& c = classes_[static_cast<int>(priority)];
  auto it = c.flows.find(AsKey(tenant));
  if (it == c.flows.end()) {
    it = c.flows.emplace(std::string(tenant), std::make_unique<Flow>()).first;
    it->second->tenant = it->first;
    it->second->priority = priority;
  }
  Flow* flow = it->second.get();
  if (flow->size == 0) {
    // Active again: at the virtual time, or after its last served task.
    flow->head_tag = StartTag(c, flow);
    flow->epoch = c.epoch;
    flow->turn = ++c.turns;
    flow->weight = weight;
    flow->active_index = c.active.size();
    c.active.push_back(flow);
    c.weights += weight;
    flow->active_since_ns = now_ns;
    flow->served_while_active_ns = 0;
  }
  flow->arrivals.Add(cost_ns, now_ns);
  c.arrivals.Add(cost_ns, now_ns);
  node->flow = flow;
  node->cost_ns = cost_ns;
  node->prev = flow->back;
  node->next = nullptr;
  (flow->back != nullptr ? flow->back->next : flow->front) = node;
  flow->back = node;
  ++flow->size;
  flow->cost_ns += cost_ns;
  c.cost_ns += cost_ns;
  ++c.size;
  ++size_;
  cost_ns_ += cost_ns;
}

void FairQueue::Unlink(Node* node) {
  Flow* flow = node->flow;
  Class& c = classes_[static_cast<int>(flow->priority)];
  (node->prev != nullptr ? node->prev->next : flow->front) = node->next;
  (node->next != nullptr ? node->next->prev : flow->back) = node->prev;
  node->prev = node->next = nullptr;
  node->flow = nullptr;
  --flow->size;
  flow->cost_ns -= node->cost_ns;
  c.cost_ns -= node->cost_ns;
  --c.size;
  --size_;
  cost_ns_ -= node->cost_ns;
  if (flow->size > 0) return;
  // The flow leaves its class's turn; its record, with the tag it would
  // start at, stays for reuse (see the header).
  Flow* last = c.active.back();
  c.active[flow->active_index] = last;
  last->active_index = flow->active_index;
  c.active.pop_back();
  c.weights -= flow->weight;
  if (c.active.empty()) {
    c.weights = 0;  // no rounding residue
    // Nobody waits: every kept tag is void, and the virtual time restarts.
    c.vtime = 0;
    ++c.epoch;
  }
  SweepInactiveFlows();
}

FairQueue::Node* FairQueue::Pop() {
  for (int p = 0; p < kNumPriorities; ++p) {
    Class& c = classes_[p];
    if (c.active.empty()) continue;
    Flow* best = c.active.front();
    for (Flow* f : c.active) {
      if (f->head_tag < best->head_tag ||
          (f->head_tag == best->head_tag && f->turn < best->turn)) {
        best = f;
      }
    }
    Node* node = best->front;
    best->turn = ++c.turns;
    c.vtime = std::max(c.vtime, best->head_tag);
    // Served: the next task starts where this one finishes. (If this was
    // the last, the flow goes inactive, and its tenant's next task starts
    // there at the earliest.)
    best->head_tag += static_cast<double>(node->cost_ns) / best->weight;
    node->served_epoch = c.epoch;
    best->served_while_active_ns += node->cost_ns;
    // A worker takes this class's task: the classes above have nothing
    // queued (after an expiry or a cancel emptied them, say).
    for (int q = 0; q < p; ++q) classes_[q].served_in_a_row_ns = 0;
    // Counted first: Unlink's sweep keeps the record for the settlement.
    ++best->serving;
    ++serving_;
    Unlink(node);
    node->flow = best;
    return node;
  }
  return nullptr;
}

void FairQueue::Remove(Node* node) { Unlink(node); }

void FairQueue::Served(Node* node, int64_t ran_ns) {
  Flow* flow = node->flow;
  Check(flow != nullptr && flow->serving > 0 && node->prev == nullptr &&
            node->next == nullptr,
        "Served takes a popped node, once");
  node->flow = nullptr;
  --flow->serving;
  --serving_;
  Class& c = classes_[static_cast<int>(flow->priority)];
  // Unless the class emptied since: every debt is forgotten then.
  if (c.epoch == node->served_epoch && flow->epoch == node->served_epoch) {
    const double settled =
        flow->head_tag +
        static_cast<double>(ran_ns - node->cost_ns) / flow->weight;
    flow->head_tag = std::max(c.vtime, settled);
  }
  // Its worker frees up (the pool settles a task before it looks for the
  // next). The classes with nothing queued from the top down do not keep
  // the workers; below them, the task's own class and those under it
  // count its cost as served in a row (at most the threshold: no
  // overflow). Counted at Pop instead, one long call alone (1.2 s, nothing
  // queued behind it) read as keeping the worker (a review's repro).
  const int p = static_cast<int>(flow->priority);
  bool queued = false;  // in class q or one above
  for (int q = 0; q < kNumPriorities; ++q) {
    Class& k = classes_[q];
    queued = queued || !k.active.empty();
    if (!queued) {
      k.served_in_a_row_ns = 0;
    } else if (q >= p) {
      k.served_in_a_row_ns =
          std::min(k.served_in_a_row_ns + node->cost_ns, kKeepsSendingAfterNs);
    }
  }
  // The record may go now (with the flow's last task settled, it is only a
  // debt).
  SweepInactiveFlows();
}

double FairQueue::HigherRate(Priority priority, int64_t now_ns) const {
  const int p = static_cast<int>(priority);
  if (p == 0 || classes_[p - 1].served_in_a_row_ns < kKeepsSendingAfterNs) {
    return 0;
  }
  double rate = 0;
  for (int q = 0; q < p; ++q) rate += classes_[q].arrivals.At(now_ns);
  return rate;
}

bool FairQueue::OwesNothing(std::string_view tenant, Priority priority) const {
  const Class& c = classes_[static_cast<int>(priority)];
  auto it = c.flows.find(AsKey(tenant));
  if (it == c.flows.end()) return true;
  return it->second->size == 0 && StartTag(c, it->second.get()) <= c.vtime;
}

FairQueue::WorkAhead FairQueue::WorkAheadOf(std::string_view tenant,
                                            Priority priority, double weight,
                                            int workers, int64_t now_ns,
                                            bool others_keep_sending) const {
  const int p = static_cast<int>(priority);
  double first = 0;  // the classes above and its own flow
  for (int q = 0; q < p; ++q) first += static_cast<double>(classes_[q].cost_ns);
  const Class& c = classes_[p];
  // The tenant's record, active (`own`) or kept with its start tag.
  auto it = c.flows.find(AsKey(tenant));
  const Flow* record = it == c.flows.end() ? nullptr : it->second.get();
  const Flow* own = record != nullptr && record->size > 0 ? record : nullptr;
  if (own != nullptr) first += static_cast<double>(own->cost_ns);
  // Where the new task would start, in the class's virtual time.
  const double start = own != nullptr ? own->finish_tag() : StartTag(c, record);
  const double weights = c.weights + (own != nullptr ? 0 : weight);
  WorkAhead ahead;
  ahead.as_queued_ = ahead.at_most_ = ahead.at_fixed_ = first;
  ahead.higher_rate_ = HigherRate(priority, now_ns);
  for (const Flow* f : c.active) {
    if (f == own) continue;
    const double held = static_cast<double>(f->cost_ns);
    // What f is served before `start`: (start - its head's tag) x its
    // weight, and at least its head if that starts no later.
    double bound = std::max(0.0, start - f->head_tag) * f->weight;
    if (f->head_tag <= start) {
      bound = std::max(bound, static_cast<double>(f->front->cost_ns));
    }
    ahead.as_queued_ += std::min(bound, held);
    ahead.at_most_ += bound;
    if (others_keep_sending) {
      ahead.at_fixed_ += bound;
      continue;
    }
    const double rate = f->arrivals.At(now_ns);
    const bool keeps_sending =
        (now_ns - f->active_since_ns >= kKeepsSendingAfterNs &&
         f->served_while_active_ns >= f->cost_ns) ||
        rate >= kKeepsSendingShare * workers * f->weight / weights;
    if (keeps_sending) {
      ahead.at_fixed_ += bound;
    } else if (rate == 0 || bound <= held) {
      ahead.at_fixed_ += std::min(bound, held);
    } else {
      ahead.sending_.push_back({.held = held, .bound = bound, .rate = rate});
    }
  }
  return ahead;
}

int64_t FairQueue::WorkAhead::Capped(double ns) {
  return static_cast<int64_t>(std::min(ns, kMaxCostAheadNs));
}

int64_t FairQueue::WorkAhead::AsQueued() const { return Capped(as_queued_); }

int64_t FairQueue::WorkAhead::AtMost() const { return Capped(at_most_); }

int64_t FairQueue::WorkAhead::At(int64_t wait_ns) const {
  double sum = at_fixed_ + higher_rate_ * static_cast<double>(wait_ns);
  for (const Sending& f : sending_) {
    sum += std::min(f.bound, f.held + f.rate * static_cast<double>(wait_ns));
  }
  return Capped(sum);
}

namespace {

// What a flow, or a class, holds in `measure`.
double Held(const FairQueue::Flow& f, FairQueue::Measure measure) {
  return measure == FairQueue::Measure::kTasks ? static_cast<double>(f.size)
                                               : static_cast<double>(f.cost_ns);
}

}  // namespace

double FairQueue::ClassHeld(const Class& c, Measure measure) {
  return measure == Measure::kTasks ? static_cast<double>(c.size)
                                    : static_cast<double>(c.cost_ns);
}

FairQueue::Share FairQueue::ShareOf(std::string_view tenant, Priority priority,
                                    double weight, int64_t extra,
                                    Measure measure) const {
  const Class& c = classes_[static_cast<int>(priority)];
  const Flow* own = FindFlow(tenant, priority);
  Share share;
  share.held = own != nullptr ? static_cast<int64_t>(Held(*own, measure)) : 0;
  const double weights = c.weights + (own != nullptr ? 0 : weight);
  const double own_weight = own != nullptr ? own->weight : weight;
  // kShareSlack: a share that is whole in exact arithmetic (3/11 x 55)
  // may come out a hair under in doubles, and round down a place.
  share.fair = static_cast<int64_t>(
      own_weight / weights *
      (ClassHeld(c, measure) + static_cast<double>(extra)) * (1 + kShareSlack));
  return share;
}

FairQueue::Node* FairQueue::NewestOfTheMostOverShare(std::string_view tenant,
                                                     Priority priority,
                                                     double weight,
                                                     int64_t extra,
                                                     Measure measure) const {
  const Flow* own = FindFlow(tenant, priority);
  for (int q = kNumPriorities - 1; q >= static_cast<int>(priority); --q) {
    const Class& c = classes_[q];
    // The new task's class counts it, and its tenant's weight if new.
    const bool its_class = q == static_cast<int>(priority);
    const double weights =
        c.weights + (its_class && own == nullptr ? weight : 0);
    const double class_held =
        ClassHeld(c, measure) + (its_class ? static_cast<double>(extra) : 0);
    const Flow* worst = nullptr;
    double worst_per_weight = 0;
    for (const Flow* f : c.active) {
      if (f->tenant == tenant) continue;
      const double fair = f->weight / weights * class_held;
      if (Held(*f, measure) <= fair * (1 + kShareSlack)) continue;
      const double per_weight = Held(*f, measure) / f->weight;
      if (worst == nullptr || per_weight > worst_per_weight) {
        worst = f;
        worst_per_weight = per_weight;
      }
    }
    if (worst != nullptr) return worst->back;
  }
  return nullptr;
}

FairQueue::Node* FairQueue::NewestBelow(Priority priority, Measure measure,
                                        int64_t min_bytes) const {
  for (int q = kNumPriorities - 1; q > static_cast<int>(priority); --q) {
    const Flow* most = nullptr;
    for (const Flow* f : classes_[q].active) {
      if (f->back->bytes < min_bytes) continue;
      if (most == nullptr ||
          Held(*f, measure) / f->weight > Held(*most, measure) / most->weight) {
        most = f;
      }
    }
    if (most != nullptr) return most->back;
  }
  return nullptr;
}

void FairQueue::CheckInvariants() const {
  size_t size = 0;
  int64_t cost = 0;
  for (int p = 0; p < kNumPriorities; ++p) {
    const Class& c = classes_[p];
    int64_t class_cost = 0;
    double weights = 0;
    for (size_t i = 0; i < c.active.size(); ++i) {
      const Flow* f = c.active[i];
      Check(f->active_index == i, "active index");
      Check(static_cast<int>(f->priority) == p, "flow in its class");
      Check(f->size > 0 && f->front != nullptr, "active flows have tasks");
      // No head starts before the virtual time: it advances only to the
      // smallest head tag, and a flow becoming active starts at it.
      Check(f->head_tag + 1e-6 >= c.vtime, "head tag behind virtual time");
      size_t n = 0;
      int64_t flow_cost = 0;
      for (const Node* node = f->front; node != nullptr; node = node->next) {
        Check(node->flow == f, "node's flow");
        Check(node->next != nullptr || node == f->back, "back");
        ++n;
        flow_cost += node->cost_ns;
      }
      Check(n == f->size && flow_cost == f->cost_ns, "flow sums");
      class_cost += f->cost_ns;
      weights += f->weight;
      size += n;
      cost += flow_cost;
    }
    Check(class_cost == c.cost_ns, "class cost");
    size_t class_size = 0;
    for (const Flow* f : c.active) class_size += f->size;
    Check(class_size == c.size, "class size");
    Check(weights <= c.weights + 1e-6 && weights >= c.weights - 1e-6,
          "class weights");
  }
  Check(size == size_ && cost == cost_ns_, "queue sums");
  size_t with_tasks = 0;
  for (const Class& c : classes_) {
    for (const auto& [tenant, flow] : c.flows) {
      with_tasks += flow->size > 0 ? 1 : 0;
      Check(flow->tenant == tenant &&
                &classes_[static_cast<int>(flow->priority)] == &c,
            "a flow is filed under its tenant and class");
    }
  }
  const size_t active = ActiveFlows();
  Check(with_tasks == active, "a flow is active iff it has tasks");
  size_t serving = 0;
  for (const Class& c : classes_) {
    for (const auto& [tenant, flow] : c.flows) serving += flow->serving;
  }
  Check(serving == serving_, "tasks being served");
  Check(FlowRecords() <= 2 * active + serving_ + kSpareFlows,
        "inactive flows are swept");
}

}  // namespace compute
