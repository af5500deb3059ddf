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
  // above max()). 0 when nothing was recorded.
  uint64_t percentile(double q) const;

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
