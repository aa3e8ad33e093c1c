// pool_bench: what a no-op task costs from Submit to its completion callback.
//
// Every benchmark runs the same protocol: one iteration submits a batch of
// no-op tasks whose completion counts down a latch, then waits on the latch
// (the last completion wakes the waiter; nothing polls or sleeps). The pool
// is built before the timed loop, so an iteration measures only queueing,
// hand-off to a worker, running and completing. Work happens on other
// threads, hence UseRealTime(): CPU time of the benchmark thread would miss
// the workers.
//
// Compared:
//   - BM_WorkerPool: compute::WorkerPool, min = max = workers.
//   - BM_WorkerPoolWithDeadline: the same, every task with a deadline 10 s
//     away (TaskOptions::deadline), as every gRPC call with a deadline has:
//     the price of the deadline heap, the timer thread and the deadline
//     admission check. The clock is read once per batch (now + 10 s), and
//     task i's deadline is that plus i ns, so deadlines differ and rise in
//     submission order as real calls' do.
//   - BM_WorkerPoolWithObserver: the same with a trivial PoolObserver (one
//     relaxed increment), the price of the observer hook itself.
//   - BM_MinimalPool: the textbook mutex + condition_variable + deque of
//     std::function pool (MinimalPool below), the baseline to beat.
//   - BM_ThreadPerTask: one std::thread per task, the anti-pattern.
//   - BM_WorkerPoolWithDeadlineSerial, BM_MinimalPoolSerial: the same
//     tasks (with deadlines for WorkerPool), 1 worker, with the submitter
//     and the worker never running at once: the worker is held by a gate
//     task while the batch is submitted, then released to drain it. The
//     time is the submitting plus the draining (counters submit_ns and
//     drain_ns per task), so it is each side's own work per task without
//     the lock's contention, which the runs above include and which, on a
//     VM, costs futex system calls.
//
// After the runs a Markdown summary prints tasks/s, ns/task and the ratio to
// the minimal pool at the same worker count, all from this one process. With
// repetitions the median is used.
//
// Not a test: CTest never runs it. Run ./build/tests/bench/pool_bench.
#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "server/pool/cancel_token.h"
#include "server/pool/sync.h"
#include "server/pool/worker_pool.h"
#include "tests/bench/bench_support.h"

namespace compute {
namespace {

constexpr int kBatch = 10000;
constexpr int kThreadPerTaskBatch = 2000;
constexpr size_t kQueueCapacity = 1 << 16;
// This box's cores are shared with other work: the median of several short
// repetitions resists a burst of outside load better than one long run, and
// main() interleaves the repetitions of all benchmarks in random order, so a
// slow phase of the machine hits every pool alike instead of whichever ran
// then. The whole binary stays around a minute on 2 cores.
constexpr double kMinTimeSeconds = 0.25;
constexpr int kRepetitions = 10;

// The trivial observer: what the hook itself costs per task.
class CountingObserver final : public PoolObserver {
 public:
  void OnTaskFinished(const TaskResult&) override {
    finished_.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> finished_{0};
};

// The baseline: the smallest correct pool. One lock, one condition variable,
// notify_one per push; workers pop and run until stopped and drained.
class MinimalPool {
 public:
  explicit MinimalPool(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { Loop(); });
  }
  ~MinimalPool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) t.join();
  }
  void Submit(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_one();
  }

 private:
  void Loop() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Times the loop itself for ns_per_task: an inverted rate counter would print
// with a seconds suffix ("1.2ks"), which reads as kiloseconds.
class TaskTimer {
 public:
  explicit TaskTimer(int batch)
      : batch_(batch), start_(std::chrono::steady_clock::now()) {}
  void Finish(benchmark::State& state) {
    std::chrono::duration<double, std::nano> elapsed =
        std::chrono::steady_clock::now() - start_;
    const double tasks = static_cast<double>(state.iterations()) * batch_;
    state.SetItemsProcessed(static_cast<int64_t>(tasks));
    if (tasks > 0) state.counters["ns_per_task"] = elapsed.count() / tasks;
  }

