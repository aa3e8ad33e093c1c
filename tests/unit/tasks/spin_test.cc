#include "server/tasks/spin.h"

#include <cstdint>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute::tasks {
namespace {

using ::testing::HasSubstr;

compute::v1::SpinRequest Request(int64_t seconds, int32_t nanos) {
  compute::v1::SpinRequest request;
  request.mutable_duration()->set_seconds(seconds);
  request.mutable_duration()->set_nanos(nanos);
  return request;
}

TEST(SpinTest, SpinsAtLeastTheDuration) {
  absl::StatusOr<absl::Duration> spun =
      Spin(absl::Milliseconds(20), CancelToken());
  ASSERT_TRUE(spun.ok()) << spun.status();
  EXPECT_GE(*spun, absl::Milliseconds(20));
  EXPECT_LT(*spun, absl::Seconds(5));
}

TEST(SpinTest, ZeroAndNegativeReturnAtOnce) {
  for (absl::Duration d : {absl::ZeroDuration(), absl::Seconds(-1)}) {
    absl::StatusOr<absl::Duration> spun = Spin(d, CancelToken());
    ASSERT_TRUE(spun.ok()) << spun.status();
    // Exactly none: a negative duration is not returned as it came.
    EXPECT_EQ(*spun, absl::ZeroDuration()) << d;
  }
}

TEST(SpinTest, ValidateAcceptsTheRange) {
  EXPECT_TRUE(ValidateSpin(compute::v1::SpinRequest()).ok());  // unset: 0
  EXPECT_TRUE(ValidateSpin(Request(0, 0)).ok());
  EXPECT_TRUE(ValidateSpin(Request(0, 1)).ok());
  EXPECT_TRUE(ValidateSpin(Request(59, 999'999'999)).ok());
  EXPECT_TRUE(ValidateSpin(Request(60, 0)).ok());
}

TEST(SpinTest, ValidateRejectsPastSixtySeconds) {
  for (const auto& request : {Request(60, 1), Request(61, 0)}) {
    const absl::Status status = ValidateSpin(request);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr("spin.duration"));
    EXPECT_THAT(status.message(), HasSubstr("<= 60s"));
  }
  EXPECT_EQ(ValidateSpin(Request(60, 1)).message(),
            "spin.duration must be <= 60s (got 60.000000001s)");
}

TEST(SpinTest, ValidateRejectsNegative) {
  for (const auto& request :
       {Request(-1, 0), Request(0, -1), Request(-2, -5)}) {
    const absl::Status status = ValidateSpin(request);
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr("spin.duration must be >= 0s"));
  }
  EXPECT_EQ(ValidateSpin(Request(-1, -500'000'000)).message(),
            "spin.duration must be >= 0s (got -1.5s)");
}

TEST(SpinTest, ValidateRejectsMalformedDurations) {
  for (int32_t nanos : {1'000'000'000, -1'000'000'000, INT32_MAX, INT32_MIN}) {
    const absl::Status status = ValidateSpin(Request(0, nanos));
    EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
    EXPECT_THAT(status.message(), HasSubstr("spin.duration.nanos"));
    EXPECT_THAT(status.message(), HasSubstr("999999999"));
  }
  const absl::Status status = ValidateSpin(Request(1, -1));
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_THAT(status.message(), HasSubstr("spin.duration is malformed"));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateSpin(Request(-1, 1))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateSpin(Request(INT64_MIN, 0))));
  EXPECT_TRUE(absl::IsInvalidArgument(ValidateSpin(Request(INT64_MAX, 0))));
}

TEST(SpinTest, RunFillsResult) {
  compute::v1::RunRequest request;
  *request.mutable_spin() = Request(0, 5'000'000);
  compute::v1::RunResponse response;
  ASSERT_TRUE(RunSpinTask(request, {}, CancelToken(), &response).ok());
  ASSERT_EQ(response.result_case(), compute::v1::RunResponse::kSpin);
  const auto& spun = response.spin().spun();
  EXPECT_TRUE(spun.seconds() > 0 || spun.nanos() >= 5'000'000)
      << spun.DebugString();
  EXPECT_GE(spun.nanos(), 0);
  EXPECT_LE(spun.nanos(), 999'999'999);
}

}  // namespace
}  // namespace compute::tasks
