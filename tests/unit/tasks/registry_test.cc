#include "server/tasks/registry.h"

#include <set>
#include <string>
#include <utility>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace compute::tasks {
namespace {

using compute::v1::RunRequest;
using compute::v1::RunResponse;
using ::testing::HasSubstr;

TEST(RegistryTest, EveryTaskCaseHasItsKind) {
  const std::pair<RunRequest::TaskCase, std::string> cases[] = {
      {RunRequest::kFib, "fib"},       {RunRequest::kSpin, "spin"},
      {RunRequest::kSha256, "sha256"}, {RunRequest::kPrimes, "primes"},
      {RunRequest::kBlur, "blur"},
  };
  for (const auto& [task_case, name] : cases) {
    const TaskKind* kind = FindTaskKind(task_case);
    ASSERT_NE(kind, nullptr) << name;
    EXPECT_EQ(kind->name, name);
    EXPECT_EQ(kind->task_case, task_case);
    EXPECT_NE(kind->validate, nullptr);
    EXPECT_NE(kind->run, nullptr);
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
            "task must be set: one of fib, spin, sha256, primes, blur");
  RunResponse response;
  EXPECT_TRUE(
      absl::IsInvalidArgument(RunTask(RunRequest(), CancelToken(), &response)));
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

  for (const RunRequest* request : {&fib, &spin, &sha256, &primes, &blur}) {
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

}  // namespace
}  // namespace compute::tasks
