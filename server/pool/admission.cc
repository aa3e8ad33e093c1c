#include "server/pool/admission.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace compute {

namespace {

absl::Duration ClampRetry(absl::Duration d) {
  return std::clamp(d, absl::Milliseconds(1), absl::Seconds(10));
}

// The times at which the places free up (what each running task has left;
// zero for a free place), sorted; empty while a worker is free for a new
// task, which then waits for nothing.
PoolLoad::Left FreeUpTimes(const PoolLoad& load) {
  PoolLoad::Left left;
  const int free_places = std::max(0, load.max_workers - load.running);
  if (load.queue.size() < static_cast<size_t>(free_places)) return left;
  load.running_left_ns(&left);
  // The places without a worker's task: free, or running an inline task
  // (microseconds).
  left.resize(std::max(left.size(), static_cast<size_t>(load.max_workers)), 0);
  std::sort(left.begin(), left.end());
  return left;
}

// When a new task behind `queued_cost_ns` of queued work would start, the
// places freeing up at `left` (FreeUpTimes; empty: now). The workers are
// filled like water: the start t is the least such that the time the
// workers free up before t holds the queued work, sum over workers of
// max(0, t - left) = queued, so t = (queued + the left times under t) / the
// number of them.
int64_t StartAfter(int64_t queued_cost_ns, const PoolLoad::Left& left) {
  int64_t sum = queued_cost_ns;
  for (size_t n = 1; n <= left.size(); ++n) {
    sum += left[n - 1];
    const int64_t start = sum / static_cast<int64_t>(n);
    if (n == left.size() || start <= left[n]) return start;
  }
  return 0;  // no place is busy
}

// An expected wait for a refusal's message.
std::string WaitText(absl::Duration wait) {
  return wait == Admission::kNoStart
             ? "without end (higher priority classes keep every worker busy)"
             : absl::StrCat(absl::ToInt64Milliseconds(wait), " ms");
}

absl::Duration WaitFor(int64_t queued_cost_ns, const PoolLoad& load) {
  return absl::Nanoseconds(StartAfter(queued_cost_ns, FreeUpTimes(load)));
}

}  // namespace

absl::Duration Admission::DeadlineMargin(absl::Duration wait) {
  return wait * kDeadlineMarginOfWait;
}

absl::Duration Admission::MemoryRetryFloor() const {
  return budgets_.target_queue_wait == absl::InfiniteDuration()
             ? kMemoryRetryFloorWithoutTarget
             : budgets_.target_queue_wait;
}

absl::Duration Admission::ExpectedWait(const PoolLoad& load) {
  return WaitFor(load.queue.cost_ns(), load);
}

absl::Duration Admission::ExpectedWaitWhileOthersSend(
    const TaskOptions& options, const PoolLoad& load,
    bool others_keep_sending) {
  const PoolLoad::Left left = FreeUpTimes(load);
  if (left.empty()) return absl::ZeroDuration();
  const FairQueue::WorkAhead ahead = load.queue.WorkAheadOf(
      options.tenant, options.priority, options.weight, load.max_workers,
      load.now_ns, others_keep_sending);
  auto start_after = [&](int64_t wait_ns) {
    return StartAfter(ahead.At(wait_ns), left);
  };
  if (!ahead.DependsOnWait()) return absl::Nanoseconds(start_after(0));
  // The wait W is where start_after(W) = W: the others send for as long as
  // the task waits. start_after(W) - W is concave (the work ahead grows
  // ever slower with W, or linearly with the classes above; the start
  // grows ever slower with the work, as more places share it), so it is
  // >= 0 below the wait and <= 0 above it: bisect between lo and hi,
  // keeping start_after(hi) <= hi.
  // lo: the start after what is queued now (start_after is at least that
  // anywhere).
  int64_t lo = StartAfter(ahead.AsQueued(), left);
  if (start_after(lo) <= lo) return absl::Nanoseconds(lo);
  // hi: the start after what the class's flows would be served if they all
  // kept sending. With the classes above sending r per ns, the work at W is
  // at most AtMost + r x W; the places free up at `left`, so the start after
  // x of work is at most (x + their sum) / their number N (the level if
  // every place took part), and the wait at most (AtMost + sum) / (N - r):
  // none when r >= N.
  int64_t hi = StartAfter(ahead.AtMost(), left);
  const double higher_rate = ahead.HigherRate();
  if (higher_rate > 0) {
    const double places = static_cast<double>(left.size());
    if (higher_rate >= places) return kNoStart;
    const double left_sum = static_cast<double>(
        std::accumulate(left.begin(), left.end(), int64_t{0}));
    const double bound = (static_cast<double>(ahead.AtMost()) + left_sum) /
                         (places - higher_rate);
    if (bound >= FairQueue::kMaxCostAheadNs) return kNoStart;
    hi = static_cast<int64_t>(std::ceil(bound));
  }
  for (int step = 0;
       step < kWaitSteps && hi - lo > std::max(kWaitPrecisionNs, lo / 64);
       ++step) {
    const int64_t mid = lo + (hi - lo) / 2;
    (start_after(mid) <= mid ? hi : lo) = mid;
  }
  return absl::Nanoseconds(hi);
}

