// LatencyHistogram: the latencies of one group of requests in constant
// memory, for p50/p99. Exact for up to kExact values, then a histogram of
// log-scale buckets 2% wide from 1 µs to 1 h (1113 counters, ~4.5 KiB),
// whose bucket midpoints are within 1% of any value in them. Percentiles are
// nearest-rank, clamped to the smallest and largest value seen. Not
// thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace strangler {

class LatencyHistogram {
 public:
  static constexpr size_t kExact = 64;
  static constexpr double kMinMs = 0.001;
  static constexpr double kMaxMs = 3600.0 * 1000;
  static constexpr double kGrowth = 1.02;

  void Add(double ms);
  // p in (0, 1]; 0 when empty.
  double Percentile(double p) const;
  uint64_t count() const { return count_; }

 private:
  static size_t BucketOf(double ms);
  double BucketValue(size_t i) const;

  std::vector<double> exact_;
  std::vector<uint32_t> buckets_;  // empty until exact_ overflows
  uint64_t count_ = 0;
  double min_ = 0;
  double max_ = 0;
};

}  // namespace strangler