 private:
  const int batch_;
  const std::chrono::steady_clock::time_point start_;
};

// How far ahead BM_WorkerPoolWithDeadline's deadlines are: far enough that
// none expires, so every task still runs.
constexpr absl::Duration kDeadlineAhead = absl::Seconds(10);

void RunWorkerPool(benchmark::State& state, PoolObserver* observer,
                   bool with_deadline) {
  const int workers = static_cast<int>(state.range(0));
  bench::BatchLatch latch;
  std::unique_ptr<WorkerPool> pool =
      bench::FixedPool(state, workers, kQueueCapacity, observer);
  if (pool == nullptr) return;
  TaskOptions options;
  TaskTimer timer(kBatch);
  for (auto _ : state) {
    latch.Reset(kBatch);
    // Read in every variant, so that they differ only in the deadline.
    const absl::Time base = pool->clock().Now() + kDeadlineAhead;
    for (int i = 0; i < kBatch; ++i) {
      if (with_deadline) options.deadline = base + absl::Nanoseconds(i);
      absl::StatusOr<TaskHandle> handle = pool->Submit(
          [](const CancelToken&) { return absl::OkStatus(); },
          [&latch](const TaskResult&) { latch.CountDown(); }, options);
      if (!handle.ok()) {
        // Completions of the accepted tasks must still land before `latch`
        // goes: the pool's destructor drains them.
        state.SkipWithError(handle.status().ToString().c_str());
        return;
      }
    }
    latch.Wait();
  }
  timer.Finish(state);
}

void BM_WorkerPool(benchmark::State& state) {
  RunWorkerPool(state, nullptr, /*with_deadline=*/false);
}

void BM_WorkerPoolWithDeadline(benchmark::State& state) {
  RunWorkerPool(state, nullptr, /*with_deadline=*/true);
}

void BM_WorkerPoolWithObserver(benchmark::State& state) {
  CountingObserver observer;  // outlives the pool made inside
  RunWorkerPool(state, &observer, /*with_deadline=*/false);
}

void BM_MinimalPool(benchmark::State& state) {
  const int workers = static_cast<int>(state.range(0));
  bench::BatchLatch latch;
  MinimalPool pool(workers);
  TaskTimer timer(kBatch);
  for (auto _ : state) {
    latch.Reset(kBatch);
    for (int i = 0; i < kBatch; ++i) {
      pool.Submit([&latch] { latch.CountDown(); });
    }
    latch.Wait();
  }
  timer.Finish(state);
}

// Times BM_*Serial's two phases; the iteration's time is their sum.
class SerialTimer {
 public:
  using Clock = std::chrono::steady_clock;
  void StartSubmit() { start_ = Clock::now(); }
  void StartDrain() { drain_start_ = Clock::now(); }
  void EndDrain(benchmark::State& state) {
    const Clock::time_point end = Clock::now();
    const std::chrono::duration<double> submit = drain_start_ - start_;
    const std::chrono::duration<double> drain = end - drain_start_;
    submit_s_ += submit.count();
    drain_s_ += drain.count();
    state.SetIterationTime(submit.count() + drain.count());
  }
  void Finish(benchmark::State& state, int batch) const {
    const double tasks = static_cast<double>(state.iterations()) * batch;
    state.SetItemsProcessed(static_cast<int64_t>(tasks));
    if (tasks == 0) return;
    state.counters["submit_ns"] = submit_s_ * 1e9 / tasks;
    state.counters["drain_ns"] = drain_s_ * 1e9 / tasks;
  }

 private:
  Clock::time_point start_, drain_start_;
  double submit_s_ = 0, drain_s_ = 0;
};

// Holds BM_*Serial's one worker: the gate task runs Hold(), the benchmark
// waits for WaitHeld() before it submits, then Open() lets the worker drain.
class WorkerGate {
 public:
  void Reset() {
    entered_.Reset(1);
    open_.Reset(1);
  }
  void Hold() {
    entered_.CountDown();
    open_.Wait();
  }
  void WaitHeld() { entered_.Wait(); }
  void Open() { open_.CountDown(); }

