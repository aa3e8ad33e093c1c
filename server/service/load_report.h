// LoadReporter: the server's load, attached to every Run response so that
// clients and proxies can balance replicas by it (gRFC A51: per-call load
// reports in trailing metadata).
//
// Which answers: every refusal (RESOURCE_EXHAUSTED, UNAVAILABLE), and at
// least one answer per `attach_interval` (1 ms) on each thread, not every
// answer: each trailer costs gRPC ~8% of a trivial call (measured: 113k
// trivial calls/s without, 94k with both on every answer). A client calling
// at 1,000/s or less still gets one on nearly every answer from a lightly
// loaded server; a busy one hears it thousands of times a second.
//
// Two trailers, the same numbers:
//   endpoint-load-metrics-bin  an xds.data.orca.v3.OrcaLoadReport, as gRPC's
//                              weighted_round_robin and Envoy read it
//                              (gRPC 1.51 hides this key from applications,
//                              so its own client cannot read it)
//   compute-load               the same as text any client can read:
//     "application_utilization=1.25,cpu_utilization=0.97,rps_fractional=398,
//      eps=0.5,queue_depth=12,expected_wait_ms=30,workers=4"
// where
//   application_utilization = busy workers / --workers + expected wait /
//                             --target_queue_wait (100 ms when that is inf),
//                             where the expected wait is what a new call
//                             would wait: queued work and what the running
//                             tasks have left, per worker. 1 = every worker
//                             busy with tasks about to end, 2 = and a wait
//                             as long as the target; one worker running a
//                             3 s task with 2.8 s left reads 1 + 28. What to
//                             balance on
//   cpu_utilization         = the process's CPU time / (wall time x CPUs)
//                             over the rate window
//   rps_fractional, eps     = tasks completed, and calls that failed or were
//                             refused (cancels not counted), per second over
//                             the rate window. So eps passes rps when a
//                             replica refuses more than it completes (ORCA
//                             reads errors as a part of requests; kept so
//                             on purpose): gRFC A58 weighs a replica by
//                             qps / (utilization + eps / qps x penalty), and
//                             counting refusals as requests made a replica
//                             weigh more the more it refused (serving
//                             100/s and refusing 900/s: 417 against a
//                             healthy peer's 125, a review's arithmetic)
//   (the rate window: the last 1-2 s, kRateWindow to twice it, while
//   reports come often; from the start, in the first second; reports are
//   made as calls come, so after a spell of more than a second without one the
//   window starts kRateWindow ago, what happened in the spell spread evenly
//   over it (until 2026-12-05 it covered the whole spell: after 12 s idle,
//   32 calls/s read 2.6-4.2 for a second). Until 2026-12-05 the rates
//   were over the time since the last report, 10-40 ms under load: at a steady
//   54 calls/s a reviewer read rps_fractional from 35.6 to 99.8, and a weighted
//   balancer, which keeps only each endpoint's latest report, weighed by
//   that noise.)
//   queue_depth, expected_wait_ms = the pool's, now (named metrics)
//   workers                 = --workers, the most tasks it runs at once (a
//                             named metric): what one more call adds to the
//                             utilization, 1 / workers, for a client that
//                             predicts it (client/least_loaded.h)
//
// Why cached: every call reads it, and a fresh one takes the pool's lock
// and a getrusage; one at most every `max_age` (10 ms) costs nothing per
// call but copying two short strings, and is fresh enough to balance on.
//
// Thread-safety: Current() may be called from any thread.
#ifndef COMPUTE_SERVER_SERVICE_LOAD_REPORT_H_
#define COMPUTE_SERVER_SERVICE_LOAD_REPORT_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/time/time.h"
#include "server/pool/sync.h"
#include "server/pool/worker_pool.h"

namespace compute::service {

inline constexpr char kOrcaTrailer[] = "endpoint-load-metrics-bin";
inline constexpr char kLoadTrailer[] = "compute-load";

class LoadReporter {
 public:
  struct Report {
    std::string orca;  // serialized OrcaLoadReport
    std::string text;  // compute-load
  };

  // `pool` must outlive this; `cpus` (> 0, fractional under a CPU quota)
  // scales cpu_utilization.
  LoadReporter(const WorkerPool& pool, double cpus,
               absl::Duration attach_interval = absl::Milliseconds(1),
               absl::Duration max_age = absl::Milliseconds(10));

  // Whether an answer on this thread should carry the report now: true at
  // most once per attach_interval per thread (always when it is 0).
  bool Due();

  // The latest report, made now if the last one is older than max_age.
  std::shared_ptr<const Report> Current();

  // Makes a report from `stats`, with rates over `elapsed` since `before`
  // and `cpu_seconds` of process CPU used in it. Exposed for tests.
  static Report Make(const PoolStats& stats, const PoolStats& before,
                     absl::Duration elapsed, double cpu_seconds, double cpus,
                     absl::Duration target_queue_wait);

  // What the rates are made from, at one time: counts as doubles, so that
  // one between two can be estimated (Between).
  struct Counts {
    absl::Time at;
    double completed = 0;  // tasks completed
    double errors = 0;     // failed or refused (cancels not counted)
    double cpu_seconds = 0;
  };
  static Counts CountsOf(const PoolStats& stats, absl::Time at,
                         double cpu_seconds);
  // `a` moved to `at` (between a.at and b.at), its counts and CPU time as
  // if they had grown evenly from a's to b's.
  static Counts Between(const Counts& a, const Counts& b, absl::Time at);

 private:
  const WorkerPool& pool_;
  const double cpus_;
  const absl::Duration attach_interval_;
  const absl::Duration max_age_;

  static Report MakeFrom(const PoolStats& stats, const Counts& now,
                         const Counts& before, double cpus,
                         absl::Duration target_queue_wait);

  // The rates' window: rates are over the time since `older`, which
  // `newer` replaces once it is kRateWindow old.
  static constexpr absl::Duration kRateWindow = absl::Seconds(1);

  Mutex mu_;
  std::shared_ptr<const Report> report_ ABSL_GUARDED_BY(mu_);
  Counts older_ ABSL_GUARDED_BY(mu_);
  Counts newer_ ABSL_GUARDED_BY(mu_);
  Counts latest_ ABSL_GUARDED_BY(mu_);  // report_'s
};

}  // namespace compute::service

#endif  // COMPUTE_SERVER_SERVICE_LOAD_REPORT_H_
