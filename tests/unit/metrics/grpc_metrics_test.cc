#include "server/metrics/grpc_metrics.h"

#include <cctype>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "tests/unit/metrics/exposition.h"

namespace compute::metrics {
namespace {

using testing::Exposition;
using testing::Labels;

// Go's codes.Code.String(): the gRPC name in CamelCase
// (RESOURCE_EXHAUSTED -> ResourceExhausted), but "OK" stays and "Canceled"
// has one l.
std::string GoSpelling(int code) {
  if (code == grpc::StatusCode::OK) return "OK";
  if (code == grpc::StatusCode::CANCELLED) return "Canceled";
  std::string upper =
      absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  std::string camel;
  bool start = true;
  for (char c : upper) {
    if (c == '_') {
      start = true;
      continue;
    }
    camel += start ? c : static_cast<char>(std::tolower(c));
    start = false;
  }
  return camel;
}

Labels RunLabels(Labels extra = {}) {
  Labels l = {{"grpc_service", "compute.v1.Compute"},
              {"grpc_method", "Run"},
              {"grpc_type", "unary"}};
  l.insert(extra.begin(), extra.end());
  return l;
}

Exposition Parse(const GrpcMetrics& metrics) {
  auto e = testing::SerializeAndParse(metrics.Collect());
  EXPECT_TRUE(e.ok()) << e.status();
  return e.ok() ? *e : Exposition();
}

TEST(GrpcCodeNameTest, SpelledAsGoGrpcPrometheus) {
  for (int c = 0; c < kNumGrpcCodes; ++c) {
    EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(c)), GoSpelling(c));
  }
  EXPECT_EQ(GrpcCodeName(grpc::StatusCode::DEADLINE_EXCEEDED),
            "DeadlineExceeded");
  EXPECT_EQ(GrpcCodeName(static_cast<grpc::StatusCode>(99)), "Unknown");
}

TEST(GrpcMetricsTest, EveryMethodAndCodeStartsAtZero) {
  GrpcMetrics metrics("compute.v1.Compute", {"Run"});
  Exposition e = Parse(metrics);
  EXPECT_EQ(e.types["grpc_server_started_total"], "counter");
  EXPECT_EQ(e.types["grpc_server_handled_total"], "counter");
  EXPECT_EQ(e.types["grpc_server_handling_seconds"], "histogram");
  EXPECT_EQ(e.types["compute_tasks_rejected_total"], "counter");

  EXPECT_EQ(e.Value("grpc_server_started_total", RunLabels()), 0);
  std::set<Labels> handled;
  for (const testing::Sample& s : e.All("grpc_server_handled_total")) {
    EXPECT_EQ(s.value, 0);
    handled.insert(s.labels);
  }
  std::set<Labels> want;
  for (int code = 0; code < kNumGrpcCodes; ++code) {
    want.insert(RunLabels({{"grpc_code", GoSpelling(code)}}));
  }
  EXPECT_EQ(handled, want);
  EXPECT_EQ(e.Value("grpc_server_handling_seconds_count", RunLabels()), 0);
  EXPECT_EQ(e.Value("grpc_server_handling_seconds_bucket",
                    RunLabels({{"le", "+Inf"}})),
            0);

  std::set<Labels> reasons;
  for (const testing::Sample& s : e.All("compute_tasks_rejected_total")) {
    EXPECT_EQ(s.value, 0);
    reasons.insert(s.labels);
  }
  EXPECT_EQ(reasons, (std::set<Labels>{{{"reason", "queue_full"}},
                                       {{"reason", "memory"}},
                                       {{"reason", "overload"}},
                                       {{"reason", "deadline"}},
                                       {{"reason", "draining"}},
                                       {{"reason", "tenant_share"}},
                                       {{"reason", "shed"}},
                                       {{"reason", "preempted"}},
                                       {{"reason", "expired_on_arrival"}},
                                       {{"reason", "invalid"}}}));
}

