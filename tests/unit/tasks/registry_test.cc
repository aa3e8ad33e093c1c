#include "server/tasks/registry.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/tasks/blur.h"
#include "server/tasks/fib.h"
#include "server/tasks/primes.h"
#include "server/tasks/sha256.h"
#include "server/tasks/spin.h"

namespace compute::tasks {
namespace {

using compute::v1::RunRequest;
using compute::v1::RunResponse;
using ::testing::HasSubstr;

TEST(RegistryTest, EveryTaskCaseHasItsKind) {
  const std::pair<RunRequest::TaskCase, std::string> cases[] = {
      {RunRequest::kFib, "fib"},       {RunRequest::kSpin, "spin"},
      {RunRequest::kSha256, "sha256"}, {RunRequest::kPrimes, "primes"},
      {RunRequest::kBlur, "blur"},     {RunRequest::kSleep, "sleep"},
  };
  for (const auto& [task_case, name] : cases) {
    const TaskKind* kind = FindTaskKind(task_case);
    ASSERT_NE(kind, nullptr) << name;
    EXPECT_EQ(kind->name, name);
    EXPECT_EQ(kind->task_case, task_case);
    EXPECT_NE(kind->validate, nullptr);
    EXPECT_NE(kind->run, nullptr);
    EXPECT_NE(kind->cost_units, nullptr);
    EXPECT_NE(kind->response_bytes, nullptr);
    EXPECT_NE(kind->working_bytes, nullptr);
  }
  EXPECT_EQ(FindTaskKind(RunRequest::TASK_NOT_SET), nullptr);
}

TEST(RegistryTest, IndicesAreDenseAndNamesUnique) {
  const absl::Span<const TaskKind> kinds = AllTaskKinds();
  ASSERT_EQ(kinds.size(), static_cast<size_t>(kNumTaskKinds));
  std::set<std::string> names;
  for (size_t i = 0; i < kinds.size(); ++i) {
    EXPECT_EQ(kinds[i].index, static_cast<int>(i));
    EXPECT_TRUE(names.insert(std::string(kinds[i].name)).second);
    EXPECT_EQ(FindTaskKind(kinds[i].task_case), &kinds[i]);
  }
}

TEST(RegistryTest, CoversEveryOneofField) {
  // A field added to RunRequest.task without a registration fails here.
  const auto* oneof = RunRequest::descriptor()->FindOneofByName("task");
  ASSERT_NE(oneof, nullptr);
  EXPECT_EQ(oneof->field_count(), kNumTaskKinds);
  for (int i = 0; i < oneof->field_count(); ++i) {
    const auto* field = oneof->field(i);
    const TaskKind* kind =
        FindTaskKind(static_cast<RunRequest::TaskCase>(field->number()));
    ASSERT_NE(kind, nullptr) << field->name();
    EXPECT_EQ(kind->name, field->name());
  }
}

TEST(RegistryTest, UnsetTaskIsInvalid) {
  const absl::Status status = ValidateRequest(RunRequest());
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(),
            "task must be set: one of fib, spin, sha256, primes, blur, sleep");
  RunResponse response;
  EXPECT_TRUE(
      absl::IsInvalidArgument(RunTask(RunRequest(), CancelToken(), &response)));
}

// A task that compute.v1 does not declare (field 9: a client of a newer
// API) is named as such, not as no task at all.
TEST(RegistryTest, ATaskThisServerDoesNotKnowIsNamed) {
  RunRequest request;
  request.GetReflection()->MutableUnknownFields(&request)->AddLengthDelimited(
      9, "");
  const absl::Status status = ValidateRequest(request);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(),
            "task: field 9 is not a task this server knows (a client of a "
            "newer API?): one of fib, spin, sha256, primes, blur, sleep");
}

