#include "metrics/live_window.h"

#include <cmath>

namespace strangler {
namespace {

constexpr double kFirstBoundUs = 50;
constexpr int kBucketsPerDoubling = 4;

}  // namespace

int64_t LivePeriod(std::chrono::steady_clock::time_point t) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
  return s / kLiveSlotSeconds;
}

int LatencyBucket(double seconds) {
  double us = seconds * 1e6;
  if (!(us > kFirstBoundUs)) return 0;
  int b = static_cast<int>(std::ceil(std::log2(us / kFirstBoundUs) * kBucketsPerDoubling));
  return b < kLatencyBuckets - 1 ? b : kLatencyBuckets - 1;
}

double LatencyBucketUpperMs(int b) {
  return kFirstBoundUs * std::exp2(static_cast<double>(b) / kBucketsPerDoubling) / 1000;
}

double LiveTotals::QuantileMs(double q) const {
  if (timed == 0) return -1;
  // The rank of the q-quantile among `timed` samples, 1-based.
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(timed)));
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int b = 0; b < kLatencyBuckets; ++b) {
    seen += latency[static_cast<size_t>(b)];
    if (seen >= rank) return LatencyBucketUpperMs(b);
  }
  return LatencyBucketUpperMs(kLatencyBuckets - 1);
}

LiveTotals& LiveTotals::operator+=(const LiveTotals& t) {
  requests += t.requests;
  errors += t.errors;
  fallbacks += t.fallbacks;
  timed += t.timed;
  for (size_t b = 0; b < latency.size(); ++b) latency[b] += t.latency[b];
  return *this;
}

void LiveCell::Add(int64_t period, const LiveSample& sample) {
  Slot& s = slots_[static_cast<size_t>(period % kLiveSlots)];
  if (s.period.load(std::memory_order_relaxed) != period) {
    // Reused for a new period: the owner clears it, then stamps it.
    s.requests.store(0, std::memory_order_relaxed);
    s.errors.store(0, std::memory_order_relaxed);
    s.fallbacks.store(0, std::memory_order_relaxed);
    s.timed.store(0, std::memory_order_relaxed);
    for (Counter& c : s.latency) c.store(0, std::memory_order_relaxed);
    s.period.store(period, std::memory_order_release);
  }
  Bump(s.requests);
  if (sample.error) Bump(s.errors);
  if (sample.fell_back) Bump(s.fallbacks);
  if (sample.seconds < 0) return;
  Bump(s.timed);
  Bump(s.latency[static_cast<size_t>(LatencyBucket(sample.seconds))]);
}

bool LiveCell::Live(int64_t now_period) const {
  for (const Slot& s : slots_) {
    if (InLiveWindow(s.period.load(std::memory_order_relaxed), now_period)) return true;
  }
  return false;
}

void LiveCell::AddTo(int64_t now_period, LiveTotals* totals) const {
  for (const Slot& s : slots_) {
    if (!InLiveWindow(s.period.load(std::memory_order_acquire), now_period)) continue;
    totals->requests += s.requests.load(std::memory_order_relaxed);
    totals->errors += s.errors.load(std::memory_order_relaxed);
    totals->fallbacks += s.fallbacks.load(std::memory_order_relaxed);
    totals->timed += s.timed.load(std::memory_order_relaxed);
    for (size_t b = 0; b < s.latency.size(); ++b) {
      totals->latency[b] += s.latency[b].load(std::memory_order_relaxed);
    }
  }
}

}  // namespace strangler
