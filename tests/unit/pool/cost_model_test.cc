#include "server/pool/cost_model.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"

namespace compute {
namespace {

constexpr int kFib = 0;
constexpr int kSpin = 1;

CostModel TwoKinds() { return CostModel(std::vector<double>{1e-8, 1.0}); }

TEST(CostModelTest, EstimateIsUnitsTimesThePrior) {
  CostModel model = TwoKinds();
  EXPECT_NEAR(absl::ToDoubleSeconds(model.Estimate(kFib, 1e6)), 0.01, 1e-9);
  EXPECT_NEAR(absl::ToDoubleSeconds(model.Estimate(kSpin, 0.25)), 0.25, 1e-9);
  EXPECT_EQ(model.Estimate(7, 1e6), absl::ZeroDuration()) << "unknown kind";
  EXPECT_EQ(model.Estimate(kFib, -5), absl::ZeroDuration());
}

// The old estimator's flaw: one big task of a kind made every small one of
// that kind look big. Per-unit, a big sample says nothing new.
TEST(CostModelTest, OneBigTaskDoesNotMakeSmallOnesLookBig) {
  CostModel model = TwoKinds();
  // fib(42)-sized: 4e8 units that took 4 s, exactly the prior's rate.
  model.Record(kFib, 4e8, absl::Seconds(4));
  EXPECT_NEAR(absl::ToDoubleMilliseconds(model.Estimate(kFib, 1e3)), 0.01,
              1e-6);
}

TEST(CostModelTest, LearnsTheRateOfThisMachine) {
  CostModel model = TwoKinds();
  // This machine runs fib 3x slower than the prior.
  for (int i = 0; i < 100; ++i) {
    model.Record(kFib, 1e6, absl::Milliseconds(30));
  }
  EXPECT_NEAR(model.SecondsPerUnit(kFib), 3e-8, 3e-10);
  EXPECT_NEAR(model.SecondsPerUnit(kSpin), 1.0, 1e-12) << "kinds apart";
}

TEST(CostModelTest, OneOutlierMovesTheEstimateByABoundedStep) {
  CostModel model = TwoKinds();
  model.Record(kSpin, 0.001, absl::Seconds(10));  // 10000x: descheduled
  double moved = model.SecondsPerUnit(kSpin);
  EXPECT_GT(moved, 1.0);
  EXPECT_NEAR(moved,
              std::exp(CostModel::kAlpha * std::log(CostModel::kMaxStepFactor)),
              1e-9);
}

TEST(CostModelTest, StoppedTasksOnlyRaiseTheEstimate) {
  CostModel model = TwoKinds();
  // Stopped after 1 ms of a 1 s spin: says nothing about its full length.
  model.Record(kSpin, 1.0, absl::Milliseconds(1), /*lower_bound=*/true);
  EXPECT_DOUBLE_EQ(model.SecondsPerUnit(kSpin), 1.0);
  // Stopped after 2 s of a "1 s" spin: it takes at least that long.
  model.Record(kSpin, 1.0, absl::Seconds(2), /*lower_bound=*/true);
  EXPECT_GT(model.SecondsPerUnit(kSpin), 1.0);
}

TEST(CostModelTest, IgnoresSamplesWithoutInformation) {
  CostModel model = TwoKinds();
  model.Record(kSpin, 0, absl::Seconds(1));
  model.Record(kSpin, 1, absl::ZeroDuration());
  model.Record(-1, 1, absl::Seconds(1));
  EXPECT_DOUBLE_EQ(model.SecondsPerUnit(kSpin), 1.0);
}

// A stream of tiny tasks (spin 0s: ~0.4 us of fixed cost, 0.1 us in
// spin's units) taught the model 3.85 s per second of spin, and a 1 s spin
// with a 2 s deadline was refused on an idle server from then on. Such
// samples measure the overhead of running a task, not its size.
TEST(CostModelTest, TinyTasksDoNotTeachTheRate) {
  CostModel model = TwoKinds();
  for (int i = 0; i < 40000; ++i) {
    model.Record(kSpin, 1e-7, absl::Nanoseconds(385));
    // Now and then one is descheduled: it must not teach either.
    if (i % 100 == 0) model.Record(kSpin, 1e-7, absl::Microseconds(50));
  }
  EXPECT_DOUBLE_EQ(model.SecondsPerUnit(kSpin), 1.0);
  EXPECT_LE(model.Estimate(kSpin, 1.0), absl::Seconds(1));
  // A task long enough to measure still teaches.
  model.Record(kSpin, 0.001, absl::Milliseconds(2));
  EXPECT_GT(model.SecondsPerUnit(kSpin), 1.0);
}

// Small tasks whose fixed cost the units leave out (sleeps of a few us take
// ~60 us, the timer's slack) raise the rate; at a raised rate smaller ones
// passed the 10 us threshold and raised it further, step by step (a
// reviewer's 10 us, 3 us, 1 us, 1 ns sleeps took sleep's rate to 77). The
// threshold is at the lower of the prior and the learned rate now.
TEST(CostModelTest, SmallTasksCannotRaiseTheRateStepByStep) {
  CostModel model = TwoKinds();
  for (int i = 0; i < 200; ++i) {
    model.Record(kSpin, 11e-6, absl::Microseconds(60));
  }
  const double first_step = model.SecondsPerUnit(kSpin);
  ASSERT_GT(first_step, 4.0);
  for (double units : {4e-6, 2e-6, 1e-6}) {
    for (int i = 0; i < 200; ++i) {
      model.Record(kSpin, units, absl::Microseconds(60));
    }
  }
  EXPECT_DOUBLE_EQ(model.SecondsPerUnit(kSpin), first_step);
}

// Found by scheduler_fuzzer: a NaN size stayed in the mean for good (every
// later estimate of the kind was NaN); an infinite one lowered the rate.
TEST(CostModelTest, IgnoresSizesThatAreNotFinite) {
  CostModel model = TwoKinds();
  model.Record(kSpin, std::nan(""), absl::Seconds(1), /*lower_bound=*/true);
  model.Record(kSpin, std::nan(""), absl::Seconds(1));
  model.Record(kSpin, INFINITY, absl::Seconds(1));
  EXPECT_DOUBLE_EQ(model.SecondsPerUnit(kSpin), 1.0);
  model.Record(kSpin, 1, absl::Seconds(1));
  EXPECT_DOUBLE_EQ(model.SecondsPerUnit(kSpin), 1.0);
}

// A rate raised by a slow spell must come down, but a call refused for its
// own estimate never runs and teaches nothing: now and then such a call
// runs anyway, as a probe, when it would fit at the prior.
TEST(CostModelTest, ACallThatFitsThePriorIsProbedWhenItsKindsProbeIsDue) {
  CostModel model = TwoKinds();
  const absl::Time t0 = absl::UnixEpoch() + absl::Hours(1);
  // A 10 ms spin with 50 ms left fits at the prior (10 ms).
  const absl::Duration left = absl::Milliseconds(50);
  EXPECT_TRUE(model.TakeProbe(kSpin, 0.01, left, t0)) << "the first is due";
  EXPECT_EQ(model.ProbeEstimate(kSpin, 0.01), absl::Milliseconds(10));
  // One at a time: not due again until it ends (or, if it never says so,
  // kMaxProbeInterval later).
  EXPECT_FALSE(model.TakeProbe(kSpin, 0.01, left, t0));
  EXPECT_FALSE(model.TakeProbe(
      kSpin, 0.01, left,
      t0 + CostModel::kMaxProbeInterval - absl::Nanoseconds(1)));
  EXPECT_TRUE(
      model.TakeProbe(kSpin, 0.01, left, t0 + CostModel::kMaxProbeInterval))
      << "a probe that never said how it ended holds the next off a while";
  // Each kind has its own.
  EXPECT_TRUE(model.TakeProbe(kFib, 1e6, left, t0));
  // A probe with a long deadline holds the next off until that deadline has
  // passed, not only kMaxProbeInterval: probes of a slow kind with 5 s left
  // would else run five at a time.
  const absl::Time t1 = t0 + absl::Seconds(10);
  ASSERT_TRUE(model.TakeProbe(kFib, 1e6, absl::Seconds(5), t1));
  EXPECT_FALSE(model.TakeProbe(kFib, 1e6, left, t1 + absl::Seconds(5)));
  EXPECT_TRUE(model.TakeProbe(
      kFib, 1e6, left, t1 + absl::Seconds(5) + CostModel::kMinProbeInterval));
  EXPECT_FALSE(model.TakeProbe(kFib, INFINITY, absl::InfiniteDuration(),
                               t1 + absl::Hours(1)))
      << "an infinite size is never a probe";
  // A call that does not fit even at the prior (100 ms with 50 left) is
  // never probed: it says nothing about a raised rate.
  model.ProbeEnded(kSpin, CostModel::ProbeEnd::kInTime, t0);
  EXPECT_FALSE(model.TakeProbe(kSpin, 0.1, left, t0 + absl::Seconds(5)));
  EXPECT_FALSE(
      model.TakeProbe(kSpin, std::nan(""), left, t0 + absl::Seconds(5)));
  EXPECT_FALSE(model.TakeProbe(-1, 0.01, left, t0 + absl::Seconds(5)));
  EXPECT_FALSE(model.TakeProbe(2, 0.01, left, t0 + absl::Seconds(5)));
  model.ProbeEnded(2, CostModel::ProbeEnd::kLate, t0);  // ignored
}

// A probe that ends in time makes the next due soon: the rate is still too
// high, and a few more samples bring it down. One that ran past its
// deadline doubles the wait for the next, up to kMaxProbeInterval: on a
// machine truly slower than the prior, about one call a second of each kind
// runs late for probing, not every call that fits the prior (the rule
// before, which relaxed the rate at each refusal instead, admitted ~2,200
// late calls in 60 s of a review's simulation).
TEST(CostModelTest, ProbesThatRunLateComeLessOftenAndOnesInTimeSoon) {
  CostModel model = TwoKinds();
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  const absl::Duration left = absl::Milliseconds(50);
  auto due_after = [&](absl::Duration wait) {
    return !model.TakeProbe(kSpin, 0.01, left,
                            t + wait - absl::Nanoseconds(1)) &&
           model.TakeProbe(kSpin, 0.01, left, t + wait);
  };
  ASSERT_TRUE(model.TakeProbe(kSpin, 0.01, left, t));
  model.ProbeEnded(kSpin, CostModel::ProbeEnd::kInTime, t);
  EXPECT_TRUE(due_after(CostModel::kMinProbeInterval));
  absl::Duration interval = CostModel::kMinProbeInterval;
  for (int i = 0; i < 10; ++i) {
    t += absl::Seconds(2);  // each probe ran late, then ended
    model.ProbeEnded(kSpin, CostModel::ProbeEnd::kLate, t);
    interval = std::min(2 * interval, CostModel::kMaxProbeInterval);
    EXPECT_TRUE(due_after(interval)) << i;
  }
  EXPECT_EQ(interval, CostModel::kMaxProbeInterval);
  // Refused, cancelled, never ran: no sample, and no faster probing.
  t += absl::Seconds(2);
  model.ProbeEnded(kSpin, CostModel::ProbeEnd::kNoSample, t);
  EXPECT_TRUE(due_after(CostModel::kMaxProbeInterval));
  // One in time: soon again.
  t += absl::Seconds(2);
  model.ProbeEnded(kSpin, CostModel::ProbeEnd::kInTime, t);
  EXPECT_TRUE(due_after(CostModel::kMinProbeInterval));
  // Probes that end without a sample once admitted double the interval
  // too: on a loaded machine every probe's cancel may come so (see
  // ProbeEnded).
  interval = CostModel::kMinProbeInterval;
  for (int i = 0; i < 3; ++i) {
    t += absl::Seconds(2);
    model.ProbeEnded(kSpin, CostModel::ProbeEnd::kNoSample, t);
    interval *= 2;
    EXPECT_TRUE(due_after(interval)) << i;
  }
  // One the pool refused admitted nothing: the interval stays.
  t += absl::Seconds(2);
  model.ProbeRefused(kSpin, t);
  EXPECT_TRUE(due_after(interval));
  // Each end counted once, by how it ended (compute_task_probes_total).
  EXPECT_EQ(model.ProbesEnded(kSpin, CostModel::ProbeEnd::kInTime), 2u);
  EXPECT_EQ(model.ProbesEnded(kSpin, CostModel::ProbeEnd::kLate), 10u);
  EXPECT_EQ(model.ProbesEnded(kSpin, CostModel::ProbeEnd::kNoSample), 5u);
  EXPECT_EQ(model.ProbesEnded(0, CostModel::ProbeEnd::kLate), 0u);
  EXPECT_EQ(model.ProbesEnded(2, CostModel::ProbeEnd::kLate), 0u) << "none";
}

// A kind faster than its prior (the priors were measured on one machine)
// is probed at the best rate it has shown: at the prior alone, a call that
// fits the kind's true rate but not the prior stayed refused for good after
// a slow spell (a review's counterexample: a kind at 0.6x the prior, calls
// with 0.9x the prior's estimate left).
TEST(CostModelTest, AKindFasterThanItsPriorIsProbedAtItsBestRate) {
  CostModel model = TwoKinds();
  for (int i = 0; i < 60; ++i) model.Record(kSpin, 0.01, absl::Milliseconds(6));
  ASSERT_NEAR(model.SecondsPerUnit(kSpin), 0.6, 0.02);
  for (int i = 0; i < 60; ++i) {
    model.Record(kSpin, 0.01, absl::Milliseconds(80));  // a slow spell
  }
  EXPECT_NEAR(absl::ToDoubleMilliseconds(model.ProbeEstimate(kSpin, 0.01)), 6,
              0.2);
  const absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  EXPECT_TRUE(model.TakeProbe(kSpin, 0.01, absl::Milliseconds(9), t))
      << "fits at 0.6x (6 ms), not at the prior (10 ms)";
}

// What probes are for: after a slow spell raised spin's rate 8x, 10 ms spins
// with 50 ms left are refused by their estimate (80 ms). Probes of them run
// in 10 ms and bring the rate down until they fit; no estimate goes below
// what the samples say.
TEST(CostModelTest, ProbesBringARaisedRateDownToWhatTheyRunAt) {
  CostModel model = TwoKinds();
  for (int i = 0; i < 60; ++i) {
    model.Record(kSpin, 0.01, absl::Milliseconds(80));
  }
  ASSERT_GT(model.SecondsPerUnit(kSpin), 7.5) << "the slow spell: 8x the prior";
  absl::Time t = absl::UnixEpoch() + absl::Hours(1);
  const absl::Duration left = absl::Milliseconds(50);
  int probes = 0;
  while (model.Estimate(kSpin, 0.01) > left && probes < 100) {
    ASSERT_TRUE(model.TakeProbe(kSpin, 0.01, left, t));
    model.Record(kSpin, 0.01, absl::Milliseconds(10));
    t += absl::Milliseconds(10);
    model.ProbeEnded(kSpin, CostModel::ProbeEnd::kInTime, t);
    t += CostModel::kMinProbeInterval;
    ++probes;
  }
  EXPECT_LE(probes, 10) << "from 8x to under 5x, a bounded step a probe";
  EXPECT_GE(model.SecondsPerUnit(kSpin), 1.0);
}

TEST(CostModelTest, APriorThatIsNotFiniteIsReplaced) {
  CostModel model(std::vector<double>{INFINITY, std::nan("")});
  for (int kind : {0, 1}) {
    EXPECT_TRUE(std::isfinite(model.SecondsPerUnit(kind)));
    EXPECT_EQ(model.Estimate(kind, 0), absl::ZeroDuration());
  }
}

}  // namespace
}  // namespace compute
