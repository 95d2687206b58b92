#include "audit/summary.h"

#include <algorithm>
#include <charconv>

namespace strangler {

Result<GroupBy> ParseGroupBy(std::string_view text) {
  if (text == "route") return GroupBy::kRoute;
  if (text == "backend") return GroupBy::kBackend;
  if (text == "status") return GroupBy::kStatus;
  if (text == "path") return GroupBy::kPath;
  return Status::Usage("bad --by '" + std::string(text) + "': give route, backend, status or path");
}

const char* GroupByName(GroupBy g) {
  switch (g) {
    case GroupBy::kRoute:
      return "route";
    case GroupBy::kBackend:
      return "backend";
    case GroupBy::kStatus:
      return "status";
    case GroupBy::kPath:
      return "path";
    case GroupBy::kNone:
      break;
  }
  return "all";
}

AuditSummary::AuditSummary(GroupBy by, size_t max_groups) : by_(by), max_groups_(max_groups) {}

void AuditSummary::Group::Add(const DecisionRecord& r) {
  ++count;
  if (r.status >= 500 && r.status <= 599) ++errors;
  latency.Add(r.total_ms);
}

void AuditSummary::Add(const DecisionRecord& r) {
  ++total_;
  switch (by_) {
    case GroupBy::kRoute:
      key_.assign(RouteGroup(r));
      break;
    case GroupBy::kBackend:
      key_.assign(BackendGroup(r));
      break;
    case GroupBy::kStatus: {
      char buf[16];
      auto end = std::to_chars(buf, buf + sizeof(buf), r.status).ptr;
      key_.assign(buf, end);
      break;
    }
    case GroupBy::kPath:
      key_.assign(r.path);
      break;
    case GroupBy::kNone:
      key_.assign("all");
      break;
  }
  auto it = groups_.find(key_);
  if (it == groups_.end()) {
    if (groups_.size() >= max_groups_) {
      other_.Add(r);
      return;
    }
    it = groups_.emplace(key_, Group()).first;
  }
  it->second.Add(r);
}

GroupRow AuditSummary::RowOf(const std::string& key, const Group& g) const {
  GroupRow r;
  r.key = key;
  r.count = g.count;
  r.share = total_ == 0 ? 0 : static_cast<double>(g.count) / static_cast<double>(total_);
  r.error_rate = g.count == 0 ? 0 : static_cast<double>(g.errors) / static_cast<double>(g.count);
  r.p50_ms = g.latency.Percentile(0.50);
  r.p99_ms = g.latency.Percentile(0.99);
  return r;
}

std::vector<GroupRow> AuditSummary::Rows() const {
  std::vector<GroupRow> rows;
  rows.reserve(groups_.size() + 1);
  for (const auto& [key, g] : groups_) rows.push_back(RowOf(key, g));
  std::sort(rows.begin(), rows.end(), [](const GroupRow& a, const GroupRow& b) {
    if (a.count != b.count) return a.count > b.count;
    return a.key < b.key;
  });
  if (other_.count > 0) rows.push_back(RowOf(kOtherGroup, other_));
  return rows;
}

}  // namespace strangler
