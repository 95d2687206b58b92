// Audit: reading decision logs back (each line read into a DecisionLine by
// decisions/decision_line.h). Filters (time window, route, backend, status, path prefix,
// request id), streaming summaries grouped by route, backend, status or path
// (count, share, 5xx rate, p50/p99 of total_ms in constant memory per group),
// and a line reader for plain, rotated and gzip-compressed log files.
// No CLI here (cli_audit.cc prints). Objects are not thread-safe; use one per
// thread.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/status.h"
#include "decisions/decision_line.h"
#include "rules/rules.h"

namespace strangler {

// Which requests to keep; every condition given must hold.
struct AuditFilter {
  int64_t since_ms = std::numeric_limits<int64_t>::min();  // ts >= since
  int64_t until_ms = std::numeric_limits<int64_t>::max();  // ts < until
  std::optional<std::string> route;  // kDefaultGroup matches the default (null)
  std::optional<std::string> backend;
  std::optional<std::string> path_prefix;  // segment prefix, as a route's --path
  std::optional<std::string> request_id;   // the id, or a prefix of it
  int status_lo = 0;  // inclusive range; 0/0 = any
  int status_hi = 0;

  bool Matches(const DecisionRecord& r) const;
};
// "404" -> [404, 404]; "5xx" -> [500, 599]. Usage error otherwise.
Status ParseStatusFilter(std::string_view text, AuditFilter* f);
// `/api/orders` matches /api/orders and /api/orders/7, not /api/ordersX;
// a prefix ending in '/' matches anything below it.
bool PathHasPrefix(std::string_view path, std::string_view prefix);

// Latencies of one group in constant memory: exact for up to kExact values,
// then a histogram of log-scale buckets 2% wide from 1 µs to 1 h (1113
// counters), whose bucket midpoints are within 1% of any value in them.
// Percentiles are nearest-rank, clamped to the smallest and largest value seen.
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

enum class GroupBy { kNone, kRoute, kBackend, kStatus, kPath };
Result<GroupBy> ParseGroupBy(std::string_view text);  // route|backend|status|path
const char* GroupByName(GroupBy g);

// The group of requests that went to the default backend (route null).
inline constexpr const char* kDefaultGroup = "(default)";
// Where requests go once kMaxGroups distinct groups exist.
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

// Streams matched entries into per-group counters. Memory is bounded by
// max_groups (each at most ~4.5 KiB), whatever the number of lines.
class AuditSummary {
 public:
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

// Output. The table has columns GROUP COUNT SHARE ERRORS P50_MS P99_MS
// (GROUP named after `by`); JSON is an array of objects with the group's
// field (`route` null for the default, `status` a number), `count`, `share`,
// `error_rate`, `p50_ms`, `p99_ms`.
std::string SummaryTable(GroupBy by, const std::vector<GroupRow>& rows);
Json SummaryJson(GroupBy by, const std::vector<GroupRow>& rows);
// One matched line for humans:
// "2026-11-28T04:13:55.123Z 200 GET /api/orders/7 -> new (split, route orders) 1.234ms id=r1"
std::string HumanLine(const DecisionLine& line);

// Reads lines from a plain or gzip file (zlib reads both), or stdin for "-".
class LineReader {
 public:
  static Result<std::unique_ptr<LineReader>> Open(const std::string& path);
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // The next line without its '\n' (nor a '\r' before it); valid until the
  // next call. False at the end or on a read error (see status()).
  bool Next(std::string_view* line);
  // True when the last line returned had no final newline (a live log's
  // line still being written).
  bool unterminated() const { return unterminated_; }
  const Status& status() const { return status_; }

 private:
  LineReader(void* gz, std::string path);
  bool Fill();

  void* gz_;  // gzFile
  std::string path_;
  std::vector<char> buf_;
  size_t begin_ = 0;
  size_t end_ = 0;
  bool eof_ = false;
  bool unterminated_ = false;
  Status status_;
};

struct ScanStats {
  uint64_t lines = 0;     // lines read
  uint64_t matched = 0;   // passed the filter
  uint64_t bad = 0;       // not decision lines (skipped)
  std::string first_bad;  // "FILE:LINE" of the first
};
// Reads every file in order, calling on_match for each line that passes
// `filter`; the line is valid during the call only. An unterminated last line that does not parse is ignored (it is
// still being written), not counted as bad.
Status ScanLogs(const std::vector<std::string>& files, const AuditFilter& filter,
                const std::function<void(const DecisionLine&)>& on_match, ScanStats* stats);

}  // namespace strangler
