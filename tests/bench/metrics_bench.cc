// metrics_bench: what the metrics cost a no-op task, Submit to completion.
//
// The protocol is pool_bench's: one iteration submits a batch of no-op tasks
// whose completion counts down a latch, then waits on the latch; the pool is
// built before the timed loop. Each variant also makes the per-call observer
// calls the service makes (OnCallStarted before Submit, OnCallHandled in the
// completion), so "with metrics" is everything a Run call records.
//
// Compared, in one process:
//   - BM_WorkerPoolNoMetrics: no observer at all (the baseline).
//   - BM_WorkerPoolWithMetrics: compute::metrics::Metrics, as the server
//     wires it: counters and histograms striped per thread, no lock.
//   - BM_WorkerPoolWithPrometheusCppMetrics: the same series kept in
//     prometheus-cpp's own Counter and Histogram (Histogram::Observe takes
//     a mutex; Counter is one shared atomic), the design we did not take.
//   - BM_Observers{Metrics,PrometheusCpp}/threads:N: the observer calls of
//     one call and its task alone, with no pool, from 1 and 2 threads at
//     once: the cost per call and how it scales.
//
// Repetitions run in random interleaved order (see main). After the runs a
// Markdown summary prints tasks/s, ns/task and the ratio to the baseline at
// the same worker count, from the medians of the repetitions.
//
// Not a test: CTest never runs it. Run ./build/tests/bench/metrics_bench.
#include <sched.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "prometheus/counter.h"
#include "prometheus/histogram.h"
#include "prometheus/registry.h"
#include "server/metrics/duration_histogram.h"
#include "server/metrics/grpc_metrics.h"
#include "server/metrics/metrics.h"
#include "server/pool/cancel_token.h"
#include "server/pool/sync.h"
#include "server/pool/worker_pool.h"
#include "server/service/call_observer.h"
#include "server/tasks/registry.h"
#include "tests/bench/bench_support.h"

