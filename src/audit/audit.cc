#include "audit/audit.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <utility>

namespace strangler {

namespace {

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

double Round3(double v) { return std::round(v * 1000.0) / 1000.0; }

// Display width in code points (paths may hold UTF-8).
size_t Width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// The first column left-aligned, the others (numbers) right-aligned, two
// spaces between columns.
std::string AlignedTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& r : rows) {
    widths.resize(std::max(widths.size(), r.size()), 0);
    for (size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], Width(r[i]));
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      std::string pad(widths[i] - Width(r[i]), ' ');
      if (i == 0) {
        line += r[i] + (r.size() > 1 ? pad : "");
      } else {
        line += "  " + pad + r[i];
      }
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

bool PathHasPrefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || prefix == "/") return true;
  if (path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/';
}

Status ParseStatusFilter(std::string_view text, AuditFilter* f) {
  auto bad = [&] {
    return Status::Usage("bad --status '" + std::string(text) +
                         "': give a code (404) or a class (1xx, 2xx, 3xx, 4xx, 5xx)");
  };
  if (text.size() != 3) return bad();
  if ((text[1] == 'x' || text[1] == 'X') && (text[2] == 'x' || text[2] == 'X')) {
    if (text[0] < '1' || text[0] > '5') return bad();
    f->status_lo = (text[0] - '0') * 100;
    f->status_hi = f->status_lo + 99;
    return Status::Ok();
  }
  int code = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return bad();
    code = code * 10 + (c - '0');
  }
  if (code < 100 || code > 599) return bad();
  f->status_lo = f->status_hi = code;
  return Status::Ok();
}

bool AuditFilter::Matches(const DecisionRecord& e) const {
  if (since_ms != std::numeric_limits<int64_t>::min() ||
      until_ms != std::numeric_limits<int64_t>::max()) {
    if (e.ts_ms < 0 || e.ts_ms < since_ms || e.ts_ms >= until_ms) return false;
  }
  if (status_lo != 0 && (e.status < status_lo || e.status > status_hi)) return false;
  if (route) {
    // An empty route is the default's (null); `--route ''` names no route.
    if (*route == kDefaultGroup ? !e.route.empty() : (e.route.empty() || e.route != *route)) {
      return false;
    }
  }
  if (backend && e.backend != *backend) return false;
  // A request id may be given by a prefix (README's examples use 8 of its
  // 32 characters).
  if (request_id && e.request_id.compare(0, request_id->size(), *request_id) != 0) return false;
  if (path_prefix && !PathHasPrefix(e.path, *path_prefix)) return false;
  return true;
}

// --- latency ----------------------------------------------------------------

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

// --- grouping ---------------------------------------------------------------

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

void AuditSummary::Group::Add(const DecisionRecord& e) {
  ++count;
  if (e.status >= 500 && e.status <= 599) ++errors;
  latency.Add(e.total_ms);
}

