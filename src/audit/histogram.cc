#include "audit/histogram.h"

#include <algorithm>
#include <cmath>

namespace strangler {

namespace {
const double kLogGrowth = std::log(LatencyHistogram::kGrowth);
const size_t kBuckets =
    static_cast<size_t>(
        std::ceil(std::log(LatencyHistogram::kMaxMs / LatencyHistogram::kMinMs) / kLogGrowth)) +
    2;
}  // namespace

size_t LatencyHistogram::BucketOf(double ms) {
  if (!(ms >= kMinMs)) return 0;  // also NaN
  if (ms >= kMaxMs) return kBuckets - 1;
  size_t i = 1 + static_cast<size_t>(std::log(ms / kMinMs) / kLogGrowth);
  return std::min(i, kBuckets - 2);
}

double LatencyHistogram::BucketValue(size_t i) const {
  double v;
  if (i == 0) {
    v = min_;
  } else if (i == kBuckets - 1) {
    v = max_;
  } else {
    v = kMinMs * std::exp(kLogGrowth * (static_cast<double>(i - 1) + 0.5));
  }
  return std::clamp(v, min_, max_);
}

void LatencyHistogram::Add(double ms) {
  if (count_ == 0 || ms < min_) min_ = ms;
  if (count_ == 0 || ms > max_) max_ = ms;
  ++count_;
  if (buckets_.empty()) {
    if (exact_.size() < kExact) {
      exact_.push_back(ms);
      return;
    }
    buckets_.assign(kBuckets, 0);
    for (double v : exact_) ++buckets_[BucketOf(v)];
    exact_.clear();
    exact_.shrink_to_fit();
  }
  ++buckets_[BucketOf(ms)];
}

double LatencyHistogram::Percentile(double p) const {
  if (count_ == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(std::ceil(p * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  if (buckets_.empty()) {
    std::vector<double> v = exact_;
    std::nth_element(v.begin(), v.begin() + static_cast<long>(rank - 1), v.end());
    return v[rank - 1];
  }
  uint64_t seen = 0;
  for (size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return BucketValue(i);
  }
  return max_;
}

}  // namespace strangler