TEST(GrpcMetricsTest, CountsStartedHandledAndRejected) {
  GrpcMetrics metrics("compute.v1.Compute", {"Run"});
  for (int i = 0; i < 4; ++i) metrics.OnCallStarted("Run");
  metrics.OnCallHandled("Run", grpc::StatusCode::OK, absl::Milliseconds(2));
  metrics.OnCallHandled("Run", grpc::StatusCode::OK, absl::Milliseconds(40));
  metrics.OnCallHandled("Run", grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::Microseconds(80));
  metrics.OnRejected(service::RejectReason::kQueueFull, Priority::kSheddable);
  metrics.OnCallHandled("Run", grpc::StatusCode::CANCELLED, absl::Seconds(3));
  metrics.OnRejected(service::RejectReason::kDraining, Priority::kDefault);
  metrics.OnRejected(service::RejectReason::kDraining, Priority::kCritical);
  // Not a method of this service: not counted.
  metrics.OnCallStarted("Other");
  metrics.OnCallHandled("Other", grpc::StatusCode::OK, absl::Seconds(1));

  Exposition e = Parse(metrics);
  EXPECT_EQ(e.Value("grpc_server_started_total", RunLabels()), 4);
  EXPECT_EQ(
      e.Value("grpc_server_handled_total", RunLabels({{"grpc_code", "OK"}})),
      2);
  EXPECT_EQ(e.Value("grpc_server_handled_total",
                    RunLabels({{"grpc_code", "ResourceExhausted"}})),
            1);
  EXPECT_EQ(e.Value("grpc_server_handled_total",
                    RunLabels({{"grpc_code", "Canceled"}})),
            1);
  EXPECT_EQ(e.Sum("grpc_server_handled_total"), 4);
  EXPECT_EQ(e.Value("grpc_server_handling_seconds_count", RunLabels()), 4);
  EXPECT_DOUBLE_EQ(*e.Value("grpc_server_handling_seconds_sum", RunLabels()),
                   3.04208);
  EXPECT_EQ(e.Value("grpc_server_handling_seconds_bucket",
                    RunLabels({{"le", "0.0001"}})),
            1);
  EXPECT_EQ(e.Value("grpc_server_handling_seconds_bucket",
                    RunLabels({{"le", "0.05"}})),
            3);
  EXPECT_EQ(e.Value("grpc_server_handling_seconds_bucket",
                    RunLabels({{"le", "2.5"}})),
            3);
  EXPECT_EQ(
      e.Value("grpc_server_handling_seconds_bucket", RunLabels({{"le", "5"}})),
      4);
  EXPECT_EQ(e.Value("compute_tasks_rejected_total", {{"reason", "queue_full"}}),
            1);
  EXPECT_EQ(e.Value("compute_tasks_rejected_total", {{"reason", "deadline"}}),
            0);
  EXPECT_EQ(e.Value("compute_tasks_rejected_total", {{"reason", "draining"}}),
            2);
  // The same refusals by priority class; every class x reason series exists.
  EXPECT_EQ(e.All("compute_priority_rejected_total").size(),
            size_t{kNumPriorities} * service::kNumRejectReasons);
  EXPECT_EQ(e.Value("compute_priority_rejected_total",
                    {{"priority", "sheddable"}, {"reason", "queue_full"}}),
            1);
  EXPECT_EQ(e.Value("compute_priority_rejected_total",
                    {{"priority", "default"}, {"reason", "draining"}}),
            1);
  EXPECT_EQ(e.Value("compute_priority_rejected_total",
                    {{"priority", "critical"}, {"reason", "draining"}}),
            1);
  EXPECT_EQ(e.Sum("compute_priority_rejected_total"), 3);
}

TEST(GrpcMetricsTest, MethodsAreCountedApart) {
  GrpcMetrics metrics("pkg.Svc", {"A", "B"});
  metrics.OnCallStarted("B");
  metrics.OnCallHandled("B", grpc::StatusCode::NOT_FOUND, absl::Seconds(1));
  Exposition e = Parse(metrics);
  Labels a = {{"grpc_service", "pkg.Svc"},
              {"grpc_method", "A"},
              {"grpc_type", "unary"}};
  Labels b = a;
  b["grpc_method"] = "B";
  EXPECT_EQ(e.Value("grpc_server_started_total", a), 0);
  EXPECT_EQ(e.Value("grpc_server_started_total", b), 1);
  b["grpc_code"] = "NotFound";
  EXPECT_EQ(e.Value("grpc_server_handled_total", b), 1);
  EXPECT_EQ(e.All("grpc_server_handled_total").size(), 2u * kNumGrpcCodes);
}

TEST(GrpcMetricsTest, OtherServicesAreCountedWithTheirTypes) {
  GrpcMetrics metrics("compute.v1.Compute", {"Run"}, StandardServiceMethods());
  metrics.OnOtherCallStarted("grpc.health.v1.Health", "Check");
  metrics.OnOtherCallHandled("grpc.health.v1.Health", "Check",
                             grpc::StatusCode::OK, absl::Milliseconds(1));
  metrics.OnOtherCallStarted("grpc.health.v1.Health", "Watch");
  metrics.OnOtherCallHandled("grpc.health.v1.Health", "Watch",
                             grpc::StatusCode::CANCELLED, absl::Seconds(3));
  metrics.OnOtherCallStarted("no.such.Service", "Check");  // not counted
  metrics.OnOtherCallStarted("grpc.health.v1.Health", "Run");
  Exposition e = Parse(metrics);
  Labels check = {{"grpc_service", "grpc.health.v1.Health"},
                  {"grpc_method", "Check"},
                  {"grpc_type", "unary"}};
  Labels watch = {{"grpc_service", "grpc.health.v1.Health"},
                  {"grpc_method", "Watch"},
                  {"grpc_type", "server_stream"}};
  Labels reflection = {
      {"grpc_service", "grpc.reflection.v1alpha.ServerReflection"},
      {"grpc_method", "ServerReflectionInfo"},
      {"grpc_type", "bidi_stream"}};
  EXPECT_EQ(e.Value("grpc_server_started_total", check), 1);
  EXPECT_EQ(e.Value("grpc_server_started_total", watch), 1);
  EXPECT_EQ(e.Value("grpc_server_started_total", reflection), 0);
  EXPECT_EQ(e.Value("grpc_server_started_total", RunLabels()), 0);
  EXPECT_EQ(e.Sum("grpc_server_started_total"), 2);
  Labels watch_cancelled = watch;
  watch_cancelled["grpc_code"] = "Canceled";
  EXPECT_EQ(e.Value("grpc_server_handled_total", watch_cancelled), 1);
  EXPECT_EQ(e.Value("grpc_server_handling_seconds_count", check), 1);
  // Every method x code from the start: 4 methods x 17 codes.
  EXPECT_EQ(e.All("grpc_server_handled_total").size(), 4u * kNumGrpcCodes);
}

}  // namespace
}  // namespace compute::metrics