namespace compute {
namespace {

constexpr int kBatch = 10000;
constexpr size_t kQueueCapacity = 1 << 16;
constexpr double kMinTimeSeconds = 0.3;
constexpr int kRepetitions = 10;
constexpr std::string_view kMethod = "Run";

// The rejected design: the same series in prometheus-cpp's metric objects,
// looked up once up front (no label lookup on the hot path).
class PrometheusCppMetrics final : public PoolObserver,
                                   public service::CallObserver {
 public:
  PrometheusCppMetrics() {
    const std::vector<double>& bounds =
        metrics::DurationHistogram::Latency().bounds();
    auto& tasks = prometheus::BuildCounter()
                      .Name("compute_tasks_total")
                      .Help("h")
                      .Register(registry_);
    for (const tasks::TaskKind& kind : tasks::AllTaskKinds()) {
      for (int o = 0; o < kNumTaskOutcomes; ++o) {
        tasks_[kind.index][o] = &tasks.Add(
            {{"task", std::string(kind.name)},
             {"outcome", std::string(TaskOutcomeName(TaskOutcome(o)))}});
      }
    }
    queue_wait_ = &prometheus::BuildHistogram()
                       .Name("compute_task_queue_wait_seconds")
                       .Help("h")
                       .Register(registry_)
                       .Add({}, bounds);
    auto& run = prometheus::BuildHistogram()
                    .Name("compute_task_run_seconds")
                    .Help("h")
                    .Register(registry_);
    for (const tasks::TaskKind& kind : tasks::AllTaskKinds()) {
      run_[kind.index] = &run.Add({{"task", std::string(kind.name)}}, bounds);
    }
    started_ = &prometheus::BuildCounter()
                    .Name("grpc_server_started_total")
                    .Help("h")
                    .Register(registry_)
                    .Add({});
    auto& handled = prometheus::BuildCounter()
                        .Name("grpc_server_handled_total")
                        .Help("h")
                        .Register(registry_);
    for (int c = 0; c < metrics::kNumGrpcCodes; ++c) {
      handled_[c] = &handled.Add(
          {{"grpc_code",
            std::string(metrics::GrpcCodeName(grpc::StatusCode(c)))}});
    }
    handling_ = &prometheus::BuildHistogram()
                     .Name("grpc_server_handling_seconds")
                     .Help("h")
                     .Register(registry_)
                     .Add({}, bounds);
  }

  void OnTaskFinished(const TaskResult& r) override {
    tasks_[r.tag][static_cast<int>(r.outcome)]->Increment();
    queue_wait_->Observe(absl::ToDoubleSeconds(r.queue_wait));
    if (r.worker >= 0) run_[r.tag]->Observe(absl::ToDoubleSeconds(r.run_time));
  }
  void OnCallStarted(std::string_view) override { started_->Increment(); }
  void OnCallHandled(std::string_view, grpc::StatusCode code,
                     absl::Duration elapsed) override {
    handled_[code]->Increment();
    handling_->Observe(absl::ToDoubleSeconds(elapsed));
  }
  void OnRejected(service::RejectReason, Priority) override {}

 private:
  prometheus::Registry registry_;
  std::array<std::array<prometheus::Counter*, kNumTaskOutcomes>,
             tasks::kNumTaskKinds>
      tasks_{};
  prometheus::Histogram* queue_wait_ = nullptr;
  std::array<prometheus::Histogram*, tasks::kNumTaskKinds> run_{};
  prometheus::Counter* started_ = nullptr;
  std::array<prometheus::Counter*, metrics::kNumGrpcCodes> handled_{};
  prometheus::Histogram* handling_ = nullptr;
};

void RunPool(benchmark::State& state, PoolObserver* pool_observer,
             service::CallObserver* call_observer) {
  const int workers = static_cast<int>(state.range(0));
  bench::BatchLatch latch;
  std::unique_ptr<WorkerPool> pool =
      bench::FixedPool(state, workers, kQueueCapacity, pool_observer);
  if (pool == nullptr) return;
  TaskOptions task_options;
  task_options.tag = 1;  // a real kind, so every series is touched
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) {
    latch.Reset(kBatch);
    for (int i = 0; i < kBatch; ++i) {
      if (call_observer != nullptr) call_observer->OnCallStarted(kMethod);
      absl::StatusOr<TaskHandle> handle = pool->Submit(
          [](const CancelToken&) { return absl::OkStatus(); },
          [&latch, call_observer](const TaskResult& r) {
            if (call_observer != nullptr) {
              call_observer->OnCallHandled(kMethod, grpc::StatusCode::OK,
                                           r.queue_wait + r.run_time);
            }
            latch.CountDown();
          },
          task_options);
      if (!handle.ok()) {
        state.SkipWithError(handle.status().ToString().c_str());
        return;
      }
    }
    latch.Wait();
  }
  std::chrono::duration<double, std::nano> elapsed =
      std::chrono::steady_clock::now() - start;
  const double tasks = static_cast<double>(state.iterations()) * kBatch;
  state.SetItemsProcessed(static_cast<int64_t>(tasks));
  if (tasks > 0) state.counters["ns_per_task"] = elapsed.count() / tasks;
}

void BM_WorkerPoolNoMetrics(benchmark::State& state) {
  RunPool(state, nullptr, nullptr);
}

void BM_WorkerPoolWithMetrics(benchmark::State& state) {
  metrics::Metrics m;  // outlives the pool made inside
  RunPool(state, m.pool_observer(), m.call_observer());
}

void BM_WorkerPoolWithPrometheusCppMetrics(benchmark::State& state) {
  PrometheusCppMetrics m;
  RunPool(state, &m, &m);
}

// The observers alone, without the pool: one task's and one call's records
// per iteration, on 1 and 2 threads at once (the threads record into the
// same metrics, as workers do).
template <typename M>
void ObserveOneTask(benchmark::State& state, M& m) {
  TaskResult r;
  r.tag = 1;
  r.worker = 0;
  r.queue_wait = absl::Microseconds(30);
  r.run_time = absl::Microseconds(70);
  for (auto _ : state) {
    m.call_observer()->OnCallStarted(kMethod);
    m.pool_observer()->OnTaskFinished(r);
    m.call_observer()->OnCallHandled(kMethod, grpc::StatusCode::OK,
                                     absl::Microseconds(100));
  }
  state.SetItemsProcessed(state.iterations());
}

struct PrometheusCppAdapter {
  PrometheusCppMetrics metrics;
  PoolObserver* pool_observer() { return &metrics; }
  service::CallObserver* call_observer() { return &metrics; }
};

void BM_ObserversMetrics(benchmark::State& state) {
  static metrics::Metrics* const m = new metrics::Metrics();
  ObserveOneTask(state, *m);
}

void BM_ObserversPrometheusCpp(benchmark::State& state) {
  static PrometheusCppAdapter* const m = new PrometheusCppAdapter();
  ObserveOneTask(state, *m);
}

void ObserverArgs(benchmark::internal::Benchmark* b) {
  b->Threads(1)
      ->Threads(2)
      ->UseRealTime()
      ->MinTime(0.1)
      ->Repetitions(bench::Repetitions(kRepetitions))
      ->DisplayAggregatesOnly(true);
}

BENCHMARK(BM_ObserversMetrics)->Apply(ObserverArgs);
BENCHMARK(BM_ObserversPrometheusCpp)->Apply(ObserverArgs);

void PoolArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("workers")
      ->Arg(1)
      ->Arg(2)
      ->UseRealTime()
      ->Unit(benchmark::kMillisecond)
      ->MinTime(kMinTimeSeconds)
      ->Repetitions(bench::Repetitions(kRepetitions))
      ->DisplayAggregatesOnly(true);
}

