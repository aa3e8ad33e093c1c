// Test support: a parser for the Prometheus text exposition format, so that
// tests check values and label sets rather than substrings, and a minimal
// HTTP/1.0 GET over a POSIX socket (for /metrics and Prometheus's API).
//
// The parser takes sample lines `name{label="value",...} value [timestamp]`
// and `# TYPE name type` lines; it ignores other comments and blank lines
// and fails on anything else, and, as Prometheus does, on a label value
// that is not UTF-8.
#ifndef COMPUTE_TESTS_UNIT_METRICS_EXPOSITION_H_
#define COMPUTE_TESTS_UNIT_METRICS_EXPOSITION_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "prometheus/metric_family.h"

namespace compute::metrics::testing {

using Labels = std::map<std::string, std::string>;

struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

struct Exposition {
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;  // family name -> "counter", ...

  // Samples named `name` whose labels include every one of `labels`.
  std::vector<Sample> All(const std::string& name,
                          const Labels& labels = {}) const;
  // The value of the one sample named `name` with exactly `labels`, if any.
  std::optional<double> Value(const std::string& name,
                              const Labels& labels = {}) const;
  // The sum over All(name, labels).
  double Sum(const std::string& name, const Labels& labels = {}) const;
};

absl::StatusOr<Exposition> ParseExposition(const std::string& text);

// `families` as prometheus::TextSerializer writes them, parsed back.
absl::StatusOr<Exposition> SerializeAndParse(
    const std::vector<prometheus::MetricFamily>& families);

struct HttpResponse {
  int status = 0;
  std::string content_type;
  std::string body;
};

// GET http://host:port/target with HTTP/1.0 (the server closes the
// connection after the body). Fails after `timeout`.
absl::StatusOr<HttpResponse> HttpGet(
    const std::string& host, int port, const std::string& target,
    absl::Duration timeout = absl::Seconds(10));

// A port free on 127.0.0.1 now, released for a child process to bind
// (tests that spawn servers use it). Drawn outside the kernel's ephemeral
// range (ip_local_port_range), so that no outgoing connection of another
// test, and no server bound to port 0, takes it before the child binds it:
// the kernel's own pick (bind to 0) came from that range, and still does
// when the range leaves no room on either side. 0 if none found.
int FreeLoopbackPort();

// Scrapes http://127.0.0.1:port/metrics and parses it.
absl::StatusOr<Exposition> Scrape(int port);

}  // namespace compute::metrics::testing

#endif  // COMPUTE_TESTS_UNIT_METRICS_EXPOSITION_H_
