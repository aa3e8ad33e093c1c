// What `bench` prints: the live line, the final summary as text or JSON,
// and the text latency histogram (--hist).
#ifndef COMPUTE_CLIENT_SUMMARY_H_
#define COMPUTE_CLIENT_SUMMARY_H_

#include <string>

#include "client/histogram.h"
#include "client/load.h"
#include "google/protobuf/struct.pb.h"

namespace compute::client {

struct BenchInfo {
  std::string target;
  std::string task;     // Describe(request)
  int concurrency = 0;  // closed loop
  double rate = 0;      // > 0: open loop
  int connections = 1;
};

// "RESOURCE_EXHAUSTED" for grpc::StatusCode 8, ...
std::string StatusCodeName(int code);

// One line, no newline: elapsed, sent, completion rate, OK, refused, p99.
std::string ProgressLine(const LoadProgress& p);

// Latency (ns) in `rows` log-spaced ranges from min to max, with bars.
std::string HistogramText(const Histogram& h, int rows = 16);

std::string SummaryText(const LoadResult& r, const BenchInfo& info,
                        bool histogram);
// Latencies in milliseconds; "status" maps code names to counts (codes
// never seen are left out).
google::protobuf::Struct SummaryJson(const LoadResult& r, const BenchInfo& info,
                                     bool histogram);

}  // namespace compute::client

#endif  // COMPUTE_CLIENT_SUMMARY_H_