TEST(RegistryTest, ValidateRequestDispatchesToTheKind) {
  RunRequest request;
  request.mutable_fib()->set_n(50);
  EXPECT_TRUE(ValidateRequest(request).ok());
  request.mutable_fib()->set_n(51);
  EXPECT_THAT(ValidateRequest(request).message(), HasSubstr("fib.n"));
  request.mutable_primes()->set_limit(3'000'000'000);
  EXPECT_THAT(ValidateRequest(request).message(), HasSubstr("primes.limit"));
  request.mutable_blur()->set_width(2);
  EXPECT_THAT(ValidateRequest(request).message(), HasSubstr("blur.height"));
}

TEST(RegistryTest, RunFillsTheMatchingResult) {
  RunRequest fib;
  fib.mutable_fib()->set_n(20);
  RunRequest spin;
  spin.mutable_spin()->mutable_duration()->set_nanos(1'000'000);
  RunRequest sha256;
  sha256.mutable_sha256()->set_data("abc");
  sha256.mutable_sha256()->set_rounds(2);
  RunRequest primes;
  primes.mutable_primes()->set_limit(10);
  RunRequest blur;
  blur.mutable_blur()->set_width(2);
  blur.mutable_blur()->set_height(2);
  blur.mutable_blur()->set_pixels(std::string(4, '\x10'));
  blur.mutable_blur()->set_radius(1);
  RunRequest sleep;
  sleep.mutable_sleep()->mutable_duration()->set_nanos(1'000'000);

  for (const RunRequest* request :
       {&fib, &spin, &sha256, &primes, &blur, &sleep}) {
    SCOPED_TRACE(request->ShortDebugString());
    ASSERT_TRUE(ValidateRequest(*request).ok());
    RunResponse response;
    ASSERT_TRUE(RunTask(*request, CancelToken(), &response).ok());
    // The oneofs are numbered alike, field for field.
    EXPECT_EQ(static_cast<int>(response.result_case()),
              static_cast<int>(request->task_case()));
    EXPECT_FALSE(response.has_queue_time());
    EXPECT_FALSE(response.has_run_time());
  }
  RunResponse response;
  ASSERT_TRUE(RunTask(fib, CancelToken(), &response).ok());
  EXPECT_EQ(response.fib().value(), 6765u);
  ASSERT_TRUE(RunTask(primes, CancelToken(), &response).ok());
  EXPECT_EQ(response.primes().count(), 4u);
  EXPECT_EQ(response.sha256().hex(), "");  // the oneof switched
  ASSERT_TRUE(RunTask(sha256, CancelToken(), &response).ok());
  EXPECT_EQ(response.sha256().hex().size(), 64u);
}

TEST(RegistryTest, RunRevalidates) {
  RunRequest request;
  request.mutable_blur()->set_width(3);
  request.mutable_blur()->set_height(4);
  request.mutable_blur()->set_pixels("short");
  RunResponse response;
  const absl::Status status = RunTask(request, CancelToken(), &response);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("blur.pixels"));
}

// Cost model. The requests below are built valid (each test checks), since
// cost_units and response_bytes require a valid request.

RunRequest FibRequest(uint32_t n) {
  RunRequest request;
  request.mutable_fib()->set_n(n);
  return request;
}

RunRequest SpinRequest(int64_t seconds, int32_t nanos) {
  RunRequest request;
  request.mutable_spin()->mutable_duration()->set_seconds(seconds);
  request.mutable_spin()->mutable_duration()->set_nanos(nanos);
  return request;
}

RunRequest Sha256Request(size_t bytes, uint32_t rounds) {
  RunRequest request;
  request.mutable_sha256()->set_data(std::string(bytes, 'x'));
  request.mutable_sha256()->set_rounds(rounds);
  return request;
}

RunRequest PrimesRequest(uint64_t limit) {
  RunRequest request;
  request.mutable_primes()->set_limit(limit);
  return request;
}

RunRequest BlurRequest(uint32_t width, uint32_t height, uint32_t radius) {
  RunRequest request;
  request.mutable_blur()->set_width(width);
  request.mutable_blur()->set_height(height);
  request.mutable_blur()->set_radius(radius);
  request.mutable_blur()->set_pixels(
      std::string(size_t{width} * height, '\x80'));
  return request;
}