absl::Status Admission::Check(const TaskOptions& options, absl::Time now,
                              const PoolLoad& load, SubmitRefusal* why,
                              FairQueue::Node** victim_out) const {
  *why = SubmitRefusal();
  *victim_out = nullptr;
  const FairQueue& queue = load.queue;
  const bool has_deadline = options.deadline != absl::InfiniteFuture();
  if (has_deadline && options.deadline <= now) {
    why->reason = RefusalReason::kExpired;
    return absl::DeadlineExceededError("deadline had already passed");
  }
  const int64_t cost_ns = absl::ToInt64Nanoseconds(options.cost);
  // What the classes above send, while they keep the workers (else 0).
  const double higher_rate = queue.HigherRate(options.priority, load.now_ns);
  // A standing queue holds the call's class to the target (CoDel's state);
  // critical calls are above the rule.
  const bool standing = overloaded_ && options.priority != Priority::kCritical;
  // The expected wait only where a check needs it.
  auto expected_wait = [&] {
    // While a queue stands, the tenants with queued calls keep sending;
    // else, each sends what it has been sending lately.
    // Not for critical calls: their class goes ahead of the standing queue,
    // and the deadline's quick bound below must bound their wait (until
    // 2026-12-06 a critical call with a 25 ms deadline was admitted by the
    // bound and one with 24 ms refused for an expected 325 ms: a review's
    // test).
    why->expected_wait =
        ExpectedWaitWhileOthersSend(options, load, /*others_keep_sending=*/
                                    standing);
    why->retry_after = ClampRetry(why->expected_wait);
    // A wait that counts the classes above at their rate lasts only while
    // they keep the workers, which may end at any moment: its pushback is
    // at most kNoStartRetry. (With up to 10 s, a tenant beside a critical
    // Poisson stream at 0.95 of the workers got a third to two thirds fewer
    // calls OK than before the rate was counted: a review's simulation.)
    if (higher_rate > 0) {
      why->retry_after = std::min(why->retry_after, kNoStartRetry);
    }
    return why->expected_wait;
  };
  const bool check_deadline = options.admit_by_deadline && has_deadline;
  auto refuse_by_deadline = [&](absl::Duration wait) {
    why->reason = RefusalReason::kDeadline;
    why->own_cost = options.cost > options.deadline - now;
    if (wait == kNoStart) {
      return absl::ResourceExhaustedError(absl::StrFormat(
          "deadline cannot be met: calls of higher priority classes keep "
          "every worker busy (arriving at %.2f workers' worth of %d), and "
          "only %d ms left",
          higher_rate, load.max_workers,
          absl::ToInt64Milliseconds(options.deadline - now)));
    }
    const absl::Duration margin = DeadlineMargin(wait);
    return absl::ResourceExhaustedError(absl::StrCat(
        "deadline cannot be met: expected ",
        absl::ToInt64Milliseconds(wait + margin + options.cost), " ms (",
        absl::ToInt64Milliseconds(wait), " ms queue wait + ",
        absl::ToInt64Milliseconds(margin), " ms margin + ",
        absl::ToInt64Milliseconds(options.cost), " ms run) but only ",
        absl::ToInt64Milliseconds(options.deadline - now), " ms left"));
  };
  // A call whose own cost alone is longer than its time left fits after no
  // wait: it is refused as such before any budget, so that its answer says
  // not to retry (own_cost). Until 2026-12-06 a full queue (or any spent
  // budget) refused it first with the queue's pushback, which gRPC's retry
  // policy waited out to DEADLINE_EXCEEDED (a review's repro).
  if (check_deadline && options.cost > options.deadline - now) {
    return refuse_by_deadline(expected_wait());
  }
  // A budget is spent: a tenant that this call would take over its fair
  // share of its class's queue is the one refused ("tenant_share", the rule
  // under which a queued task is displaced for a tenant under its share);
  // else the budget's reason. The share is counted in the budget's own
  // measure: places (tasks) for the queue's count, cost for the time
  // budgets. (The memory budget names no tenant: the queue does not count
  // bytes per tenant, and by cost it blamed a tenant holding kilobytes
  // beside one holding the budget.)
  auto refuse = [&](RefusalReason reason, std::string message,
                    FairQueue::Measure measure) {
    expected_wait();
    const bool tasks = measure == FairQueue::Measure::kTasks;
    const int64_t extra = tasks ? 1 : cost_ns;
    FairQueue::Share share = queue.ShareOf(options.tenant, options.priority,
                                           options.weight, extra, measure);
    if (reason != RefusalReason::kMemory && queue.size() > 0 &&
        share.held + extra > share.fair && share.held > 0) {
      why->reason = RefusalReason::kTenantShare;
      return absl::ResourceExhaustedError(
          tasks ? absl::StrCat("tenant over its fair share: ", share.held,
                               " queued calls and this one would pass its "
                               "fair share of ",
                               share.fair, " places, while ", message)
                : absl::StrCat(
                      "tenant over its fair share: ", share.held / 1000,
                      " us of queued work and this call's ", cost_ns / 1000,
                      " us would pass its fair share of ", share.fair / 1000,
                      " us, while ", message));
    }
    why->reason = reason;
    return absl::ResourceExhaustedError(message);
  };
  const size_t capacity = budgets_.queue_capacity;
  const int idle = load.max_workers - load.running;
  if (queue.size() >= capacity + static_cast<size_t>(idle)) {
    // Make room by displacing queued work that matters less: work of a
    // lower class (sheddable first), so a full queue of less critical work
    // never refuses more critical work; else, for a tenant under its share,
    // work of the tenant furthest over its own.
    // Shares of places: the count is what is spent.
    constexpr FairQueue::Measure kPlaces = FairQueue::Measure::kTasks;
    FairQueue::Node* victim = queue.NewestBelow(options.priority, kPlaces);
    FairQueue::Share share = queue.ShareOf(options.tenant, options.priority,
                                           options.weight, 1, kPlaces);
    if (victim == nullptr && share.held + 1 <= share.fair) {
      victim = queue.NewestOfTheMostOverShare(options.tenant, options.priority,
                                              options.weight, 1, kPlaces);
    }
    if (victim == nullptr) {
      // A task handed to an idle worker waits in the queue until that
      // worker wakes: say so, or "0 of 1 workers busy" reads as idle.
      return refuse(
          RefusalReason::kQueueFull,
          absl::StrCat(
              "queue full: ", queue.size(), " tasks queued (capacity ",
              capacity,
              idle > 0
                  ? absl::StrCat(", and ", idle, " for idle workers to start")
                  : "",
              "), ", load.running, " of ", load.max_workers, " workers busy"),
          kPlaces);
    }
    *victim_out = victim;  // taken out only if every other budget admits
  }
  const int64_t max_bytes = budgets_.max_inflight_bytes;
  // Less critical work gives way to more critical work for its bytes too:
  // a victim chosen above frees its bytes; if they are not enough (or none
  // was needed), the newest task of a lower class that holds enough is
  // displaced instead (NewestBelow with min_bytes; until 2026-12-06 a
  // critical call was refused "memory" while a default one's bytes waited
  // in the queue, and later while they waited behind a sheddable call of
  // no bytes that was the only one looked at: reviews' repros). Any queued
  // task frees a place too. One victim at most: two that would free
  // enough together are not combined.
  auto over = [&](int64_t freed) {
    return load.task_bytes - freed + load.held_bytes + options.bytes >
           max_bytes;
  };
  int64_t freed = *victim_out != nullptr ? (*victim_out)->bytes : 0;
  if (max_bytes > 0 && over(freed)) {
    const int64_t needed =
        load.task_bytes + load.held_bytes + options.bytes - max_bytes;
    FairQueue::Node* victim =
        queue.NewestBelow(options.priority, FairQueue::Measure::kCost, needed);
    if (victim != nullptr) {
      *victim_out = victim;  // taken out only if every other budget admits
      freed = victim->bytes;
    }
  }
  if (max_bytes > 0 && over(freed)) {
    *victim_out = nullptr;
    absl::Status refused =
        refuse(RefusalReason::kMemory,
               absl::StrCat("memory budget spent: ", load.task_bytes,
                            " bytes held by queued and running tasks + ",
                            load.held_bytes, " by results not yet delivered + ",
                            options.bytes, " for this one > limit ", max_bytes),
               FairQueue::Measure::kCost);
    // Bytes come back as running tasks end (the expected wait) and as
    // clients read their answers, which nothing here can time: with workers
    // idle and the budget held by slow readers, the expected wait alone said
    // 1 ms, and each retry sends its whole request again. Whichever reason
    // the refusal names (the memory budget, or the tenant over its share
    // while it is spent). At least the floor, over the expected wait's own
    // pushback (at most kNoStartRetry when the classes above count at
    // their rate).
    why->retry_after =
        ClampRetry(std::max(why->retry_after, MemoryRetryFloor()));
    return refused;
  }
  const absl::Duration target = budgets_.target_queue_wait;
  const bool sheddable = options.priority == Priority::kSheddable &&
                         target != absl::InfiniteDuration();
  if (!standing && !check_deadline && !sheddable) return absl::OkStatus();
  if (!standing && !sheddable && higher_rate < load.max_workers &&
      queue.OwesNothing(options.tenant, options.priority)) {
    // The call starts at its class's virtual time, so what the others of
    // its class send meanwhile does not go first: the queued cost and the
    // full cost of the running tasks (which bounds what they have left),
    // over the workers that the classes above leave it (all but their
    // recent rate), bound its wait, and a deadline beyond that bound needs
    // no exact wait (the common case).
    const absl::Duration bound = absl::Nanoseconds(
        static_cast<double>(queue.cost_ns() + load.running_full_cost_ns) /
        (load.max_workers - higher_rate));
    if (bound + DeadlineMargin(bound) + options.cost <=
        options.deadline - now) {
      return absl::OkStatus();
    }
  }
  const absl::Duration wait = expected_wait();
  absl::Status refusal;
  if (sheddable && wait > target / 2) {
    refusal = refuse(
        RefusalReason::kShed,
        absl::StrCat("shedding sheddable work: expected wait ", WaitText(wait),
                     " > ", absl::ToInt64Milliseconds(target / 2),
                     " ms (half the target)"),
        FairQueue::Measure::kCost);
  } else if (standing && wait > target) {
    refusal = refuse(RefusalReason::kOverload,
                     absl::StrCat("overloaded: standing queue, expected wait ",
                                  WaitText(wait), " > target ",
                                  absl::ToInt64Milliseconds(target), " ms"),
                     FairQueue::Measure::kCost);
  } else if (check_deadline && wait + DeadlineMargin(wait) + options.cost >
                                   options.deadline - now) {
    refusal = refuse_by_deadline(wait);
  }
  if (!refusal.ok()) *victim_out = nullptr;
  return refusal;
}

void Admission::ObserveQueueWait(absl::Duration wait, int64_t now_ticks,
                                 bool sparse) {
  const absl::Duration target = budgets_.target_queue_wait;
  if (target == absl::InfiniteDuration()) return;
  if (wait <= target) {
    if (sparse) return;
    above_target_until_ticks_ = 0;
    if (wait < target / 2) overloaded_ = false;
    return;
  }
  if (above_target_until_ticks_ == 0) {
    above_target_until_ticks_ = now_ticks + budgets_.overload_interval_ticks;
  } else if (now_ticks >= above_target_until_ticks_) {
    overloaded_ = true;
  }
}

}  // namespace compute
