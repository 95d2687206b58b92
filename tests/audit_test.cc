// Tests of audit/: filters, the latency histogram, grouping, and reading
// log files back.
#include "audit/audit.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "audit/histogram.h"
#include "audit/line_reader.h"
#include "audit/summary.h"
#include "decisions/decision_line.h"
#include "decisions/log_files.h"
#include "test_util.h"

namespace strangler {
namespace {

TEST_SUITE_BEGIN("audit");

using testing::TempDir;
using testing::WriteFile;

void WriteGz(const std::string& path, const std::string& bytes) {
  gzFile gz = gzopen(path.c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size())) ==
          static_cast<int>(bytes.size()));
  gzclose(gz);
}

// 2026-01-01T00:00:00Z
constexpr int64_t kT0 = 1767225600000;

std::string Line(int64_t ts_ms, const std::string& id, const std::string& path,
                 const std::string& route, const std::string& backend, int status,
                 double total_ms) {
  DecisionRecord r;
  r.ts_ms = ts_ms;
  r.request_id = id;
  r.method = "GET";
  r.path = path;
  r.route = route;
  r.backend = backend;
  r.reason = backend.empty() ? "refused" : route.empty() ? "default" : "route";
  r.status = status;
  r.total_ms = total_ms;
  r.upstream_ms = total_ms / 2;
  r.client = "127.0.0.1";
  r.ruleset = 3;
  std::string out;
  FormatDecision(r, &out);
  return out;
}