const TaskKind& KindOf(const RunRequest& request) {
  const TaskKind* kind = FindTaskKind(request.task_case());
  EXPECT_NE(kind, nullptr);
  return kind != nullptr ? *kind : AllTaskKinds()[0];
}

double Units(const RunRequest& request) {
  EXPECT_TRUE(ValidateRequest(request).ok()) << request.ShortDebugString();
  return KindOf(request).cost_units(request);
}

int64_t ResponseBytes(const RunRequest& request) {
  EXPECT_TRUE(ValidateRequest(request).ok()) << request.ShortDebugString();
  return KindOf(request).response_bytes(request);
}

// The fib kernel's number of calls: 2 fib(n + 1) - 1.
double FibCalls(uint32_t n) {
  uint64_t a = 0;  // fib(i)
  uint64_t b = 1;  // fib(i + 1)
  for (uint32_t i = 0; i < n; ++i) {
    const uint64_t next = a + b;
    a = b;
    b = next;
  }
  return 2.0 * static_cast<double>(b) - 1;
}

TEST(TaskCostTest, SmallestRequestsCostMoreThanNothing) {
  // Zero units would predict a free task and teach the model nothing.
  RunRequest spin;
  spin.mutable_spin();  // an unset duration is 0
  RunRequest sha256;
  sha256.mutable_sha256();  // no data, 0 rounds (run as 1)
  RunRequest sleep;
  sleep.mutable_sleep();  // 0
  const std::vector<RunRequest> smallest = {
      FibRequest(0),        spin, sha256, PrimesRequest(0),
      BlurRequest(1, 1, 0), sleep};
  std::set<std::string> names;
  for (const RunRequest& request : smallest) {
    SCOPED_TRACE(request.ShortDebugString());
    const TaskKind& kind = KindOf(request);
    names.insert(std::string(kind.name));
    const double units = Units(request);
    EXPECT_GT(units, 0);
    EXPECT_TRUE(std::isfinite(units));
    EXPECT_GT(kind.default_seconds_per_unit, 0);
    EXPECT_TRUE(std::isfinite(kind.default_seconds_per_unit));
    EXPECT_GT(ResponseBytes(request), 0);
  }
  EXPECT_EQ(names.size(), static_cast<size_t>(kNumTaskKinds));
}

TEST(TaskCostTest, FibIsProportionalToTheRecursionsCalls) {
  for (uint32_t n = 0; n < kMaxFibN; ++n) {
    EXPECT_GT(Units(FibRequest(n + 1)), Units(FibRequest(n))) << n;
  }
  // Each step multiplies the work by phi, not 2 (or any other base).
  for (uint32_t n = 30; n < kMaxFibN; ++n) {
    EXPECT_NEAR(Units(FibRequest(n + 1)) / Units(FibRequest(n)),
                std::numbers::phi, 1e-4)
        << n;
  }
  // Units per call are the same at n = 20 as at n = 50 (within the constant
  // term, 0.3% at n = 20), so time per unit is too.
  const double per_call_50 = Units(FibRequest(50)) / FibCalls(50);
  for (uint32_t n : {20u, 25u, 30u, 40u}) {
    EXPECT_NEAR(Units(FibRequest(n)) / FibCalls(n) / per_call_50, 1.0, 5e-3)
        << n;
  }
}

TEST(TaskCostTest, SpinUnitsAreSeconds) {
  EXPECT_NEAR(Units(SpinRequest(1, 500'000'000)), 1.5, 1e-6);
  EXPECT_NEAR(Units(SpinRequest(60, 0)), 60, 1e-6);
  EXPECT_NEAR(Units(SpinRequest(0, 1'000'000)), 1e-3, 1e-6);
  const std::vector<RunRequest> increasing = {
      SpinRequest(0, 0), SpinRequest(0, 1), SpinRequest(0, 1'000'000),
      SpinRequest(1, 0), SpinRequest(1, 1), SpinRequest(60, 0)};
  for (size_t i = 1; i < increasing.size(); ++i) {
    EXPECT_GT(Units(increasing[i]), Units(increasing[i - 1])) << i;
  }
  // A unit is a second, so a second of spin is predicted as a second.
  EXPECT_NEAR(KindOf(SpinRequest(1, 0)).default_seconds_per_unit, 1.0, 0.01);
}

