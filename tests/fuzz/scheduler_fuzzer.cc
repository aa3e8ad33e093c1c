// Fuzzes the scheduler's arithmetic and bookkeeping: the cost model with
// arbitrary samples, then a WorkerPool on a SimulatedClock driven by a
// random sequence of submissions (random cost, bytes, deadline, tenant,
// priority, behaviour), cancels, clock advances, inline runs and releases.
//
// Properties (abort() is the finding):
//   - cost model: an estimate is a finite duration in [0, 1 day]; one
//     sample moves a coefficient by at most the documented clamped step; a
//     lower-bound sample never lowers it;
//   - Submit: a refusal's status matches its reason (expired: DEADLINE_
//     EXCEEDED; a budget: RESOURCE_EXHAUSTED with a pushback in [1 ms, 10 s]);
//   - any snapshot: busy <= workers, queue <= capacity + workers, the bytes
//     held within max_inflight_bytes, costs and waits >= 0;
//   - every accepted task completes exactly once and a refused one never;
//     CANCELLED only after a Cancel that found it; DEADLINE_EXCEEDED only
//     with a deadline the clock has passed; after Shutdown nothing is held
//     and completed == accepted.
// The pool's own invariant checks (CheckInvariantsLocked) are compiled in:
// the fuzz build has no NDEBUG.
//
// The workers are real threads, so an input's interleaving is not fixed:
// the properties are ones no interleaving may break.
#include <fuzzer/FuzzedDataProvider.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "server/pool/clock.h"
#include "server/pool/cost_model.h"
#include "server/pool/sync.h"
#include "server/pool/worker_pool.h"

namespace {

using compute::CancelToken;
using compute::CostModel;
using compute::Mutex;
using compute::MutexLock;
using compute::Notification;
using compute::PoolOptions;
using compute::PoolStats;
using compute::Priority;
using compute::RefusalReason;
using compute::SimulatedClock;
using compute::SubmitRefusal;
using compute::TaskHandle;
using compute::TaskOptions;
using compute::TaskOutcome;
using compute::TaskResult;
using compute::WorkerPool;

[[noreturn]] void Fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "scheduler_fuzzer: %s %s\n", what, detail.c_str());
  std::abort();
}

// Any double, NaN and infinities included.
double RawDouble(FuzzedDataProvider& in) {
  uint64_t bits = in.ConsumeIntegral<uint64_t>();
  double d;
  std::memcpy(&d, &bits, sizeof(d));
  return d;
}

void CheckEstimate(const CostModel& model, int kind, double units) {
  absl::Duration d = model.Estimate(kind, units);
  if (d < absl::ZeroDuration() || d > absl::Hours(24)) {
    Fail("estimate outside [0, 1 day]:", absl::FormatDuration(d));
  }
}

void FuzzCostModel(FuzzedDataProvider& in) {
  const int kinds = in.ConsumeIntegralInRange(1, 4);
  std::vector<double> priors;
  for (int i = 0; i < kinds; ++i) priors.push_back(RawDouble(in));
  CostModel model(priors);
  const double max_log_step =
      CostModel::kAlpha * std::log(CostModel::kMaxStepFactor) * (1 + 1e-9);
  const int samples = in.ConsumeIntegralInRange(0, 32);
  for (int i = 0; i < samples && in.remaining_bytes() > 0; ++i) {
    const int kind = in.ConsumeIntegralInRange(-1, kinds);
    const double units = RawDouble(in);
    const absl::Duration run_time =
        absl::Nanoseconds(in.ConsumeIntegral<int64_t>());
    const bool lower_bound = in.ConsumeBool();
    const double before = model.SecondsPerUnit(kind);
    model.Record(kind, units, run_time, lower_bound);
    const double after = model.SecondsPerUnit(kind);
    const std::string sample = absl::StrCat(
        "kind ", kind, " units ", units, " run_time ",
        absl::FormatDuration(run_time), lower_bound ? " (lower bound)" : "",
        ": ", before, " -> ", after, " s/unit");
    if (std::isfinite(before) && before > 0) {
      if (!std::isfinite(after) || !(after > 0)) {
        Fail("a sample made a coefficient non-finite or <= 0:", sample);
      }
      // (Subnormal rates, from a subnormal prior, are too coarse to hold
      // the step exactly.)
      if (std::isnormal(before) && std::isnormal(after) &&
          std::fabs(std::log(after) - std::log(before)) > max_log_step) {
        Fail("a sample moved a coefficient more than the clamped step:",
             sample);
      }
      if (lower_bound && after < before) {
        Fail("a lower-bound sample lowered a coefficient:", sample);
      }
    }
    for (int k = 0; k < kinds; ++k) {
      for (double u : {0.0, 1.0, 1e9, 1e300}) CheckEstimate(model, k, u);
    }
    // Probes: any size, time left and time (infinite ones included) is
    // answered without overflow, and a probe is never taken for a call
    // that does not fit at the kind's best rate.
    const absl::Time now =
        absl::FromUnixNanos(in.ConsumeIntegral<int64_t>()) +
        (in.ConsumeBool() ? absl::InfiniteDuration() : absl::ZeroDuration());
    if (model.TakeProbe(kind, units, run_time, now) &&
        model.ProbeEstimate(kind, units) > run_time) {
      Fail("a probe for a call that does not fit at the kind's best rate:",
           sample);
    }
    model.ProbeEnded(
        kind, static_cast<CostModel::ProbeEnd>(in.ConsumeIntegralInRange(0, 2)),
        now);
  }
}