 private:
  bench::BatchLatch entered_;
  bench::BatchLatch open_;
};

void BM_WorkerPoolWithDeadlineSerial(benchmark::State& state) {
  bench::BatchLatch latch;
  WorkerGate gate;
  std::unique_ptr<WorkerPool> pool =
      bench::FixedPool(state, 1, kQueueCapacity, nullptr);
  if (pool == nullptr) return;
  TaskOptions options;
  SerialTimer timer;
  auto done = [&latch](const TaskResult&) { latch.CountDown(); };
  for (auto _ : state) {
    latch.Reset(kBatch + 1);
    gate.Reset();
    absl::StatusOr<TaskHandle> held = pool->Submit(
        [&gate](const CancelToken&) {
          gate.Hold();
          return absl::OkStatus();
        },
        done);
    if (!held.ok()) {
      state.SkipWithError(held.status().ToString().c_str());
      return;
    }
    gate.WaitHeld();
    const absl::Time base = pool->clock().Now() + kDeadlineAhead;
    timer.StartSubmit();
    for (int i = 0; i < kBatch; ++i) {
      options.deadline = base + absl::Nanoseconds(i);
      absl::StatusOr<TaskHandle> handle = pool->Submit(
          [](const CancelToken&) { return absl::OkStatus(); }, done, options);
      if (!handle.ok()) {
        state.SkipWithError(handle.status().ToString().c_str());
        gate.Open();  // the pool's destructor drains the rest
        return;
      }
    }
    timer.StartDrain();
    gate.Open();
    latch.Wait();
    timer.EndDrain(state);
  }
  timer.Finish(state, kBatch);
}

void BM_MinimalPoolSerial(benchmark::State& state) {
  bench::BatchLatch latch;
  WorkerGate gate;
  MinimalPool pool(1);
  SerialTimer timer;
  for (auto _ : state) {
    latch.Reset(kBatch);
    gate.Reset();
    pool.Submit([&gate] { gate.Hold(); });
    gate.WaitHeld();
    timer.StartSubmit();
    for (int i = 0; i < kBatch; ++i) {
      pool.Submit([&latch] { latch.CountDown(); });
    }
    timer.StartDrain();
    gate.Open();
    latch.Wait();
    timer.EndDrain(state);
  }
  timer.Finish(state, kBatch);
}

void BM_ThreadPerTask(benchmark::State& state) {
  bench::BatchLatch latch;
  std::vector<std::thread> threads;
  threads.reserve(kThreadPerTaskBatch);
  TaskTimer timer(kThreadPerTaskBatch);
  for (auto _ : state) {
    latch.Reset(kThreadPerTaskBatch);
    for (int i = 0; i < kThreadPerTaskBatch; ++i) {
      threads.emplace_back([&latch] { latch.CountDown(); });
    }
    latch.Wait();
    for (std::thread& t : threads) t.join();
    threads.clear();
  }
  timer.Finish(state);
}

// What every benchmark here shares: unit, length, repetitions.
void Timing(benchmark::internal::Benchmark* b) {
  b->Unit(benchmark::kMillisecond)
      ->MinTime(kMinTimeSeconds)
      ->Repetitions(bench::Repetitions(kRepetitions))
      ->ReportAggregatesOnly(true);
}

void PoolArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("workers")->Arg(1)->Arg(2)->UseRealTime()->Apply(Timing);
}

BENCHMARK(BM_WorkerPool)->Apply(PoolArgs);
BENCHMARK(BM_WorkerPoolWithDeadline)->Apply(PoolArgs);
BENCHMARK(BM_WorkerPoolWithObserver)->Apply(PoolArgs);
BENCHMARK(BM_MinimalPool)->Apply(PoolArgs);
void SerialArgs(benchmark::internal::Benchmark* b) {
  b->ArgName("workers")->Arg(1)->UseManualTime()->Apply(Timing);
}

BENCHMARK(BM_WorkerPoolWithDeadlineSerial)->Apply(SerialArgs);
BENCHMARK(BM_MinimalPoolSerial)->Apply(SerialArgs);
BENCHMARK(BM_ThreadPerTask)->UseRealTime()->Apply(Timing);

// ---- Summary ---------------------------------------------------------------