TEST(TaskCostTest, Sha256HashesTheDataOnceAndPaysForEveryRound) {
  // The kernel runs 0 rounds as 1.
  EXPECT_EQ(Units(Sha256Request(100, 0)), Units(Sha256Request(100, 1)));
  const size_t mib = 1024 * 1024;
  const std::vector<size_t> sizes = {0, 32, 64, 1024, mib, kMaxSha256DataBytes};
  for (size_t i = 1; i < sizes.size(); ++i) {
    EXPECT_GT(Units(Sha256Request(sizes[i], 1)),
              Units(Sha256Request(sizes[i - 1], 1)))
        << sizes[i];
  }
  const std::vector<uint32_t> rounds = {1, 2, 1000, kMaxSha256Rounds};
  for (size_t i = 1; i < rounds.size(); ++i) {
    EXPECT_GT(Units(Sha256Request(32, rounds[i])),
              Units(Sha256Request(32, rounds[i - 1])))
        << rounds[i];
  }
  // Rounds after the first rehash a digest, whatever the data's size: extra
  // rounds cost the same on 1 MiB of data as on none.
  EXPECT_DOUBLE_EQ(
      Units(Sha256Request(mib, 1000)) - Units(Sha256Request(mib, 1)),
      Units(Sha256Request(0, 1000)) - Units(Sha256Request(0, 1)));
  // Data is paid for in proportion to its size...
  EXPECT_DOUBLE_EQ(
      Units(Sha256Request(2 * mib, 1)) - Units(Sha256Request(mib, 1)),
      Units(Sha256Request(mib, 1)) - Units(Sha256Request(0, 1)));
  // ...and a round, which hashes at least one 64-byte block, costs at least
  // as much as 64 more bytes of data.
  EXPECT_GE(Units(Sha256Request(0, 2)) - Units(Sha256Request(0, 1)),
            Units(Sha256Request(64, 1)) - Units(Sha256Request(0, 1)));
}

TEST(TaskCostTest, PrimesGrowsAsLimitTimesItsLog) {
  EXPECT_LE(Units(PrimesRequest(0)), Units(PrimesRequest(2)));
  const std::vector<uint64_t> limits = {
      2, 10, 1'000, 1'000'000, 100'000'000, 1'000'000'000, kMaxPrimesLimit};
  for (size_t i = 1; i < limits.size(); ++i) {
    EXPECT_GT(Units(PrimesRequest(limits[i])),
              Units(PrimesRequest(limits[i - 1])))
        << limits[i];
  }
  // Slightly superlinear: doubling 1e9 costs 2 x ln(2e9) / ln(1e9) = 2.067x.
  const double doubling =
      Units(PrimesRequest(2'000'000'000)) / Units(PrimesRequest(1'000'000'000));
  EXPECT_GT(doubling, 2.05);
  EXPECT_LT(doubling, 2.08);
}

TEST(TaskCostTest, BlurCostsItsPixelsWhateverTheRadius) {
  EXPECT_EQ(Units(BlurRequest(64, 64, 1)), Units(BlurRequest(64, 64, 64)));
  const std::vector<uint32_t> sides = {1, 16, 256, 1024, 2048};
  for (size_t i = 1; i < sides.size(); ++i) {
    EXPECT_GT(Units(BlurRequest(sides[i], sides[i], 1)),
              Units(BlurRequest(sides[i - 1], sides[i - 1], 1)))
        << sides[i];
  }
  // Proportional to the pixels: 16 times the pixels, 16 times the units
  // (but for the fixed cost, 0.1% of 256x256, and the rows' cost: 6% of
  // 256x256, 1.6% of 1024x1024).
  EXPECT_NEAR(
      Units(BlurRequest(1024, 1024, 5)) / Units(BlurRequest(256, 256, 5)), 16,
      0.8);
  // Radius 0 is a copy, measured 7 to 19 times cheaper than a blur.
  EXPECT_LT(4 * Units(BlurRequest(1024, 1024, 0)),
            Units(BlurRequest(1024, 1024, 1)));
  EXPECT_GT(Units(BlurRequest(1024, 1024, 0)), Units(BlurRequest(16, 16, 0)));
}

