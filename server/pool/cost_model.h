// CostModel: how long a task will run, estimated from its own size before it
// is queued, for the scheduler's expected wait and deadline budget.
//
// Each kind of task states its size in its own cost unit (spin: seconds;
// fib: phi^n; blur: pixels; ...), so that run time ~= units x seconds per
// unit. The seconds per unit of each kind start at a prior (measured on the
// development machine) and are learned online from completed tasks:
//
//   log(coef) += alpha x clamp(log(run_time / units) - log(coef), +-log 4)
//
// An exponentially weighted mean in log space (a geometric mean, alpha 1/8:
// it follows a change of machine speed within tens of tasks) whose step is
// clamped, so one outlier (a task descheduled for 100 ms, a page-fault
// storm) moves the estimate by at most 4^(1/8) ~= 19%. The estimate of a
// small task never depends on how big other tasks of its kind were: that
// was the old per-kind mean's flaw (after one fib(42), every fib(10) was
// thought to take 414 ms and refused).
//
// A task that was stopped (cancelled, deadline) ran at least its run time:
// Record it with `lower_bound` and it only ever raises the estimate.
//
// Tasks estimated at under kMinSampleSeconds (10 us), at the lower of the
// prior and the learned rate, are not learned from:
// their run time is mostly the fixed cost of running any task (building its
// result, reading the clock), not their size, and a stream of them would
// set the rate per unit from that overhead. (By the estimate, not the run
// time: filtering on run time kept exactly the tiny tasks that were
// descheduled, and the same stream then taught 113 s per second.) Measured
// before this rule: 37,629 `spin 0s` calls (~0.4 us each, against a fixed cost
// of 0.1 us in spin's units) raised spin's rate to 3.85 s per second, and a 1 s
// spin with a 2 s deadline was then refused on an idle server, and stayed
// refused (a kind locked out, the old estimator's flaw in a new form).
// Estimates of such small tasks keep what larger ones taught; for admission
// they are noise. Until 2026-12-05 the threshold was at the learned rate
// alone, which made a ladder: 10 us sleeps (which take ~60 us) raised
// sleep's rate to 7, at which 3 us sleeps passed the threshold and raised it
// further, then 1 us and 1 ns ones: 77 s per second, after which every
// sleep of 1 s with a 2 s deadline, and other tenants' calls behind two
// sleeps, were refused for as long as no sleep ran.
//
// A call refused because its own estimate is longer than its deadline
// never runs, so it teaches nothing: after a slow spell raised a kind's
// rate (a CPU shared with a burst, a run of narrow blurs), every call of
// that kind with a deadline between the true and the raised estimate was
// refused, on an idle server, for good (reproduced: fib(36) ran in 23 ms,
// but was estimated at 153 ms after 5 s of oversubscription, and a 60 ms
// deadline was refused until calls without one came). Relax() is that
// refusal's sample: it moves the kind's estimate kAlpha of the way back to
// its prior, never below it. So an inflated rate comes down after a few
// refusals (from 8x the prior to 2x in 8) and admitted calls then teach the
// true one, while a call that does not fit even at the prior stays refused
// and moves nothing, and no stream of refusals can pull an estimate under
// the prior.
//
// Thread-safety: every method may be called concurrently. Updates are a
// relaxed load and store per kind: two racing samples may lose one, which
// is noise in a running mean, not an error.
#ifndef COMPUTE_SERVER_POOL_COST_MODEL_H_
#define COMPUTE_SERVER_POOL_COST_MODEL_H_

#include <atomic>
#include <memory>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"

namespace compute {

class CostModel {
 public:
  // One prior per kind: seconds per unit, > 0.
  explicit CostModel(absl::Span<const double> prior_seconds_per_unit);

  int kinds() const { return static_cast<int>(kinds_); }

  // units x the kind's seconds per unit; zero for an unknown kind.
  absl::Duration Estimate(int kind, double units) const;

  // Learns from one finished task of `units` that ran `run_time`. With
  // lower_bound (a stopped task), only an estimate that was too low moves.
  void Record(int kind, double units, absl::Duration run_time,
              bool lower_bound = false);

  // A call of this kind and `units` was refused for its own estimate alone,
  // with `time_left` to its deadline (see above). Only a call that would
  // have fit at the prior relaxes the estimate: one that does not fit even
  // there says nothing about a raised rate, and a stream of such calls
  // would otherwise pin the estimate at the prior on a machine slower than
  // it.
  void Relax(int kind, double units, absl::Duration time_left);

  double SecondsPerUnit(int kind) const;

  static constexpr double kAlpha = 1.0 / 8;
  static constexpr double kMinSampleSeconds = 10e-6;
  static constexpr double kMaxStepFactor = 4.0;

 private:
  size_t kinds_;
  // log(seconds per unit), per kind.
  std::unique_ptr<std::atomic<double>[]> log_coef_;
  std::unique_ptr<double[]> log_prior_;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_COST_MODEL_H_