// The console output as usual, plus tasks/s per benchmark (the median when
// repeated, else the last run), printed as a table once all have run: rows
// by pool, then worker count (the runs themselves came in random order).
class SummaryReporter : public bench::RateReporter {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::ostream& out = GetOutputStream();
    out << "\n## Summary: no-op task, submit -> completion callback\n\n"
        << "Machine: nproc = " << bench::AffinityCpus()
        << ", CPU: " << bench::CpuModel() << "\n\n"
        << "| pool | workers | tasks/s | ns/task | vs minimal pool |\n"
        << "|---|---|---|---|---|\n";
    for (const Key& key : Rows()) {
      const Entry& entry = results_.at(key);
      const auto& [function, args] = key;
      std::string ratio = "-";
      const bool serial = function.ends_with("Serial");
      const std::string baseline =
          serial ? "BM_MinimalPoolSerial" : "BM_MinimalPool";
      if (function == baseline) {
        ratio = "1.00x";
      } else if (!args.empty()) {
        ratio = Ratio({function, args}, {baseline, args});
      }
      out << absl::StrFormat(
          "| %s | %s | %.0f | %.1f | %s |\n", PoolName(function), Workers(args),
          entry.tasks_per_second, 1e9 / entry.tasks_per_second, ratio);
    }
    out << "\n(serial rows: against the serial minimal pool; their "
           "submit_ns and drain_ns are above)\n\n";
    for (int n : {1, 2}) {
      const std::string args = absl::StrFormat("workers:%d", n);
      std::string ratio =
          Ratio({"BM_WorkerPoolWithDeadline", args}, {"BM_WorkerPool", args});
      if (ratio == "-") continue;
      out << "WorkerPool with deadline vs without, " << n
          << (n == 1 ? " worker: " : " workers: ") << ratio << "\n";
    }
    std::string spawn =
        Ratio({"BM_WorkerPool", "workers:2"}, {"BM_ThreadPerTask", ""}, 1);
    if (spawn != "-") {
      out << "WorkerPool(2) vs thread-per-task: " << spawn << "\n";
    }
    out << std::flush;
  }

 private:
  // Known pools in this order, each by worker count; anything else after.
  std::vector<Key> Rows() const {
    static const char* const kOrder[] = {"BM_WorkerPool",
                                         "BM_WorkerPoolWithDeadline",
                                         "BM_WorkerPoolWithObserver",
                                         "BM_MinimalPool",
                                         "BM_WorkerPoolWithDeadlineSerial",
                                         "BM_MinimalPoolSerial",
                                         "BM_ThreadPerTask"};
    std::vector<Key> rows;
    for (const char* function : kOrder) {
      for (const auto& [key, entry] : results_) {
        if (key.first == function) rows.push_back(key);
      }
    }
    for (const auto& [key, entry] : results_) {
      bool known = false;
      for (const char* function : kOrder) known |= key.first == function;
      if (!known) rows.push_back(key);
    }
    return rows;
  }

  // a's tasks/s over b's as "1.23x", or "-" if either did not run.
  std::string Ratio(const Key& a, const Key& b, int digits = 2) const {
    auto x = results_.find(a);
    auto y = results_.find(b);
    if (x == results_.end() || y == results_.end() ||
        y->second.tasks_per_second <= 0) {
      return "-";
    }
    return absl::StrFormat(
        "%.*fx", digits,
        x->second.tasks_per_second / y->second.tasks_per_second);
  }

  static std::string Workers(const std::string& args) {
    const std::string prefix = "workers:";
    if (args.rfind(prefix, 0) == 0) return args.substr(prefix.size());
    return "-";
  }

  static std::string PoolName(const std::string& function) {
    if (function == "BM_WorkerPool") return "WorkerPool";
    if (function == "BM_WorkerPoolWithDeadline") {
      return "WorkerPool + deadline (now + 10 s) on every task";
    }
    if (function == "BM_WorkerPoolWithObserver") {
      return "WorkerPool + observer hook";
    }
    if (function == "BM_MinimalPool") {
      return "minimal pool (mutex + condvar + deque)";
    }
    if (function == "BM_WorkerPoolWithDeadlineSerial") {
      return "serial (one side at a time): WorkerPool + deadline";
    }
    if (function == "BM_MinimalPoolSerial") {
      return "serial (one side at a time): minimal pool";
    }
    if (function == "BM_ThreadPerTask") return "one std::thread per task";
    if (function.rfind("BM_", 0) == 0) return function.substr(3);
    return function;
  }
};

}  // namespace
}  // namespace compute

int main(int argc, char** argv) {
  compute::SummaryReporter reporter;
  return compute::bench::RunInterleaved(argc, argv, reporter);
}
