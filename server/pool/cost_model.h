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
// deadline was refused until calls without one came). Such a call runs
// anyway, as a probe, when it would fit at the best rate its kind has shown
// (the lower of the prior and the lowest rate learned: a kind faster than
// the prior would else stay locked out) and the kind's probe is due
// (TakeProbe): it is charged that estimate, so it is still refused when the
// wait behind other calls would make it late, and its run time is a sample
// like any other. It never runs inline on an I/O thread, where nothing
// stops a task at its deadline. A probe that ends in time makes the next
// one due kMinProbeInterval (10 ms) after it, so a raised rate comes down
// within a few of them (from 40x the prior to under 15x in 6); one that ran
// past its deadline (or ended any other way once admitted) doubles the
// interval, up to kMaxProbeInterval (1 s), so
// on a machine truly slower than the prior, where every probe runs late,
// about one call a second of each kind runs late for it (one in time starts
// the doubling again). A probe is not due again before its own deadline
// has passed (or kMaxProbeInterval, if later) unless ProbeEnded says so, so
// probes with long deadlines do not pile up. The best rate only ever goes
// down, deliberately: a kind that once ran that fast may again, and what
// an optimistic bar costs is bounded by the probes' schedule. Until 2026-12-05
// each such refusal instead moved the rate 1/8 of the way back to the prior (no
// sample: a guess), so on a machine 3x slower than the prior, refusals between
// honest completions held the rate near 1.9x the prior, and a review's
// simulation admitted ~2,200 calls in 60 s that ran to DEADLINE_EXCEEDED
// (measured through the service,
// ServiceTest.OnASlowMachineFewCallsRunLateToProbeIt: 60-67 of 5,000 calls ran
// late; with probes, 5-6); two rules that held those refusals off while calls
// of the kind kept finishing locked out calls of another size or shape that
// fit.
//
// Thread-safety: every method may be called concurrently. Updates are a
// relaxed load and store per kind: two racing samples may lose one, which
// is noise in a running mean, not an error. TakeProbe takes a due probe by
// compare-and-swap, so one caller gets it; two probes in flight at once
// (one ran past the 1 s backstop) may end in either order, and the last
// ProbeEnded sets the schedule, noise of the same kind.
#ifndef COMPUTE_SERVER_POOL_COST_MODEL_H_
#define COMPUTE_SERVER_POOL_COST_MODEL_H_

#include <atomic>
#include <cstdint>
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

  // A call of this kind and `units` whose own estimate is longer than the
  // `time_left` to its deadline: whether it should run anyway, as a probe
  // charged ProbeEstimate() (see above). True when it fits at that estimate
  // and the kind's probe is due at `now`; it is then not due again until
  // the later of its deadline and kMaxProbeInterval, or until ProbeEnded
  // says otherwise. A call that does not fit even there says nothing about
  // a raised rate.
  bool TakeProbe(int kind, double units, absl::Duration time_left,
                 absl::Time now);
  // How a probe taken at TakeProbe and admitted ended, at `now`: in time
  // (OK) makes the next due kMinProbeInterval later; anything else doubles
  // the interval (up to kMaxProbeInterval): run past its deadline, and also
  // cancelled or expired in the queue. Those teach nothing, but until
  // 2026-12-06 they kept the interval, and on a loaded machine, where the
  // server reads a call more than the cancel slack late (CancelOutcome),
  // every probe's client cancel came as no sample and probes stayed 10 ms
  // apart: the doomed calls admitted for probing were bounded by nothing.
  enum class ProbeEnd { kInTime, kLate, kNoSample };
  static constexpr int kProbeEnds = 3;
  void ProbeEnded(int kind, ProbeEnd end, absl::Time now);
  // A probe the pool refused (a full queue, a wait too long for it): it
  // admitted nothing, so the interval stays (doubling it, a busy server
  // left a raised rate one try a second to come down); counted as kNoSample.
  void ProbeRefused(int kind, absl::Time now);

  // Probes of the kind that ended so, ever (compute_task_probes_total):
  // every TakeProbe that said yes ends once, so their sum is the probes
  // taken, less those still running.
  uint64_t ProbesEnded(int kind, ProbeEnd end) const;

  // units x the best rate the kind has shown: the lower of its prior and
  // the lowest rate it has learned.
  absl::Duration ProbeEstimate(int kind, double units) const;

  double SecondsPerUnit(int kind) const;

  static constexpr double kAlpha = 1.0 / 8;
  static constexpr double kMinSampleSeconds = 10e-6;
  static constexpr double kMaxStepFactor = 4.0;
  static constexpr absl::Duration kMinProbeInterval = absl::Milliseconds(10);
  static constexpr absl::Duration kMaxProbeInterval = absl::Seconds(1);

 private:
  size_t kinds_;
  // log(seconds per unit), per kind.
  std::unique_ptr<std::atomic<double>[]> log_coef_;
  std::unique_ptr<double[]> log_prior_;
  // Per kind: when its next probe is due (Unix nanoseconds), and the
  // interval after a probe that ended (nanoseconds, kMin..kMaxProbeInterval).
  std::unique_ptr<std::atomic<int64_t>[]> next_probe_ns_;
  // Per kind: the lowest log(seconds per unit) it has learned, at most the
  // prior's: what a probe must fit at, and is charged.
  std::unique_ptr<std::atomic<double>[]> best_log_coef_;
  std::unique_ptr<std::atomic<int64_t>[]> probe_interval_ns_;
  // Per kind and ProbeEnd: probes that ended so (kind x kProbeEnds + end).
  std::unique_ptr<std::atomic<uint64_t>[]> probes_ended_;
};

}  // namespace compute

#endif  // COMPUTE_SERVER_POOL_COST_MODEL_H_
