#include "client/summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "client/format.h"

namespace compute::client {
namespace {

struct Row {
  int64_t upper;  // inclusive, ns
  uint64_t count;
};

std::vector<Row> HistogramRows(const Histogram& h, int rows) {
  std::vector<Row> out;
  if (h.count() == 0) return out;
  double lo = std::max<double>(1, static_cast<double>(h.min()));
  double hi = std::max<double>(lo, static_cast<double>(h.max()));
  if (hi == lo) rows = 1;
  for (int j = 1; j <= rows; ++j) {
    double upper = lo * std::pow(hi / lo, static_cast<double>(j) / rows);
    out.push_back({j == rows ? h.max() : std::llround(upper), 0});
  }
  for (int b = 0; b < Histogram::kNumBuckets; ++b) {
    uint64_t n = h.count_at(b);
    if (n == 0) continue;
    int64_t v = std::clamp(Histogram::BucketHigh(b), h.min(), h.max());
    auto row = std::lower_bound(
        out.begin(), out.end(), v,
        [](const Row& r, int64_t value) { return r.upper < value; });
    if (row == out.end()) --row;
    row->count += n;
  }
  return out;
}

double NanosToMillis(int64_t ns) { return static_cast<double>(ns) / 1e6; }

const double kQuantiles[] = {0.5, 0.9, 0.99, 0.999};
const char* const kQuantileNames[] = {"p50", "p90", "p99", "p99.9"};
const char* const kQuantileKeys[] = {"p50", "p90", "p99", "p99_9"};

std::string LoadLine(const LoadResult& r, const BenchInfo& info) {
  if (info.rate > 0) {
    return absl::StrFormat("open loop, %.1f calls/s asked, %.1f/s offered",
                           info.rate, r.offered_rate());
  }
  return absl::StrCat("closed loop, ", info.concurrency, " calls in flight");
}

}  // namespace

std::string StatusCodeName(int code) {
  return absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
}

std::string ProgressLine(const LoadProgress& p) {
  return absl::StrFormat(
      "[%4.0fs] sent %d  done %d (%.1f/s)  ok %d  refused %d  p99 %s",
      absl::ToDoubleSeconds(p.elapsed), p.sent, p.completed, p.rate, p.ok,
      p.refused, p.p99_ns ? FormatNanos(*p.p99_ns) : "-");
}

std::string HistogramText(const Histogram& h, int rows) {
  std::vector<Row> out = HistogramRows(h, rows);
  if (out.empty()) return "  (no OK calls)\n";
  uint64_t most = 1;
  for (const Row& r : out) most = std::max(most, r.count);
  std::string text;
  for (const Row& r : out) {
    int bar = static_cast<int>((r.count * 40 + most - 1) / most);
    absl::StrAppendFormat(&text, "  <= %-8s %8d |%s\n", FormatNanos(r.upper),
                          r.count, std::string(bar, '#'));
  }
  return text;
}

// Calls carrying at least this many bytes either way get a data line.
constexpr size_t kDataCallBytes = 1024;

std::string SummaryText(const LoadResult& r, const BenchInfo& info,
                        bool histogram) {
  const Histogram& h = r.ok_latency;
  std::string text = "Summary\n";
  absl::StrAppendFormat(&text, "  target      %s (%d connection%s)\n",
                        info.target, info.connections,
                        info.connections == 1 ? "" : "s");
  absl::StrAppendFormat(&text, "  task        %s\n", info.task);
  absl::StrAppendFormat(&text, "  load        %s\n", LoadLine(r, info));
  absl::StrAppendFormat(&text, "  elapsed     %s\n", HumanDuration(r.elapsed));
  absl::StrAppendFormat(&text, "  calls       %d sent, %d completed, %.1f/s\n",
                        r.sent, r.completed(), r.throughput());
  if (r.behind_schedule > 0) {
    absl::StrAppendFormat(&text,
                          "  behind      %d calls due by the end not sent "
                          "(the client fell behind its schedule)\n",
                          r.behind_schedule);
  }
  // Data-carrying calls (blur, sha256 of a file): the bytes moved.
  if (r.request_bytes >= kDataCallBytes ||
      (r.ok() > 0 && r.ok_response_bytes / r.ok() >= kDataCallBytes)) {
    absl::StrAppendFormat(&text, "  data        %.1f MB/s in, %.1f MB/s out\n",
                          r.mb_per_s_in(), r.mb_per_s_out());
  }
  absl::StrAppendFormat(&text, "Latency of OK calls (%d)\n ", h.count());
  for (int i = 0; i < 4; ++i) {
    absl::StrAppend(
        &text, " ", kQuantileNames[i], " ",
        h.count() > 0 ? FormatNanos(h.Percentile(kQuantiles[i])) : "-", " ");
  }
  absl::StrAppend(&text, " max ", h.count() > 0 ? FormatNanos(h.max()) : "-",
                  "\n");
  absl::StrAppend(&text, "Status codes\n");
  uint64_t completed = std::max<uint64_t>(1, r.completed());
  for (int code = 0; code < kNumStatusCodes; ++code) {
    if (r.codes[code] == 0) continue;
    absl::StrAppendFormat(&text, "  %-20s %8d  %5.1f%%\n", StatusCodeName(code),
                          r.codes[code], 100.0 * r.codes[code] / completed);
  }
  absl::StrAppendFormat(&text, "Refused (RESOURCE_EXHAUSTED): %.1f%%\n",
                        100.0 * r.refused_share());
  absl::StrAppendFormat(&text, "Errors (any other failure): %.1f%%\n",
                        100.0 * r.error_share());
  if (r.retries > 0) {
    absl::StrAppendFormat(&text, "Retries (on another replica): %d\n",
                          r.retries);
  }
  if (r.retries_over_budget > 0) {
    absl::StrAppendFormat(
        &text,
        "Retries not made (budget: 20%% of calls + calls in flight, at "
        "least 10, spent): %d\n",
        r.retries_over_budget);
  }
  if (!r.replica_calls.empty()) {
    absl::StrAppend(&text, "Attempts per replica\n");
    for (const auto& [address, calls] : r.replica_calls) {
      absl::StrAppendFormat(&text, "  %-28s %8d\n", address, calls);
    }
  }
  if (histogram) {
    absl::StrAppend(&text, "Latency histogram of OK calls\n", HistogramText(h));
  }
  return text;
}

google::protobuf::Struct SummaryJson(const LoadResult& r, const BenchInfo& info,
                                     bool histogram) {
  const Histogram& h = r.ok_latency;
  google::protobuf::Struct s;
  Put(s, "target", info.target);
  Put(s, "task", info.task);
  Put(s, "connections", static_cast<double>(info.connections));
  if (info.rate > 0) {
    Put(s, "mode", "open");
    Put(s, "rate", info.rate);
    Put(s, "offered_rate", r.offered_rate());
    Put(s, "behind_schedule", static_cast<double>(r.behind_schedule));
  } else {
    Put(s, "mode", "closed");
    Put(s, "concurrency", static_cast<double>(info.concurrency));
  }
  Put(s, "elapsed_seconds", absl::ToDoubleSeconds(r.elapsed));
  Put(s, "sent", static_cast<double>(r.sent));
  Put(s, "completed", static_cast<double>(r.completed()));
  Put(s, "throughput", r.throughput());
  // Stopped early, the server gone (LoadResult::unreachable); only then.
  if (r.unreachable) Put(s, "unreachable", true);
  Put(s, "mb_per_s_in", r.mb_per_s_in());
  Put(s, "mb_per_s_out", r.mb_per_s_out());
  google::protobuf::Struct latency;
  Put(latency, "count", static_cast<double>(h.count()));
  for (int i = 0; i < 4; ++i) {
    Put(latency, kQuantileKeys[i], NanosToMillis(h.Percentile(kQuantiles[i])));
  }
  Put(latency, "min", NanosToMillis(h.min()));
  Put(latency, "max", NanosToMillis(h.max()));
  Put(latency, "mean", h.mean() / 1e6);
  Put(s, "latency_ms", std::move(latency));
  const Histogram& refused = r.refused_latency;
  google::protobuf::Struct refused_latency;
  Put(refused_latency, "count", static_cast<double>(refused.count()));
  for (int i = 0; i < 4; ++i) {
    Put(refused_latency, kQuantileKeys[i],
        NanosToMillis(refused.Percentile(kQuantiles[i])));
  }
  Put(refused_latency, "max", NanosToMillis(refused.max()));
  Put(s, "refused_latency_ms", std::move(refused_latency));
  google::protobuf::Struct codes;
  for (int code = 0; code < kNumStatusCodes; ++code) {
    if (r.codes[code] == 0) continue;
    Put(codes, StatusCodeName(code), static_cast<double>(r.codes[code]));
  }
  Put(s, "status", std::move(codes));
  Put(s, "refused", static_cast<double>(r.refused()));
  Put(s, "refused_share", r.refused_share());
  Put(s, "errors", static_cast<double>(r.errors()));
  Put(s, "error_share", r.error_share());
  // Only where this client retries itself (least_loaded, whose runs list
  // their replicas): gRPC's retry policy, under the other --lb, retries
  // inside the channel, where no count is to be had; 0 would be wrong.
  if (!r.replica_calls.empty()) {
    Put(s, "retries", static_cast<double>(r.retries));
    Put(s, "retries_over_budget", static_cast<double>(r.retries_over_budget));
  }
  if (!r.replica_calls.empty()) {
    google::protobuf::Value replicas;
    for (const auto& [address, calls] : r.replica_calls) {
      google::protobuf::Struct entry;
      Put(entry, "address", address);
      Put(entry, "calls", static_cast<double>(calls));
      *replicas.mutable_list_value()->add_values()->mutable_struct_value() =
          std::move(entry);
    }
    (*s.mutable_fields())["replicas"] = std::move(replicas);
  }
  if (histogram) {
    google::protobuf::Value rows;
    for (const Row& row : HistogramRows(h, 16)) {
      google::protobuf::Struct entry;
      Put(entry, "le_ms", NanosToMillis(row.upper));
      Put(entry, "count", static_cast<double>(row.count));
      *rows.mutable_list_value()->add_values()->mutable_struct_value() =
          std::move(entry);
    }
    Put(s, "histogram", std::move(rows));
  }
  return s;
}

}  // namespace compute::client