// What a pixel costs depends on the image's shape: narrow strips pay each
// row's overhead over few pixels, and a narrow tall image is blurred as its
// transpose (blur.h). The units carry it, so that the one rate per unit the
// cost model learns for blur fits every shape more closely: with plain
// pixels, a rate learned from narrow images over-estimated square ones 2-3x
// (refusing calls that fit), and one learned from square images
// under-estimated narrow ones (admitting calls that would run late).
TEST(TaskCostTest, BlurUnitsCarryTheShapesCostPerPixel) {
  const double square = Units(BlurRequest(1024, 1024, 3));
  // Measured per pixel against a square image: ~2x for narrow (transposed)
  // and 16-wide images, ~1.5x at 32 wide, within 10% at 256 wide.
  EXPECT_NEAR(Units(BlurRequest(8, 131072, 3)) / square, 2, 0.1);
  EXPECT_NEAR(Units(BlurRequest(1, 1048576, 3)) / square, 2, 0.1);
  EXPECT_NEAR(Units(BlurRequest(16, 65536, 3)) / square, 2, 0.1);
  EXPECT_NEAR(Units(BlurRequest(32, 32768, 3)) / square, 1.5, 0.1);
  EXPECT_NEAR(Units(BlurRequest(256, 4096, 3)) / square, 1.05, 0.05);
  // Wide and short images are strips of 2048 columns: like a square one.
  EXPECT_NEAR(Units(BlurRequest(65536, 16, 3)) / square, 1, 0.05);
  EXPECT_NEAR(Units(BlurRequest(1048576, 1, 3)) / square, 1, 0.05);
  // A copy (radius 0) is never transposed.
  EXPECT_EQ(Units(BlurRequest(8, 131072, 0)), Units(BlurRequest(131072, 8, 0)));
}

// The cost model's rule (registry.h): a larger request never costs fewer
// units. Blur's shapes meet where a narrow image turns to its transpose
// (taller than wide) and where a strip ends; until 2026-12-07, 13x14 cost
// fewer units than 13x13.
TEST(TaskCostTest, ALargerImageNeverCostsLessToBlur) {
  for (uint32_t w = 1; w <= 20; ++w) {
    for (uint32_t h = 1; h <= 20; ++h) {
      const double units = Units(BlurRequest(w, h, 1));
      EXPECT_GE(Units(BlurRequest(w + 1, h, 1)), units) << w << "x" << h;
      EXPECT_GE(Units(BlurRequest(w, h + 1, 1)), units) << w << "x" << h;
    }
  }
  EXPECT_GT(Units(BlurRequest(2049, 4, 1)), Units(BlurRequest(2048, 4, 1)));
}