BENCHMARK(BM_WorkerPoolNoMetrics)->Apply(PoolArgs);
BENCHMARK(BM_WorkerPoolWithMetrics)->Apply(PoolArgs);
BENCHMARK(BM_WorkerPoolWithPrometheusCppMetrics)->Apply(PoolArgs);

// ---- Summary ---------------------------------------------------------------

// The console output, then tasks/s per benchmark (the median when repeated)
// and its ratio to BM_WorkerPoolNoMetrics at the same worker count.
class SummaryReporter : public bench::RateReporter {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::ostream& out = GetOutputStream();
    out << "\n## Summary: metrics cost on a no-op task, submit -> "
           "completion\n\n"
        << "Machine: nproc = " << bench::AffinityCpus()
        << ", CPU: " << bench::CpuModel() << "\n\n"
        << "| benchmark | workers | tasks/s | ns/task | vs no metrics |\n"
        << "|---|---|---|---|---|\n";
    // Sorted by name: the runs themselves came in random order.
    for (const auto& [key, entry] : results_) {
      const auto& [function, args] = key;
      std::string ratio = "-";
      auto base = results_.find({"BM_WorkerPoolNoMetrics", args});
      if (base != results_.end()) {
        ratio = absl::StrFormat(
            "%.3f", entry.tasks_per_second / base->second.tasks_per_second);
      }
      const bool threads_row = args.rfind("threads:", 0) == 0;
      std::string workers = args.rfind("workers:", 0) == 0 ? args.substr(8)
                            : threads_row ? args.substr(8) + " threads"
                                          : "-";
      // The rate of a threads:N row is the N threads' together, so one
      // thread's time per task is N times its inverse.
      int threads = 1;
      if (threads_row && !absl::SimpleAtoi(args.substr(8), &threads)) {
        threads = 1;
      }
      const double ns = threads * 1e9 / entry.tasks_per_second;
      out << absl::StrFormat(
          "| %s | %s | %.0f | %s | %s |\n", function.substr(3), workers,
          entry.tasks_per_second,
          threads_row ? absl::StrFormat("%.1f per thread", ns)
                      : absl::StrFormat("%.1f", ns),
          ratio);
    }
    out << std::flush;
  }

 private:
};

}  // namespace
}  // namespace compute

int main(int argc, char** argv) {
  compute::SummaryReporter reporter;
  return compute::bench::RunInterleaved(argc, argv, reporter);
}
