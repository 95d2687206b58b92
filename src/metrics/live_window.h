// The last minute of a route's traffic, for GET /api/v1/live and
// `strangler status` (PRODUCT.md "Operating a running router"): requests,
// 5xx answers and a latency histogram fine enough for p50 and p99, kept in
// 5-second slots. A slot is reused once its period has passed, so memory is
// fixed per cell and nothing has to sweep old counts away.
//
// The window is the last twelve whole slots and the current one: 60 s of
// traffic, plus up to 5 s more while the current slot fills.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <utility>

namespace strangler {

inline constexpr int kLiveSlotSeconds = 5;
inline constexpr int kLiveWindowSeconds = 60;
inline constexpr int kLiveSlots = kLiveWindowSeconds / kLiveSlotSeconds + 1;  // + the current one

// The slot period a steady-clock time falls in.
int64_t LivePeriod(std::chrono::steady_clock::time_point t);
// Whether a slot stamped `slot` is inside the window that ends in `now`.
inline bool InLiveWindow(int64_t slot, int64_t now) {
  return slot >= 0 && slot <= now && now - slot < kLiveSlots;
}

// Latency buckets: four per doubling from 50 µs (each about 19% wide), the
// last one everything from 52 s on.
inline constexpr int kLatencyBuckets = 81;
int LatencyBucket(double seconds);
// The upper bound of bucket `b`, in milliseconds (the last bucket's lower).
double LatencyBucketUpperMs(int b);

// One request, as a route's live window counts it.
struct LiveSample {
  bool error = false;      // a 5xx answer; on the --to side, a fallback too
  bool fell_back = false;  // --to failed and --else answered (--fallback)
  double seconds = -1;     // time to answer; < 0: reached no backend
};

struct LiveTotals {
  uint64_t requests = 0;
  uint64_t errors = 0;  // 5xx answers (for --to, fallbacks too)
  uint64_t fallbacks = 0;
  uint64_t timed = 0;  // requests with a latency (those that reached a backend)
  std::array<uint64_t, kLatencyBuckets> latency{};
  // The q-quantile (0 < q <= 1) of the timed requests, as the upper bound
  // of the bucket it falls in; negative when none was timed.
  double QuantileMs(double q) const;
  LiveTotals& operator+=(const LiveTotals& t);
};

// One counting thread's last minute of one (route, side). Only the owner
// adds; any thread reads (a read racing a slot's reuse can see part of the
// old counts, which a live view can bear).
class LiveCell {
 public:
  void Add(int64_t period, const LiveSample& sample);
  void AddTo(int64_t now_period, LiveTotals* totals) const;
  // Whether any slot is inside the window ending in `now_period`.
  bool Live(int64_t now_period) const;

 private:
  using Counter = std::atomic<uint32_t>;
  struct Slot {
    std::atomic<int64_t> period{-1};
    Counter requests{0}, errors{0}, fallbacks{0}, timed{0};
    std::array<Counter, kLatencyBuckets> latency{};
  };
  static void Bump(Counter& c) {
    c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  std::array<Slot, kLiveSlots> slots_;
};

// The same window for counts kept under the caller's lock: T needs +=.
template <typename T>
class RecentSlots {
 public:
  RecentSlots() {
    for (auto& slot : slots_) slot.first = -1;
  }
  void Add(int64_t period, const T& delta) {
    auto& [stamp, value] = slots_[static_cast<size_t>(period % kLiveSlots)];
    if (stamp != period) {
      stamp = period;
      value = T{};
    }
    value += delta;
  }
  T Sum(int64_t now_period) const {
    T sum{};
    for (const auto& [stamp, value] : slots_) {
      if (InLiveWindow(stamp, now_period)) sum += value;
    }
    return sum;
  }

 private:
  std::array<std::pair<int64_t, T>, kLiveSlots> slots_{};
};

}  // namespace strangler
