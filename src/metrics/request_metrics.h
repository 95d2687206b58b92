// What the data plane counts for GET /metrics: requests by route, backend,
// reason and status class, their durations, fallbacks and upstream errors.
// Each counting thread (a data-plane worker) owns a shard: it adds to its own
// cells with relaxed atomics and takes no lock once a cell exists (a new
// label set takes the shard's mutex once, the only time the owner locks it).
// A scrape sums the shards (Collect), locking each only to walk its cells.
// Route and backend names become small ids off the request path
// (MetricNames::Id at snapshot build), so counting is by number.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "metrics/live_window.h"

namespace strangler {

// The reasons a decision-log line can give (PRODUCT.md "Decision log"), as
// the `reason` label; kReasonNames.size() is the number of them.
inline constexpr std::array<std::string_view, 8> kReasonNames = {
    "default", "route", "split", "fallback", "shadow", "override", "queue", "refused",
};
// The `code` label: the status class of the answer.
inline constexpr std::array<std::string_view, 5> kCodeClasses = {"1xx", "2xx", "3xx", "4xx", "5xx"};
// strangler_request_duration_seconds' bucket bounds (the +Inf bucket is
// the count): a proxied request on loopback takes well under a millisecond,
// one that waits for a slow backend seconds.
inline constexpr std::array<double, 14> kDurationBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
// strangler_upstream_errors_total's `kind` label, by UpstreamError.
enum class UpstreamError { kRefused, kReset, kTimeout, kBadResponse, kTls };
inline constexpr std::array<std::string_view, 5> kUpstreamErrorNames = {
    "refused", "reset", "timeout", "bad_response", "tls"};

// Names (of routes, or of backends) as small ids, kept for the life of the
// process: a route deleted and added again keeps its id and its counts. Id
// 0 is "" (no route matched; no backend, for the router's own answers).
// Thread-safe.
class MetricNames {
 public:
  MetricNames();
  uint32_t Id(std::string_view name);
  // Every name, indexed by id.
  std::vector<std::string> All() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<std::string, uint32_t> ids_;  // guarded by mu_
  std::vector<std::string> names_;                 // guarded by mu_
};

// Sums over every shard, by label ids.
struct RequestTotals {
  // [reason][code class]
  std::array<std::array<uint64_t, kCodeClasses.size()>, kReasonNames.size()> n{};
  // Cumulative as Prometheus wants them: bucket[i] counts durations <= kDurationBounds[i].
  std::array<uint64_t, kDurationBounds.size()> bucket{};
  uint64_t timed = 0;  // requests with a duration (those that reached a backend)
  double seconds = 0;  // their durations' sum
};
struct MetricTotals {
  std::map<std::pair<uint32_t, uint32_t>, RequestTotals> requests;  // by (route, backend)
  std::map<uint32_t, uint64_t> fallbacks;                           // by route
  std::map<uint32_t, std::array<uint64_t, kUpstreamErrorNames.size()>>
      upstream_errors;  // by backend
};

// One thread's counts. Only the owning thread counts into it.
class MetricShard {
 public:
  MetricShard() = default;
  MetricShard(const MetricShard&) = delete;
  MetricShard& operator=(const MetricShard&) = delete;

  // A request answered with `status` (100..599; others are not counted);
  // `seconds` < 0 when it reached no backend (no duration is kept).
  void CountRequest(uint32_t route, uint32_t backend, std::string_view reason, int status,
                    double seconds);
  // The same request in the route's last minute (live_window.h), by the
  // backend of the side it went to: the route's --to for a request that fell
  // back from it. `period` is LivePeriod of when it ended. Once a period,
  // cells with nothing left in the window are dropped (a route removed, or
  // quiet for a minute, costs nothing).
  void CountLive(uint32_t route, uint32_t backend, const LiveSample& sample, int64_t period);
  void CountFallback(uint32_t route);
  void CountUpstreamError(uint32_t backend, UpstreamError kind);
  // Adds this shard's counts to *totals. Any thread.
  void AddTo(MetricTotals* totals) const;
  // Adds this shard's last minute, by (route, backend), to *live. Any thread.
  void AddLiveTo(int64_t now_period,
                 std::map<std::pair<uint32_t, uint32_t>, LiveTotals>* live) const;
  // Live cells kept (for tests).
  size_t live_cells() const;

 private:
  using Counter = std::atomic<uint64_t>;
  struct RequestCell {
    std::array<std::array<Counter, kCodeClasses.size()>, kReasonNames.size()> n{};
    std::array<Counter, kDurationBounds.size()> bucket{};  // not cumulative here
    Counter timed{0};
    Counter micros{0};  // durations' sum, in microseconds
  };
  struct ErrorCell {
    std::array<Counter, kUpstreamErrorNames.size()> n{};
  };
  // Adds 1 (or d): only the owner writes, so a plain load and store will do.
  static void Add(Counter& c, uint64_t d = 1) {
    c.store(c.load(std::memory_order_relaxed) + d, std::memory_order_relaxed);
  }
  template <typename Cell, typename Key>
  Cell& Find(std::unordered_map<Key, std::unique_ptr<Cell>>& cells, Key key);

  // The owner reads these maps without the mutex (only it changes them);
  // it takes the mutex to add a cell, as AddTo does to walk them.
  mutable std::mutex mu_;
  std::unordered_map<uint64_t, std::unique_ptr<RequestCell>> requests_;  // (route << 32) | backend
  std::unordered_map<uint32_t, std::unique_ptr<Counter>> fallbacks_;     // by route
  std::unordered_map<uint32_t, std::unique_ptr<ErrorCell>> errors_;      // by backend
  std::unordered_map<uint64_t, std::unique_ptr<LiveCell>> live_;         // (route << 32) | backend
  int64_t swept_period_ = -1;                                            // owner only
};

// The shards of every counting thread, and the names their ids stand for.
class RequestMetrics {
 public:
  explicit RequestMetrics(int shards);
  MetricShard& shard(int i) { return *shards_[static_cast<size_t>(i)]; }
  MetricNames& routes() { return routes_; }
  MetricNames& backends() { return backends_; }
  const MetricNames& routes() const { return routes_; }
  const MetricNames& backends() const { return backends_; }
  // Sums every shard. Any thread.
  MetricTotals Collect() const;
  // Every shard's last minute, by (route, backend). Any thread.
  std::map<std::pair<uint32_t, uint32_t>, LiveTotals> CollectLive(int64_t now_period) const;

 private:
  std::vector<std::unique_ptr<MetricShard>> shards_;
  MetricNames routes_, backends_;
};

}  // namespace strangler