TEST_CASE("filters: each on its own") {
  std::vector<std::string> lines = {
      Line(kT0, "a", "/api/orders", "orders", "new", 200, 1),
      Line(kT0 + 60000, "b", "/api/orders/7", "orders", "legacy", 503, 2),
      Line(kT0 + 120000, "c", "/api/ordersX", "", "legacy", 404, 3),
      Line(kT0 + 180000, "d", "/health", "", "legacy", 200, 4),
      Line(kT0 + 240000, "e", "/bad", "", "", 400, 0),  // the router's own answer
  };
  struct Case {
    const char* name;
    std::function<void(AuditFilter*)> set;
    std::string want;  // request ids matched, in order
  };
  std::vector<Case> cases = {
      {"none", [](AuditFilter*) {}, "abcde"},
      {"since", [](AuditFilter* f) { f->since_ms = kT0 + 60000; }, "bcde"},
      {"until (exclusive)", [](AuditFilter* f) { f->until_ms = kT0 + 120000; }, "ab"},
      {"route", [](AuditFilter* f) { f->route = "orders"; }, "ab"},
      {"default route (not the refusals)", [](AuditFilter* f) { f->route = kDefaultGroup; }, "cd"},
      {"refusals by route", [](AuditFilter* f) { f->route = kRefusedGroup; }, "e"},
      {"refusals by backend", [](AuditFilter* f) { f->backend = kRouterGroup; }, "e"},
      {"empty backend names none", [](AuditFilter* f) { f->backend = ""; }, ""},
      {"empty route names none", [](AuditFilter* f) { f->route = ""; }, ""},
      {"backend", [](AuditFilter* f) { f->backend = "legacy"; }, "bcd"},
      {"status code", [](AuditFilter* f) { REQUIRE(ParseStatusFilter("404", f).ok()); }, "c"},
      {"status class", [](AuditFilter* f) { REQUIRE(ParseStatusFilter("5xx", f).ok()); }, "b"},
      {"status 4xx", [](AuditFilter* f) { REQUIRE(ParseStatusFilter("4xx", f).ok()); }, "ce"},
      {"status 2xx", [](AuditFilter* f) { REQUIRE(ParseStatusFilter("2XX", f).ok()); }, "ad"},
      {"path segment prefix", [](AuditFilter* f) { f->path_prefix = "/api/orders"; }, "ab"},
      {"path prefix with slash", [](AuditFilter* f) { f->path_prefix = "/api/"; }, "abc"},
      {"request id", [](AuditFilter* f) { f->request_id = "c"; }, "c"},
      {"all together",
       [](AuditFilter* f) {
         f->backend = "legacy";
         f->path_prefix = "/api";
         f->since_ms = kT0 + 1;
       },
       "bc"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    AuditFilter f;
    c.set(&f);
    std::string got;
    DecisionReader reader;
    DecisionLine d;
    for (const auto& l : lines) {
      REQUIRE(reader.Read(l, &d));
      if (f.Matches(d.record)) got += d.record.request_id;
    }
    CHECK(got == c.want);
  }
  // Issue 14: a request id is found by its first characters too.
  const std::string long_line =
      Line(kT0, "9f1c2e7a5b4d3c2e1f0a9b8c7d6e5f40", "/x", "", "legacy", 200, 1);
  DecisionReader reader;
  DecisionLine long_id;
  REQUIRE(reader.Read(long_line, &long_id));
  for (const auto& [prefix, want] : std::vector<std::pair<std::string, bool>>{
           {"9f1c2e7a", true}, {"9f1c2e7a5b4d3c2e1f0a9b8c7d6e5f40", true}, {"9f1d", false},
           {"9f1c2e7a5b4d3c2e1f0a9b8c7d6e5f40x", false}}) {
    INFO("prefix " << prefix);
    AuditFilter by_prefix;
    by_prefix.request_id = prefix;
    CHECK(by_prefix.Matches(long_id.record) == want);
  }
  AuditFilter f;
  for (const char* bad : {"", "600", "99", "6xx", "2x", "abc", "20x"}) {
    INFO(bad);
    CHECK(ParseStatusFilter(bad, &f).code() == Code::kUsage);
  }
}

TEST_CASE("LatencyHistogram: exact when small, within 1% when large") {
  LatencyHistogram small;
  CHECK(small.Percentile(0.5) == 0);
  for (double v : {5.0, 1.0, 3.0, 2.0, 4.0}) small.Add(v);
  CHECK(small.Percentile(0.5) == 3.0);
  CHECK(small.Percentile(0.99) == 5.0);

  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> dist(1.0, 1.5);
  std::vector<double> all;
  LatencyHistogram h;
  for (int i = 0; i < 200000; ++i) {
    double v = std::round(dist(rng) * 1000) / 1000;  // the log's 3 decimals
    all.push_back(v);
    h.Add(v);
  }
  std::sort(all.begin(), all.end());
  for (double p : {0.5, 0.9, 0.99, 0.999}) {
    double exact = all[static_cast<size_t>(std::ceil(p * all.size())) - 1];
    INFO("p", p, " exact ", exact, " got ", h.Percentile(p));
    CHECK(std::abs(h.Percentile(p) - exact) <= exact * 0.01 + 1e-9);
  }
  CHECK(h.Percentile(1.0) == all.back());  // clamped to the largest value seen
  LatencyHistogram zeros;
  for (int i = 0; i < 100; ++i) zeros.Add(0);
  CHECK(zeros.Percentile(0.99) == 0);
}

TEST_CASE("AuditSummary groups, shares, error rates, and folds groups past the cap") {
  AuditSummary s(GroupBy::kRoute);
  DecisionReader reader;
  DecisionLine d;
  std::vector<std::string> lines = {
      Line(kT0, "1", "/a", "orders", "new", 200, 1),
      Line(kT0, "2", "/a", "orders", "new", 502, 3),
      Line(kT0, "3", "/a", "orders", "new", 200, 2),
      Line(kT0, "4", "/b", "", "legacy", 200, 10),
  };
  for (const auto& l : lines) {
    REQUIRE(reader.Read(l, &d));
    s.Add(d.record);
  }
  auto rows = s.Rows();
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].key == "orders");
  CHECK(rows[0].count == 3);
  CHECK(rows[0].share == doctest::Approx(0.75));
  CHECK(rows[0].error_rate == doctest::Approx(1.0 / 3));
  CHECK(rows[0].p50_ms == 2.0);
  CHECK(rows[0].p99_ms == 3.0);
  CHECK(rows[1].key == kDefaultGroup);

  AuditSummary by_status(GroupBy::kStatus);
  for (const auto& l : lines) {
    REQUIRE(reader.Read(l, &d));
    by_status.Add(d.record);
  }
  auto srows = by_status.Rows();
  REQUIRE(srows.size() == 2);
  CHECK(srows[0].key == "200");
  CHECK(srows[0].count == 3);
  CHECK(srows[1].key == "502");
  CHECK(srows[1].error_rate == 1.0);

  // The router's own answers are a group of their own, by route and by
  // backend, never the default route's or a backend's.
  for (GroupBy by : {GroupBy::kRoute, GroupBy::kBackend}) {
    AuditSummary with_refusals(by);
    for (const auto& l : {lines[3], Line(kT0, "5", "/bad", "", "", 400, 0)}) {
      REQUIRE(reader.Read(l, &d));
      with_refusals.Add(d.record);
    }
    std::set<std::string> keys;
    for (const auto& row : with_refusals.Rows()) keys.insert(row.key);
    if (by == GroupBy::kRoute) {
      CHECK(keys == std::set<std::string>{kDefaultGroup, kRefusedGroup});
    } else {
      CHECK(keys == std::set<std::string>{"legacy", kRouterGroup});
    }
  }

  AuditSummary capped(GroupBy::kPath, 2);
  for (int i = 0; i < 5; ++i) {
    const std::string line = Line(kT0, "x", "/p" + std::to_string(i), "", "b", 200, 1);
    REQUIRE(reader.Read(line, &d));
    capped.Add(d.record);
  }
  auto crows = capped.Rows();
  REQUIRE(crows.size() == 3);
  CHECK(crows.back().key == kOtherGroup);
  CHECK(crows.back().count == 3);
  CHECK(capped.folded());
}

