#include "histogram.h"

#include <algorithm>
#include <cmath>

namespace tern::bench {
namespace {

// Values < kExact get a bucket each; above, each power of two [2^k, 2^(k+1))
// is split into kSubBuckets buckets of width 2^(k-7).
constexpr int kSubBits = 7;
constexpr uint64_t kSubBuckets = uint64_t(1) << kSubBits;  // 128
constexpr uint64_t kExact = kSubBuckets * 2;               // 256
// Values are clamped below 2^63; the top power of two is [2^62, 2^63).
constexpr int kTopBit = 62;
constexpr size_t kBuckets =
    kExact + (kTopBit - kSubBits) * kSubBuckets;  // 7296

int top_bit(uint64_t v) { return 63 - __builtin_clzll(v); }

}  // namespace

Histogram::Histogram() : counts_(kBuckets, 0) {}

size_t Histogram::bucket_of(uint64_t value) {
  if (value < kExact) return size_t(value);
  int shift = top_bit(value) - kSubBits;  // >= 1
  uint64_t sub = value >> shift;          // in [128, 256)
  return kExact + size_t(shift - 1) * kSubBuckets + size_t(sub - kSubBuckets);
}

uint64_t Histogram::highest_in(size_t bucket) {
  if (bucket < kExact) return bucket;
  size_t above = bucket - kExact;
  int shift = int(above / kSubBuckets) + 1;
  uint64_t sub = kSubBuckets + above % kSubBuckets;
  return ((sub + 1) << shift) - 1;
}

void Histogram::record(uint64_t value, uint64_t count) {
  if (count == 0) return;
  value = std::min<uint64_t>(value, (uint64_t(1) << (kTopBit + 1)) - 1);
  counts_[bucket_of(value)] += count;
  count_ += count;
  sum_ += value * count;
  min_ = std::min(min_, value);
  max_ = std::max(max_, value);
}

void Histogram::merge(const Histogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  min_ = std::min(min_, other.min_);
  max_ = std::max(max_, other.max_);
}

uint64_t Histogram::percentile(double q) const {
  if (count_ == 0) return 0;
  if (q <= 0) return min_;  // the first bucket's edge may lie above it
  q = std::min(q, 1.0);
  uint64_t rank =
      std::max<uint64_t>(1, uint64_t(std::ceil(q * double(count_))));
  uint64_t seen = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= rank) return std::clamp(highest_in(i), min_, max_);
  }
  return max_;
}

std::vector<std::pair<double, uint64_t>> Histogram::percentile_curve(
    int ticks) const {
  std::vector<std::pair<double, uint64_t>> points;
  if (count_ == 0) return points;
  ticks = std::max(ticks, 1);
  // Halving k covers q in [1 - 2^-k, 1 - 2^-(k+1)). Stop once 2^-k of the
  // values is less than one value: from there on every point is max().
  for (int k = 0; k < kTopBit && std::ldexp(double(count_), -k) >= 1; ++k) {
    double tail = std::ldexp(1.0, -k);
    for (int j = 0; j < ticks; ++j) {
      double q = 1 - tail + tail / 2 * j / ticks;
      points.emplace_back(q, percentile(q));
    }
  }
  points.emplace_back(1.0, max_);
  return points;
}

std::vector<std::pair<uint64_t, uint64_t>> Histogram::buckets() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  for (size_t i = 0; i < kBuckets; ++i) {
    if (counts_[i] == 0) continue;
    out.emplace_back(std::clamp(highest_in(i), min_, max_), counts_[i]);
  }
  return out;
}

}  // namespace tern::bench
