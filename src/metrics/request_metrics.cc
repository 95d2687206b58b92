#include "metrics/request_metrics.h"

#include <algorithm>
#include <iterator>

namespace strangler {

MetricNames::MetricNames() {
  ids_.emplace("", 0);
  names_.emplace_back();
}

uint32_t MetricNames::Id(std::string_view name) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, added] = ids_.emplace(std::string(name), static_cast<uint32_t>(names_.size()));
  if (added) names_.emplace_back(name);
  return it->second;
}

std::vector<std::string> MetricNames::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  return names_;
}

template <typename Cell, typename Key>
Cell& MetricShard::Find(std::unordered_map<Key, std::unique_ptr<Cell>>& cells, Key key) {
  auto it = cells.find(key);
  if (it != cells.end()) return *it->second;
  std::lock_guard<std::mutex> lock(mu_);
  return *cells.emplace(key, std::make_unique<Cell>()).first->second;
}

void MetricShard::CountRequest(uint32_t route, uint32_t backend, std::string_view reason,
                               int status, double seconds) {
  if (status < 100 || status > 599) return;
  size_t r = static_cast<size_t>(std::find(kReasonNames.begin(), kReasonNames.end(), reason) -
                                 kReasonNames.begin());
  if (r == kReasonNames.size()) return;
  RequestCell& cell = Find(requests_, (static_cast<uint64_t>(route) << 32) | backend);
  Add(cell.n[r][static_cast<size_t>(status / 100 - 1)]);
  if (seconds < 0) return;
  size_t b = static_cast<size_t>(
      std::lower_bound(kDurationBounds.begin(), kDurationBounds.end(), seconds) -
      kDurationBounds.begin());
  if (b < kDurationBounds.size()) Add(cell.bucket[b]);
  Add(cell.timed);
  Add(cell.micros, static_cast<uint64_t>(seconds * 1e6 + 0.5));
}

void MetricShard::CountLive(uint32_t route, uint32_t backend, const LiveSample& sample,
                            int64_t period) {
  if (period != swept_period_) {
    swept_period_ = period;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = live_.begin(); it != live_.end();) {
      it = it->second->Live(period) ? std::next(it) : live_.erase(it);
    }
  }
  Find(live_, (static_cast<uint64_t>(route) << 32) | backend).Add(period, sample);
}

void MetricShard::AddLiveTo(int64_t now_period,
                            std::map<std::pair<uint32_t, uint32_t>, LiveTotals>* live) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, cell] : live_) {
    cell->AddTo(
        now_period,
        &(*live)[{static_cast<uint32_t>(key >> 32), static_cast<uint32_t>(key & 0xffffffffu)}]);
  }
}

size_t MetricShard::live_cells() const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.size();
}

void MetricShard::CountFallback(uint32_t route) { Add(Find(fallbacks_, route)); }

void MetricShard::CountUpstreamError(uint32_t backend, UpstreamError kind) {
  Add(Find(errors_, backend).n[static_cast<size_t>(kind)]);
}

void MetricShard::AddTo(MetricTotals* totals) const {
  auto get = [](const Counter& c) { return c.load(std::memory_order_relaxed); };
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [key, cell] : requests_) {
    RequestTotals& t = totals->requests[{static_cast<uint32_t>(key >> 32),
                                         static_cast<uint32_t>(key & 0xffffffffu)}];
    for (size_t r = 0; r < kReasonNames.size(); ++r) {
      for (size_t c = 0; c < kCodeClasses.size(); ++c) t.n[r][c] += get(cell->n[r][c]);
    }
    uint64_t below = 0;
    for (size_t b = 0; b < kDurationBounds.size(); ++b) {
      below += get(cell->bucket[b]);
      t.bucket[b] += below;
    }
    t.timed += get(cell->timed);
    t.seconds += static_cast<double>(get(cell->micros)) / 1e6;
  }
  for (const auto& [route, n] : fallbacks_) totals->fallbacks[route] += get(*n);
  for (const auto& [backend, cell] : errors_) {
    auto& t = totals->upstream_errors[backend];
    for (size_t k = 0; k < t.size(); ++k) t[k] += get(cell->n[k]);
  }
}

RequestMetrics::RequestMetrics(int shards) {
  for (int i = 0; i < std::max(shards, 1); ++i) shards_.push_back(std::make_unique<MetricShard>());
}

MetricTotals RequestMetrics::Collect() const {
  MetricTotals totals;
  for (const auto& shard : shards_) shard->AddTo(&totals);
  return totals;
}

std::map<std::pair<uint32_t, uint32_t>, LiveTotals> RequestMetrics::CollectLive(
    int64_t now_period) const {
  std::map<std::pair<uint32_t, uint32_t>, LiveTotals> live;
  for (const auto& shard : shards_) shard->AddLiveTo(now_period, &live);
  return live;
}

}  // namespace strangler