TEST(TaskCostTest, ResponseBytesMatchTheResults) {
  // Blur returns its pixels: the budget is their count plus the header.
  for (const auto& [width, height] : std::vector<std::pair<uint32_t, uint32_t>>{
           {1, 1}, {3, 5}, {640, 480}, {1024, 1024}}) {
    for (uint32_t radius : {0u, 2u}) {
      const RunRequest request = BlurRequest(width, height, radius);
      EXPECT_EQ(ResponseBytes(request),
                int64_t{width} * height + kBlurResponseHeaderBytes);
      RunResponse response;
      ASSERT_TRUE(RunTask(request, CancelToken(), &response).ok());
      EXPECT_EQ(ResponseBytes(request),
                static_cast<int64_t>(response.blur().pixels().size()) +
                    kBlurResponseHeaderBytes);
      // The header covers the width, the height and the framing on the wire.
      EXPECT_GE(ResponseBytes(request),
                static_cast<int64_t>(response.ByteSizeLong()));
    }
  }
  // The most framing: every varint at its longest for a valid image.
  const RunRequest widest = BlurRequest(kMaxBlurPixels, 1, 0);
  RunResponse widest_result;
  widest_result.mutable_blur()->set_width(kMaxBlurPixels);
  widest_result.mutable_blur()->set_height(1);
  widest_result.mutable_blur()->set_pixels(widest.blur().pixels());
  EXPECT_GE(ResponseBytes(widest),
            static_cast<int64_t>(widest_result.ByteSizeLong()));

  // Sha256 returns the digest and its hex, whatever the input: the
  // result as serialized, tags and lengths too (until 2026-12-04 the
  // estimate was their 96 bytes alone, 4 short).
  for (const RunRequest& request :
       {Sha256Request(0, 1), Sha256Request(1024 * 1024, 1),
        Sha256Request(32, 1000)}) {
    RunResponse response;
    ASSERT_TRUE(RunTask(request, CancelToken(), &response).ok());
    EXPECT_EQ(ResponseBytes(request), 32 + 64 + 4);
    EXPECT_EQ(ResponseBytes(request),
              static_cast<int64_t>(response.sha256().ByteSizeLong()));
  }

  // The others return one number, whatever the request's size: a constant
  // that holds the largest result, serialized.
  RunResponse largest_fib;
  largest_fib.mutable_fib()->set_value(std::numeric_limits<uint64_t>::max());
  RunResponse largest_primes;
  largest_primes.mutable_primes()->set_count(
      std::numeric_limits<uint64_t>::max());
  // A 60 s spin reports a little more than 60 s; an hour is ample.
  RunResponse longest_spin;
  longest_spin.mutable_spin()->mutable_spun()->set_seconds(3600);
  longest_spin.mutable_spin()->mutable_spun()->set_nanos(999'999'999);
  const std::vector<std::pair<std::vector<RunRequest>, const RunResponse*>>
      scalar_kinds = {
          {{FibRequest(0), FibRequest(kMaxFibN)}, &largest_fib},
          {{PrimesRequest(0), PrimesRequest(kMaxPrimesLimit)}, &largest_primes},
          {{SpinRequest(0, 0), SpinRequest(60, 0)}, &longest_spin},
      };
  for (const auto& [requests, largest] : scalar_kinds) {
    SCOPED_TRACE(requests[0].ShortDebugString());
    EXPECT_EQ(ResponseBytes(requests[0]), ResponseBytes(requests[1]));
    EXPECT_LE(ResponseBytes(requests[0]), 64);
    EXPECT_GE(ResponseBytes(requests[0]),
              static_cast<int64_t>(largest->ByteSizeLong()));
  }
}

TEST(TaskCostTest, PriorsPredictPlausibleRunTimes) {
  // Units x prior, against brackets about 5x either side of the time measured
  // on the development machine (in the comment): they catch a prior off by a
  // unit's factor (1000 for ms against s) and kinds whose predictions
  // disagree, while leaving room to re-measure the priors elsewhere.
  struct Case {
    RunRequest request;
    double min_seconds;
    double max_seconds;
  };
  const std::vector<Case> cases = {
      {FibRequest(30), 2e-4, 5e-3},                 // 0.86 ms
      {SpinRequest(1, 0), 0.99, 1.01},              // 1 s
      {Sha256Request(1024 * 1024, 1), 1e-4, 3e-3},  // 0.51 ms
      {Sha256Request(32, 1'000'000), 0.05, 1.5},    // 0.28 s
      {PrimesRequest(1'000'000'000), 0.15, 3.5},    // 0.72 s
      {BlurRequest(1024, 1024, 4), 4e-4, 1e-2},     // 2.2 ms
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(std::string(KindOf(c.request).name));
    const double predicted =
        Units(c.request) * KindOf(c.request).default_seconds_per_unit;
    EXPECT_GT(predicted, c.min_seconds);
    EXPECT_LT(predicted, c.max_seconds);
  }
}

}  // namespace
}  // namespace compute::tasks
