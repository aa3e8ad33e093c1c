// kernel_bench: the blur and primes kernels against the ones they replaced,
// in the same run.
//
//   - BM_BlurNew / BM_BlurOld: compute::tasks::BoxBlur and the old kernel
//     (tests/unit/tasks/reference_kernels.h) on the same random image, per
//     shape and radius: the common sizes, 16 megapixels, thin strips and one
//     column, radius 1 and 64 (the cost model says the time per pixel does
//     not depend on the radius; the rows show how far that holds).
//   - BM_PrimesNew / BM_PrimesOld: CountPrimes and the old sieve, per limit.
//
// Both sides are compiled with the same flags (this file gets -O3 like
// server/tasks/blur.cc and primes.cc; see CMakeLists.txt), so a ratio is the
// algorithm's, not the compiler's. Times are CPU time of the one thread that
// runs the kernel, and every repetition of every benchmark interleaves in
// random order, so a burst of outside load on a shared machine hits old and
// new alike. After the runs a Markdown table prints ns per pixel (ns per
// number for primes) of each, from the median of the repetitions, and
// old / new.
//
// Not a test: CTest never runs it. Run ./build/tests/bench/kernel_bench
// (BENCH_QUICK=1: 3 repetitions instead of 7).
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "benchmark/benchmark.h"
#include "server/pool/cancel_token.h"
#include "server/tasks/blur.h"
#include "server/tasks/primes.h"
#include "tests/bench/bench_support.h"
#include "tests/unit/tasks/reference_kernels.h"

namespace compute {
namespace {

constexpr double kMinTimeSeconds = 0.2;
constexpr int kRepetitions = 7;

std::string RandomPixels(size_t count) {
  std::mt19937 rng(17);
  std::string out(count, '\0');
  for (char& c : out) c = static_cast<char>(rng());
  return out;
}

using BlurKernel = absl::StatusOr<std::string> (*)(absl::string_view, uint32_t,
                                                   uint32_t, uint32_t,
                                                   const CancelToken&);
using PrimesKernel = absl::StatusOr<uint64_t> (*)(uint64_t, const CancelToken&);

void RunBlur(benchmark::State& state, BlurKernel kernel) {
  const auto width = static_cast<uint32_t>(state.range(0));
  const auto height = static_cast<uint32_t>(state.range(1));
  const auto radius = static_cast<uint32_t>(state.range(2));
  const std::string pixels = RandomPixels(size_t{width} * height);
  const CancelToken never;
  for (auto _ : state) {
    absl::StatusOr<std::string> out =
        kernel(pixels, width, height, radius, never);
    if (!out.ok()) {
      state.SkipWithError(out.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(out->data());
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) * width *
                          height);
}

void BM_BlurNew(benchmark::State& state) { RunBlur(state, &tasks::BoxBlur); }
void BM_BlurOld(benchmark::State& state) {
  RunBlur(state, &tasks::reference::BoxBlur);
}

void RunPrimes(benchmark::State& state, PrimesKernel kernel) {
  const auto limit = static_cast<uint64_t>(state.range(0));
  const CancelToken never;
  for (auto _ : state) {
    absl::StatusOr<uint64_t> count = kernel(limit, never);
    if (!count.ok()) {
      state.SkipWithError(count.status().ToString().c_str());
      return;
    }
    benchmark::DoNotOptimize(*count);
  }
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations()) *
                          static_cast<int64_t>(limit));
}

void BM_PrimesNew(benchmark::State& state) {
  RunPrimes(state, &tasks::CountPrimes);
}
void BM_PrimesOld(benchmark::State& state) {
  RunPrimes(state, &tasks::reference::CountPrimes);
}

// width, height, radius.
const std::vector<std::vector<int64_t>> kBlurCases = {
    {256, 256, 1},   {256, 256, 64},  {1024, 1024, 1},  {1024, 1024, 64},
    {1920, 1080, 5}, {4096, 4096, 1}, {4096, 4096, 64}, {65536, 16, 8},
    {16, 65536, 8},  {8, 131072, 3},  {1, 1048576, 3},
};
const std::vector<int64_t> kPrimesLimits = {1'000'000, 100'000'000,
                                            2'000'000'000};

void Register() {
  const int repetitions = bench::Repetitions(kRepetitions);
  for (auto [name, fn] :
       {std::pair{"BM_BlurNew", &BM_BlurNew}, {"BM_BlurOld", &BM_BlurOld}}) {
    for (const std::vector<int64_t>& args : kBlurCases) {
      benchmark::RegisterBenchmark(name, fn)
          ->Args(args)
          ->ArgNames({"w", "h", "r"})
          ->MinTime(kMinTimeSeconds)
          ->Repetitions(repetitions)
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (auto [name, fn] : {std::pair{"BM_PrimesNew", &BM_PrimesNew},
                          {"BM_PrimesOld", &BM_PrimesOld}}) {
    for (int64_t limit : kPrimesLimits) {
      benchmark::RegisterBenchmark(name, fn)
          ->Arg(limit)
          ->ArgName("limit")
          ->MinTime(kMinTimeSeconds)
          ->Repetitions(repetitions)
          ->Unit(benchmark::kMillisecond);
    }
  }
}

class SummaryReporter : public bench::RateReporter {
 public:
  void Finalize() override {
    ConsoleReporter::Finalize();
    std::ostream& out = GetOutputStream();
    out << "\n## Summary: kernels, new against old, same run (median of "
           "repetitions, CPU time)\n\n"
        << "Machine: nproc = " << bench::AffinityCpus()
        << ", CPU: " << bench::CpuModel() << "\n\n"
        << "| blur: width x height, radius | old ns/pixel | new ns/pixel | "
           "old / new |\n|---|---|---|---|\n";
    for (const std::vector<int64_t>& c : kBlurCases) {
      const std::string args =
          absl::StrFormat("w:%d/h:%d/r:%d", c[0], c[1], c[2]);
      out << absl::StrFormat("| %dx%d, r=%d |", c[0], c[1], c[2])
          << Row("BM_BlurOld", "BM_BlurNew", args) << "\n";
    }
    out << "\n| primes: limit | old ns/number | new ns/number | old / new "
           "|\n|---|---|---|---|\n";
    for (int64_t limit : kPrimesLimits) {
      const std::string args = absl::StrFormat("limit:%d", limit);
      out << absl::StrFormat("| %d |", limit)
          << Row("BM_PrimesOld", "BM_PrimesNew", args) << "\n";
    }
    out << std::flush;
  }

 private:
  // " old | new | old/new |" in ns per item; "-" where one did not run.
  std::string Row(const std::string& old_fn, const std::string& new_fn,
                  const std::string& args) const {
    auto old_it = results_.find({old_fn, args});
    auto new_it = results_.find({new_fn, args});
    const double old_ns =
        old_it == results_.end() ? 0 : 1e9 / old_it->second.tasks_per_second;
    const double new_ns =
        new_it == results_.end() ? 0 : 1e9 / new_it->second.tasks_per_second;
    auto cell = [](double ns) {
      return ns > 0 ? absl::StrFormat(" %.3f |", ns) : std::string(" - |");
    };
    std::string ratio = old_ns > 0 && new_ns > 0
                            ? absl::StrFormat(" %.2fx |", old_ns / new_ns)
                            : std::string(" - |");
    return cell(old_ns) + cell(new_ns) + ratio;
  }
};

}  // namespace
}  // namespace compute

int main(int argc, char** argv) {
  compute::Register();
  compute::SummaryReporter reporter;
  return compute::bench::RunInterleaved(argc, argv, reporter);
}