enum class Behaviour { kGated, kOk, kError, kThrow };

struct Task {
  TaskOptions options;
  Behaviour behaviour = Behaviour::kOk;
  bool accepted = false;
  bool cancel_found_it = false;  // a Cancel returned true for it
  TaskHandle handle;
  Notification release;
  Mutex mu;
  int done_count ABSL_GUARDED_BY(mu) = 0;
  TaskOutcome outcome ABSL_GUARDED_BY(mu) = TaskOutcome::kOk;
};

compute::TaskFn MakeFn(Task* task) {
  return [task](const CancelToken& token) -> absl::Status {
    switch (task->behaviour) {
      case Behaviour::kGated:
        // Polls both: the token has no wake-up of its own.
        while (!task->release.HasBeenNotified()) {
          if (token.stop_requested()) return absl::CancelledError("stopped");
          task->release.WaitForNotificationWithTimeout(absl::Milliseconds(1));
        }
        return absl::OkStatus();
      case Behaviour::kOk:
        return absl::OkStatus();
      case Behaviour::kError:
        return absl::InternalError("task error");
      case Behaviour::kThrow:
        throw std::runtime_error("task threw");
    }
    return absl::OkStatus();
  };
}

void CheckStats(const PoolStats& s) {
  if (s.busy > s.workers || s.workers > s.max_workers) {
    Fail("busy > workers or workers > max_workers");
  }
  if (s.queue_depth > s.queue_capacity + static_cast<size_t>(s.max_workers)) {
    Fail("queue deeper than capacity + workers");
  }
  if (s.inflight_bytes < 0 ||
      (s.max_inflight_bytes > 0 && s.inflight_bytes > s.max_inflight_bytes)) {
    Fail("bytes held outside [0, max_inflight_bytes]");
  }
  if (s.queued_cost < absl::ZeroDuration() ||
      s.running_cost < absl::ZeroDuration() ||
      s.expected_wait < absl::ZeroDuration()) {
    Fail("a negative cost or wait");
  }
}

void CheckRefusal(const absl::Status& status, const SubmitRefusal& why) {
  const bool budget = why.reason != RefusalReason::kExpired &&
                      why.reason != RefusalReason::kShutDown;
  absl::StatusCode want = absl::StatusCode::kResourceExhausted;
  if (why.reason == RefusalReason::kExpired) {
    want = absl::StatusCode::kDeadlineExceeded;
  }
  if (why.reason == RefusalReason::kShutDown) {
    want = absl::StatusCode::kUnavailable;
  }
  if (status.code() != want) {
    Fail("refusal status does not match its reason:",
         std::string(compute::RefusalReasonName(why.reason)) + " " +
             status.ToString());
  }
  if (budget && (why.retry_after < absl::Milliseconds(1) ||
                 why.retry_after > absl::Seconds(10))) {
    Fail("budget refusal's pushback outside [1 ms, 10 s]:",
         absl::FormatDuration(why.retry_after));
  }
}

