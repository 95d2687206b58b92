// AuditSummary: matched decision lines grouped by route, backend, status or
// path, as `strangler audit --by` counts them: count, share of all matched,
// 5xx rate, p50/p99 of total_ms. Streams: memory is bounded by the number of
// groups, whatever the number of lines. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "audit/filter.h"
#include "audit/histogram.h"
#include "base/status.h"
#include "decisions/decision_record.h"

namespace strangler {

enum class GroupBy { kNone, kRoute, kBackend, kStatus, kPath };
Result<GroupBy> ParseGroupBy(std::string_view text);  // route|backend|status|path
const char* GroupByName(GroupBy g);

// Where requests go once kMaxGroups distinct groups exist. (The requests no
// route matched are the group kDefaultGroup.)
inline constexpr const char* kOtherGroup = "(other)";
inline constexpr size_t kMaxGroups = 10000;

struct GroupRow {
  std::string key;  // route, backend, status code or path; or the groups above
  uint64_t count = 0;
  double share = 0;       // count / all matched
  double error_rate = 0;  // share of 5xx in the group
  double p50_ms = 0;
  double p99_ms = 0;
};

class AuditSummary {
 public:
  // Each group holds at most ~4.5 KiB (its LatencyHistogram).
  explicit AuditSummary(GroupBy by, size_t max_groups = kMaxGroups);
  void Add(const DecisionRecord& r);
  uint64_t total() const { return total_; }
  bool folded() const { return other_.count > 0; }  // some went to kOtherGroup
  // By count (descending), then key; kOtherGroup last.
  std::vector<GroupRow> Rows() const;

 private:
  struct Group {
    uint64_t count = 0;
    uint64_t errors = 0;
    LatencyHistogram latency;
    void Add(const DecisionRecord& r);
  };
  GroupRow RowOf(const std::string& key, const Group& g) const;

  GroupBy by_;
  size_t max_groups_;
  uint64_t total_ = 0;
  std::unordered_map<std::string, Group> groups_;
  Group other_;
  std::string key_;  // scratch
};

}  // namespace strangler