TEST_CASE("LineReader: plain, gzip, CRLF, long and unterminated lines") {
  TempDir dir;
  std::string long_line(3 << 20, 'x');  // longer than the read buffer
  std::string text = "one\r\ntwo\n\n" + long_line + "\nlast";
  for (bool gz : {false, true}) {
    INFO("gzip ", gz);
    std::string path = dir.File(gz ? "l.gz" : "l.txt");
    if (gz)
      WriteGz(path, text);
    else
      WriteFile(path, text);
    auto r = LineReader::Open(path);
    REQUIRE(r.ok());
    std::vector<std::string> got;
    std::string_view line;
    while ((*r)->Next(&line)) got.emplace_back(line);
    CHECK((*r)->status().ok());
    CHECK((*r)->unterminated());
    REQUIRE(got.size() == 5);
    CHECK(got[0] == "one");
    CHECK(got[1] == "two");
    CHECK(got[2].empty());
    CHECK(got[3] == long_line);
    CHECK(got[4] == "last");
  }
  CHECK_FALSE(LineReader::Open(dir.File("missing")).ok());
}

TEST_CASE("ScanLogs streams every file, skips non-decision lines, ignores a partial last line") {
  TempDir dir;
  WriteGz(dir.File("decisions.log.1.gz"), Line(kT0, "old", "/a", "", "legacy", 200, 1) + "\n");
  WriteFile(dir.File("decisions.log"),
            Line(kT0 + 1, "new", "/a", "r", "n", 500, 2) + "\nnot a decision\n" + "{\"ts\":\"2026");
  auto files = ExpandLogPaths({dir.File("decisions.log")});
  REQUIRE(files.ok());
  ScanStats stats;
  std::vector<std::string> ids;
  AuditFilter f;
  REQUIRE(ScanLogs(
              *files, f, [&](const DecisionLine& d) { ids.emplace_back(d.record.request_id); },
              &stats)
              .ok());
  CHECK(ids == std::vector<std::string>{"old", "new"});
  CHECK(stats.lines == 3);
  CHECK(stats.matched == 2);
  CHECK(stats.bad == 1);
  CHECK(stats.first_bad == dir.File("decisions.log") + ":2");
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