void AuditSummary::Add(const DecisionRecord& e) {
  ++total_;
  switch (by_) {
    case GroupBy::kRoute:
      key_.assign(e.route.empty() ? std::string_view(kDefaultGroup) : e.route);
      break;
    case GroupBy::kBackend:
      key_.assign(e.backend);
      break;
    case GroupBy::kStatus: {
      char buf[16];
      auto r = std::to_chars(buf, buf + sizeof(buf), e.status);
      key_.assign(buf, r.ptr);
      break;
    }
    case GroupBy::kPath:
      key_.assign(e.path);
      break;
    case GroupBy::kNone:
      key_.assign("all");
      break;
  }
  auto it = groups_.find(key_);
  if (it == groups_.end()) {
    if (groups_.size() >= max_groups_) {
      other_.Add(e);
      return;
    }
    it = groups_.emplace(key_, Group()).first;
  }
  it->second.Add(e);
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

std::string SummaryTable(GroupBy by, const std::vector<GroupRow>& rows) {
  std::string head = GroupByName(by);
  for (char& c : head) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  std::vector<std::vector<std::string>> cells;
  cells.push_back({head, "COUNT", "SHARE", "ERRORS", "P50_MS", "P99_MS"});
  for (const GroupRow& r : rows) {
    cells.push_back({r.key, std::to_string(r.count), Fixed(r.share * 100, 1) + "%",
                     Fixed(r.error_rate * 100, 2) + "%", Fixed(r.p50_ms, 3), Fixed(r.p99_ms, 3)});
  }
  return AlignedTable(cells);
}

Json SummaryJson(GroupBy by, const std::vector<GroupRow>& rows) {
  Json arr = Json::array();
  const char* field = GroupByName(by);
  for (const GroupRow& r : rows) {
    Json o = Json::object();
    if (by == GroupBy::kRoute && r.key == kDefaultGroup) {
      o[field] = nullptr;
    } else if (by == GroupBy::kStatus && r.key != kOtherGroup) {
      o[field] = std::atoi(r.key.c_str());
    } else {
      o[field] = r.key;
    }
    o["count"] = r.count;
    o["share"] = std::round(r.share * 1e6) / 1e6;
    o["error_rate"] = std::round(r.error_rate * 1e6) / 1e6;
    o["p50_ms"] = Round3(r.p50_ms);
    o["p99_ms"] = Round3(r.p99_ms);
    arr.push_back(std::move(o));
  }
  return arr;
}

std::string HumanLine(const DecisionLine& line) {
  const DecisionRecord& r = line.record;
  // The time as the log has it (a valid one only).
  std::string_view ts = r.ts_ms >= 0 ? line.ts_text : std::string_view();
  std::string out;
  auto add = [&out](std::string_view s) { out.append(s.data(), s.size()); };
  add(ts.empty() ? "-" : ts);
  add(" " + std::to_string(r.status) + " ");
  add(r.method.empty() ? "-" : r.method);
  add(" ");
  add(r.path);
  add(" -> ");
  add(r.backend);
  add(" (");
  add(r.reason.empty() ? "-" : r.reason);
  if (!r.route.empty()) {
    add(", route ");
    add(r.route);
  }
  add(") " + Fixed(r.total_ms, 3) + "ms");
  if (!r.request_id.empty()) {
    add(" id=");
    add(r.request_id);
  }
  return out;
}

// --- reading files ------------------------------------------------------------

namespace {
constexpr size_t kReadChunk = 1 << 20;
}

Result<std::unique_ptr<LineReader>> LineReader::Open(const std::string& path) {
  gzFile gz = nullptr;
  if (path == "-") {
    int fd = dup(0);
    if (fd >= 0) gz = gzdopen(fd, "rb");
  } else {
    gz = gzopen(path.c_str(), "rb");
  }
  if (gz == nullptr) {
    return Status::Io("cannot read decision log '" + path + "': " + std::strerror(errno));
  }
  gzbuffer(gz, 256 * 1024);
  return std::unique_ptr<LineReader>(new LineReader(gz, path));
}

LineReader::LineReader(void* gz, std::string path) : gz_(gz), path_(std::move(path)) {
  buf_.resize(kReadChunk);
}

LineReader::~LineReader() { gzclose(static_cast<gzFile>(gz_)); }

bool LineReader::Fill() {
  if (eof_) return false;
  if (begin_ > 0) {  // keep the partial line, at the front
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buf_.size()) buf_.resize(buf_.size() * 2);  // a line longer than the buffer
  int n = gzread(static_cast<gzFile>(gz_), buf_.data() + end_,
                 static_cast<unsigned>(std::min<size_t>(buf_.size() - end_, 1u << 30)));
  if (n < 0) {
    int err = 0;
    const char* msg = gzerror(static_cast<gzFile>(gz_), &err);
    status_ = Status::Io("cannot read decision log '" + path_ + "': " + (msg ? msg : "error"));
    eof_ = true;
    return false;
  }
  if (n == 0) {
    eof_ = true;
    return false;
  }
  end_ += static_cast<size_t>(n);
  return true;
}

bool LineReader::Next(std::string_view* line) {
  size_t scan = begin_;
  for (;;) {
    const char* nl = static_cast<const char*>(std::memchr(buf_.data() + scan, '\n', end_ - scan));
    if (nl != nullptr) {
      size_t e = static_cast<size_t>(nl - buf_.data());
      size_t len = e - begin_;
      if (len > 0 && buf_[e - 1] == '\r') --len;
      *line = std::string_view(buf_.data() + begin_, len);
      begin_ = e + 1;
      unterminated_ = false;
      return true;
    }
    size_t consumed = begin_;
    scan = end_;
    if (!Fill()) break;
    scan -= consumed;  // Fill moved the data to the front
  }
  if (!status_.ok() || begin_ == end_) return false;
  *line = std::string_view(buf_.data() + begin_, end_ - begin_);
  begin_ = end_;
  unterminated_ = true;
  return true;
}

Status ScanLogs(const std::vector<std::string>& files, const AuditFilter& filter,
                const std::function<void(const DecisionLine&)>& on_match, ScanStats* stats) {
  DecisionReader decisions;
  DecisionLine d;
  for (const std::string& file : files) {
    auto reader = LineReader::Open(file);
    if (!reader.ok()) return reader.status();
    std::string_view line;
    uint64_t number = 0;
    while ((*reader)->Next(&line)) {
      ++number;
      if (line.empty()) continue;
      ++stats->lines;
      if (!decisions.Read(line, &d)) {
        if ((*reader)->unterminated()) {  // still being written
          --stats->lines;
          continue;
        }
        if (stats->bad++ == 0) stats->first_bad = file + ":" + std::to_string(number);
        continue;
      }
      if (!filter.Matches(d.record)) continue;
      ++stats->matched;
      on_match(d);
    }
    STRANGLER_RETURN_IF_ERROR((*reader)->status());
  }
  return Status::Ok();
}

}  // namespace strangler
