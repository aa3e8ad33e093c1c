// What the benchmarks share: the batch latch of their protocol, the machine
// description, and a reporter that keeps each benchmark's tasks/s (the
// median when repeated) for a summary table printed at the end.
#ifndef COMPUTE_TESTS_BENCH_BENCH_SUPPORT_H_
#define COMPUTE_TESTS_BENCH_BENCH_SUPPORT_H_

#include <sched.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "benchmark/benchmark.h"
#include "server/pool/sync.h"
#include "server/pool/worker_pool.h"

namespace compute::bench {

// Counts completions of one batch; the last one wakes Wait(). Reused across
// iterations (Reset between them) and declared before the pool that signals
// it, so it outlives every completion.
class BatchLatch {
 public:
  void Reset(int count) {
    remaining_.store(count, std::memory_order_relaxed);
    MutexLock lock(&mu_);
    done_ = false;
  }
  void CountDown() {
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      MutexLock lock(&mu_);
      done_ = true;
      cv_.SignalAll();
    }
  }
  void Wait() {
    MutexLock lock(&mu_);
    while (!done_) cv_.Wait(&mu_);
  }

 private:
  std::atomic<int> remaining_{0};
  Mutex mu_;
  CondVar cv_;
  bool done_ ABSL_GUARDED_BY(mu_) = false;
};

// A pool of exactly `workers` threads, or nullptr after marking the
// benchmark skipped with the reason.
inline std::unique_ptr<WorkerPool> FixedPool(benchmark::State& state,
                                             int workers, size_t capacity,
                                             PoolObserver* observer) {
  PoolOptions options;
  options.min_workers = workers;
  options.max_workers = workers;
  options.queue_capacity = capacity;
  options.observer = observer;
  absl::StatusOr<std::unique_ptr<WorkerPool>> pool =
      WorkerPool::Create(options);
  if (!pool.ok()) {
    state.SkipWithError(pool.status().ToString().c_str());
    return nullptr;
  }
  return std::move(*pool);
}

// Repetitions per benchmark: `full`, or 3 when the environment has
// BENCH_QUICK=1 (`make bench BENCH_QUICK=1`: a quick look, noisier medians).
inline int Repetitions(int full) {
  const char* quick = std::getenv("BENCH_QUICK");
  return quick != nullptr && std::string_view(quick) == "1" ? 3 : full;
}

inline int AffinityCpus() {  // what `nproc` prints
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return CPU_COUNT(&set);
}

inline std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "unknown";
}

// The console output as usual, plus tasks/s per benchmark (function, args
// with threads), the median when repeated, else the last run; subclasses
// print their table in Finalize().
class RateReporter : public benchmark::ConsoleReporter {
 public:
  using Key = std::pair<std::string, std::string>;  // function, args
  struct Entry {
    double tasks_per_second = 0;
    bool from_median = false;
  };

  void ReportRuns(const std::vector<Run>& reports) override {
    ConsoleReporter::ReportRuns(reports);
    for (const Run& run : reports) {
      if (run.error_occurred) continue;
      bool median =
          run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type == Run::RT_Aggregate && !median) continue;
      auto it = run.counters.find("items_per_second");
      if (it == run.counters.end()) continue;
      std::string args = run.run_name.args;
      if (!run.run_name.threads.empty()) {
        args += (args.empty() ? "" : "/") + run.run_name.threads;
      }
      Key key{run.run_name.function_name, args};
      if (!results_.contains(key)) order_.push_back(key);
      Entry& entry = results_[key];
      if (entry.from_median && !median) continue;
      entry.tasks_per_second = it->second.value;
      entry.from_median = median;
    }
  }

 protected:
  std::map<Key, Entry> results_;
  std::vector<Key> order_;  // in the order the benchmarks ran
};

// main() of a benchmark binary: repetitions of all benchmarks interleave in
// random order by default, so a burst of outside load on a shared box hits
// every variant alike; a flag given on the command line (later in argv)
// still wins.
inline int RunInterleaved(int argc, char** argv,
                          benchmark::BenchmarkReporter& reporter) {
  std::vector<char*> args(argv, argv + argc);
  std::string interleave = "--benchmark_enable_random_interleaving=true";
  args.insert(args.begin() + 1, interleave.data());
  argc = static_cast<int>(args.size());
  benchmark::Initialize(&argc, args.data());
  if (benchmark::ReportUnrecognizedArguments(argc, args.data())) return 1;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace compute::bench

#endif  // COMPUTE_TESTS_BENCH_BENCH_SUPPORT_H_
