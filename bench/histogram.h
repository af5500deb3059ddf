// Histogram: a log-linear histogram of latencies, in the style of HdrHistogram.
//
// Values below 256 are counted exactly. From 256 up, each power of two is cut
// into 128 buckets of equal width, so a bucket is never wider than 1/128 of the
// values it holds: every percentile is within 0.8% of the truth, and memory is
// one fixed array (about 58 KB) whatever the range of values.
//
// Not thread-safe: each thread records into its own Histogram and the owner
// merges them once the threads are done.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace tern::bench {

class Histogram {
 public:
  Histogram();

  void record(uint64_t value, uint64_t count = 1);
  void merge(const Histogram& other);

  uint64_t count() const { return count_; }
  uint64_t min() const { return count_ == 0 ? 0 : min_; }
  uint64_t max() const { return max_; }
  double mean() const { return count_ == 0 ? 0.0 : double(sum_) / count_; }

  // The smallest recorded value v such that a fraction `q` (0..1) of all
  // recorded values are <= v, rounded up to its bucket's upper edge (and never
  // above max()); min() for q = 0. 0 when nothing was recorded.
  uint64_t percentile(double q) const;

  // (q, percentile(q)) at the points HdrHistogram's "percentile
  // distribution" prints: q from 0 in steps that halve each time 1 - q
  // halves, `ticks` steps per halving (0, 0.1, .. 0.4, 0.5, 0.55, .. 0.7,
  // 0.75, 0.775, ...), as long as 1 - q leaves at least one value above
  // (finer would only repeat max()), then q = 1. Fine enough to plot
  // latency against 1 / (1 - q) on a log axis. Empty if nothing recorded.
  std::vector<std::pair<double, uint64_t>> percentile_curve(int ticks) const;

  // The non-empty buckets, lowest first, as (highest value the bucket
  // holds, count): the whole distribution, to within a bucket's width.
  std::vector<std::pair<uint64_t, uint64_t>> buckets() const;

 private:
  static size_t bucket_of(uint64_t value);
  static uint64_t highest_in(size_t bucket);

  std::vector<uint64_t> counts_;
  uint64_t count_ = 0;
  uint64_t min_ = UINT64_MAX;
  uint64_t max_ = 0;
  // Wraps only after ~584 years of nanoseconds: good enough for a mean.
  uint64_t sum_ = 0;
};

}  // namespace tern::bench
