// MetricHistogram: observations counted into fixed buckets, as Prometheus
// histograms expose them (each bucket counts what is <= its bound; the
// total count is the +Inf bucket). Plain data: the loop thread fills one
// and the snapshot copies it.
#pragma once

#include <cstdint>
#include <vector>

namespace tern {

struct MetricHistogram {
  explicit MetricHistogram(std::vector<double> upper_bounds = {})
      : bounds(std::move(upper_bounds)), counts(bounds.size(), 0) {}

  void observe(double value) {
    for (size_t i = 0; i < bounds.size(); ++i)
      if (value <= bounds[i]) ++counts[i];
    ++count;
    sum += value;
  }

  std::vector<double> bounds;
  std::vector<uint64_t> counts;  // cumulative, per bound
  uint64_t count = 0;
  double sum = 0;
};

}  // namespace tern
