#include "cli/audit_output.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "base/text.h"

namespace strangler {

namespace {

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

double Round3(double v) { return std::round(v * 1000.0) / 1000.0; }

// The first column left-aligned, the others (numbers) right-aligned, two
// spaces between columns.
std::string AlignedTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& r : rows) {
    widths.resize(std::max(widths.size(), r.size()), 0);
    for (size_t i = 0; i < r.size(); ++i) widths[i] = std::max(widths[i], DisplayWidth(r[i]));
  }
  std::string out;
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      std::string pad(widths[i] - DisplayWidth(r[i]), ' ');
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
    if ((by == GroupBy::kRoute && r.key == kDefaultGroup) ||
        (by == GroupBy::kBackend && r.key == kRouterGroup)) {
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
  add(BackendGroup(r));
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

}  // namespace strangler
