#include "server/tasks/fib.h"

#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute::tasks {
namespace {

TEST(FibTest, KnownValues) {
  const CancelToken never;
  const std::pair<uint32_t, uint64_t> cases[] = {
      {0, 0},       {1, 1},       {2, 1},          {3, 2},
      {10, 55},     {20, 6765},   {25, 75025},     {26, 121393},
      {27, 196418}, {30, 832040}, {40, 102334155},
  };
  for (const auto& [n, want] : cases) {
    absl::StatusOr<uint64_t> got = Fib(n, never);
    ASSERT_TRUE(got.ok()) << n << ": " << got.status();
    EXPECT_EQ(*got, want) << "fib(" << n << ")";
  }
}

TEST(FibTest, ValidateAcceptsTheLimit) {
  compute::v1::FibRequest request;
  request.set_n(0);
  EXPECT_TRUE(ValidateFib(request).ok());
  request.set_n(kMaxFibN);
  EXPECT_TRUE(ValidateFib(request).ok());
}

TEST(FibTest, ValidateRejectsPastTheLimit) {
  compute::v1::FibRequest request;
  request.set_n(51);
  const absl::Status status = ValidateFib(request);
  EXPECT_TRUE(absl::IsInvalidArgument(status)) << status;
  EXPECT_EQ(status.message(), "fib.n must be <= 50 (got 51)");
}

TEST(FibTest, RunFillsResult) {
  compute::v1::RunRequest request;
  request.mutable_fib()->set_n(10);
  compute::v1::RunResponse response;
  ASSERT_TRUE(RunFibTask(request, {}, CancelToken(), &response).ok());
  ASSERT_EQ(response.result_case(), compute::v1::RunResponse::kFib);
  EXPECT_EQ(response.fib().value(), 55u);
}

TEST(FibTest, RunRevalidates) {
  compute::v1::RunRequest request;
  request.mutable_fib()->set_n(51);
  compute::v1::RunResponse response;
  EXPECT_TRUE(absl::IsInvalidArgument(
      RunFibTask(request, {}, CancelToken(), &response)));
  EXPECT_EQ(response.result_case(), compute::v1::RunResponse::RESULT_NOT_SET);
}

}  // namespace
}  // namespace compute::tasks