void FuzzPool(FuzzedDataProvider& in) {
  SimulatedClock clock;
  PoolOptions options;
  options.max_workers = in.ConsumeIntegralInRange(1, 2);
  options.min_workers = options.max_workers;
  options.queue_capacity = in.ConsumeIntegralInRange<size_t>(0, 6);
  options.max_inflight_bytes =
      in.ConsumeBool() ? 0 : in.ConsumeIntegralInRange<int64_t>(1, 1 << 20);
  options.target_queue_wait =
      in.ConsumeBool()
          ? absl::InfiniteDuration()
          : absl::Microseconds(in.ConsumeIntegralInRange(1, 2000000));
  options.overload_interval =
      absl::Microseconds(in.ConsumeIntegralInRange(1, 500000));
  options.inline_max_cost =
      absl::Microseconds(in.ConsumeIntegralInRange(0, 100));
  options.clock = &clock;
  auto created = WorkerPool::Create(options);
  if (!created.ok())
    Fail("valid options refused:", created.status().ToString());
  std::unique_ptr<WorkerPool> pool = std::move(*created);

  std::vector<std::unique_ptr<Task>> tasks;
  int inline_runs = 0;
  // Drains with a deadline, begun on threads of their own amid the other
  // operations: what they take out as unable to finish races the cancels,
  // the timer's expiries, the workers and time passing (later Submits are
  // refused shut_down); a second one, as a second SIGTERM, may bring the
  // first one's deadline forward. Joined after the final Shutdown below.
  std::vector<std::thread> drains;
  const int ops = in.ConsumeIntegralInRange(0, 48);
  for (int op = 0; op < ops && in.remaining_bytes() > 0; ++op) {
    switch (in.ConsumeIntegralInRange(0, 6)) {
      case 0:
      case 1: {  // Submit, or (1) try inline first
        auto task = std::make_unique<Task>();
        Task* t = task.get();
        tasks.push_back(std::move(task));
        TaskOptions& o = t->options;
        o.cost = absl::Microseconds(in.ConsumeIntegralInRange(0, 2000000));
        o.bytes = in.ConsumeIntegralInRange<int64_t>(0, 1 << 20);
        if (in.ConsumeBool()) {
          o.deadline =
              clock.Now() +
              absl::Microseconds(in.ConsumeIntegralInRange(-100000, 5000000));
        }
        o.admit_by_deadline = in.ConsumeBool();
        o.tenant = std::string(
            1, static_cast<char>('a' + in.ConsumeIntegralInRange(0, 2)));
        o.priority = static_cast<Priority>(in.ConsumeIntegralInRange(0, 2));
        o.weight = in.PickValueInArray({0.25, 1.0, 3.0});
        t->behaviour = static_cast<Behaviour>(in.ConsumeIntegralInRange(0, 3));
        if (t->behaviour == Behaviour::kGated && in.ConsumeBool()) {
          t->behaviour = Behaviour::kOk;  // gating inline would block us
        }
        if (in.ConsumeBool() && t->behaviour != Behaviour::kGated) {
          compute::TaskFn fn = MakeFn(t);
          compute::DoneFn done = [t](const TaskResult& r) {
            MutexLock lock(&t->mu);
            ++t->done_count;
            t->outcome = r.outcome;
          };
          if (pool->RunInlineIfFree(fn, done, o)) {
            ++inline_runs;
            t->accepted = true;
            break;
          }
        }
        SubmitRefusal why;
        absl::StatusOr<TaskHandle> handle = pool->Submit(
            MakeFn(t),
            [t](const TaskResult& r) {
              MutexLock lock(&t->mu);
              ++t->done_count;
              t->outcome = r.outcome;
            },
            o, &why);
        if (handle.ok()) {
          t->accepted = true;
          t->handle = *handle;
        } else {
          CheckRefusal(handle.status(), why);
        }
        break;
      }
      case 2: {  // Cancel one
        if (tasks.empty()) break;
        Task* t =
            tasks[in.ConsumeIntegralInRange<size_t>(0, tasks.size() - 1)].get();
        if (t->accepted && t->handle.valid() && pool->Cancel(t->handle)) {
          t->cancel_found_it = true;
        }
        break;
      }
      case 3:  // time passes
        clock.Advance(
            absl::Microseconds(in.ConsumeIntegralInRange(0, 3000000)));
        break;
      case 6: {  // a drain begins
        if (drains.size() == 2) break;
        const absl::Time deadline =
            clock.Now() +
            absl::Microseconds(in.ConsumeIntegralInRange(0, 5000000));
        drains.emplace_back([&pool, deadline] { pool->Shutdown(deadline); });
        break;
      }
      case 4: {  // a gated task may finish
        if (tasks.empty()) break;
        tasks[in.ConsumeIntegralInRange<size_t>(0, tasks.size() - 1)]
            ->release.Notify();
        break;
      }
      default:
        CheckStats(pool->Stats());
        break;
    }
  }

  for (auto& t : tasks) t->release.Notify();
  pool->Shutdown(absl::InfiniteFuture());
  for (std::thread& drain : drains) drain.join();
  PoolStats s = pool->Stats();
  CheckStats(s);
  uint64_t accepted = 0;
  for (auto& t : tasks) {
    MutexLock lock(&t->mu);
    if (t->done_count != (t->accepted ? 1 : 0)) {
      Fail(t->accepted ? "an accepted task did not complete exactly once"
                       : "a refused task completed");
    }
    if (!t->accepted) continue;
    ++accepted;
    if (t->outcome == TaskOutcome::kCancelled && !t->cancel_found_it) {
      Fail("cancelled without a Cancel");
    }
    if (t->outcome == TaskOutcome::kDeadlineExceeded &&
        !(t->options.deadline <= clock.Now())) {
      Fail("deadline exceeded before its deadline");
    }
  }
  if (s.queue_depth != 0 || s.busy != 0 || s.inflight_bytes != 0) {
    Fail("the pool holds work after Shutdown");
  }
  if (s.accepted != accepted || s.completed_total() != accepted) {
    Fail("accepted / completed counts disagree:",
         std::to_string(s.accepted) + " " +
             std::to_string(s.completed_total()) + " " +
             std::to_string(accepted) + " (inline " +
             std::to_string(inline_runs) + ")");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  // The input's last byte picks the half (odd: the cost model). The corpus
  // holds seeds of each: pool1..pool4 reach the pool's operations.
  if (in.ConsumeBool()) {
    FuzzCostModel(in);
  } else {
    FuzzPool(in);
  }
  return 0;
}
