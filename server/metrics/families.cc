#include "server/metrics/families.h"

#include <utility>

namespace compute::metrics {

prometheus::MetricFamily MakeFamily(std::string name, std::string help,
                                    prometheus::MetricType type) {
  prometheus::MetricFamily family;
  family.name = std::move(name);
  family.help = std::move(help);
  family.type = type;
  return family;
}

void AddValue(prometheus::MetricFamily& family, LabelList labels,
              double value) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  switch (family.type) {
    case prometheus::MetricType::Counter:
      metric.counter.value = value;
      break;
    case prometheus::MetricType::Gauge:
      metric.gauge.value = value;
      break;
    default:
      metric.untyped.value = value;
      break;
  }
  family.metric.push_back(std::move(metric));
}

void AddHistogram(prometheus::MetricFamily& family, LabelList labels,
                  prometheus::ClientMetric::Histogram histogram) {
  prometheus::ClientMetric metric;
  metric.label = std::move(labels);
  metric.histogram = std::move(histogram);
  family.metric.push_back(std::move(metric));
}

}  // namespace compute::metrics
