// Small builders for prometheus::MetricFamily, for collectors that make their
// families at scrape time rather than keeping prometheus-cpp metric objects.
#ifndef COMPUTE_SERVER_METRICS_FAMILIES_H_
#define COMPUTE_SERVER_METRICS_FAMILIES_H_

#include <string>
#include <vector>

#include "prometheus/client_metric.h"
#include "prometheus/metric_family.h"
#include "prometheus/metric_type.h"

namespace compute::metrics {

using LabelList = std::vector<prometheus::ClientMetric::Label>;

prometheus::MetricFamily MakeFamily(std::string name, std::string help,
                                    prometheus::MetricType type);

// Appends one sample (of the family's type) with these labels.
void AddValue(prometheus::MetricFamily& family, LabelList labels, double value);
void AddHistogram(prometheus::MetricFamily& family, LabelList labels,
                  prometheus::ClientMetric::Histogram histogram);

}  // namespace compute::metrics

#endif  // COMPUTE_SERVER_METRICS_FAMILIES_H_
