// `strangler audit` against decision logs written by a real `strangler serve`:
// every filter, every grouping (checked against the log lines themselves),
// and a rotated (partly gzip-compressed) log read back in order.
#include <unistd.h>
#include <zlib.h>

#include <csignal>
#include <cstdio>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<Json> JsonLines(const std::string& text) {
  std::vector<Json> out;
  size_t p = 0;
  while (p < text.size()) {
    size_t e = text.find('\n', p);
    if (e == std::string::npos) e = text.size();
    Json j = Json::parse(text.substr(p, e - p), nullptr, false);
    REQUIRE_MESSAGE(!j.is_discarded(), "not JSON: " << text.substr(p, e - p));
    out.push_back(std::move(j));
    p = e + 1;
  }
  return out;
}

std::vector<std::string> Ids(const std::vector<Json>& lines) {
  std::vector<std::string> ids;
  for (const auto& j : lines) ids.push_back(j["request_id"].get<std::string>());
  std::sort(ids.begin(), ids.end());
  return ids;
}

template <typename Pred>
std::vector<std::string> IdsWhere(const std::vector<Json>& lines, Pred pred) {
  std::vector<Json> keep;
  for (const auto& j : lines) {
    if (pred(j)) keep.push_back(j);
  }
  return Ids(keep);
}

// Nearest-rank percentile of total_ms over the lines (exact: groups here are
// far below audit's 64-value exact limit).
double Percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(p * static_cast<double>(v.size())));
  return v[std::max<size_t>(rank, 1) - 1];
}

std::string KeyOf(const Json& line, const std::string& by) {
  const Json& v = line[by];
  if (v.is_null()) return "null";
  return v.is_string() ? v.get<std::string>() : v.dump();
}

TEST_CASE("e2e: audit filters and groups a log written by serve") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fresh.set_responder([&](const RecordedRequest& req) {
    if (req.target.find("/fail") != std::string::npos) {
      return std::string("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\nfail");
    }
    return fresh.DefaultResponse(req);
  });
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("orders", {"--to", "new", "--path", "/api/orders"});
  fx.AddRoute("users", {"--to", "new", "--path", "/api/users", "--percent", "50", "--sticky",
                        "header:X-User-Id"});
  REQUIRE(fx.StartServe());

  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  auto send = [&](const std::string& target, const std::string& id, Headers extra = {}) {
    extra.emplace_back("X-Request-Id", id);
    HttpResponse r = c.Get(target, extra);
    REQUIRE_MESSAGE(r.ok, r.error);
  };
  for (int i = 0; i < 10; ++i) send("/api/orders/" + std::to_string(i), "o" + std::to_string(i));
  send("/api/orders/fail", "f1");
  send("/api/orders/fail", "f2");
  send("/api/ordersX", "x1");
  for (int i = 0; i < 5; ++i) send("/home", "h" + std::to_string(i));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a later ts for --since
  for (int i = 0; i < 20; ++i) {
    send("/api/users/me", "u" + std::to_string(i), {{"X-User-Id", std::to_string(i)}});
  }
  std::vector<Json> log = fx.StopAndReadLog();
  REQUIRE(log.size() == 38);
  const std::string path = fx.log_path();

  auto audit = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"audit", path});
    RunResult r = fx.MustCli(args);
    return r;
  };
  auto audit_ids = [&](std::vector<std::string> args) {
    args.push_back("--json");
    return Ids(JsonLines(audit(args).out));
  };

  SUBCASE("no filter: every line, as written") {
    RunResult r = audit({"--json"});
    std::vector<Json> lines = JsonLines(r.out);
    REQUIRE(lines.size() == log.size());
    CHECK(lines == log);
  }
  SUBCASE("each filter") {
    CHECK(audit_ids({"--route", "orders"}) ==
          IdsWhere(log, [](const Json& j) { return j["route"] == "orders"; }));
    CHECK(audit_ids({"--route", "(default)"}) ==
          IdsWhere(log, [](const Json& j) { return j["route"].is_null(); }));
    CHECK(audit_ids({"--route", "(default)"}).size() == 6);  // /api/ordersX and /home
    CHECK(audit_ids({"--backend", "new"}) ==
          IdsWhere(log, [](const Json& j) { return j["backend"] == "new"; }));
    CHECK(audit_ids({"--status", "503"}) == std::vector<std::string>{"f1", "f2"});
    CHECK(audit_ids({"--status", "5xx"}) == std::vector<std::string>{"f1", "f2"});
    CHECK(audit_ids({"--status", "2xx"}).size() == 36);
    CHECK(audit_ids({"--path", "/api/orders"}).size() == 12);  // not /api/ordersX
    CHECK(audit_ids({"--path", "/api/orders/fail"}) == std::vector<std::string>{"f1", "f2"});
    CHECK(audit_ids({"--request-id", "o7"}) == std::vector<std::string>{"o7"});
    CHECK(audit_ids({"--since", "1h"}).size() == log.size());
    CHECK(audit_ids({"--until", "1h"}).empty());
    // An RFC 3339 time from the log: the first users request.
    std::string t = log[18]["ts"];
    CHECK(audit_ids({"--since", t}) ==
          IdsWhere(log, [&](const Json& j) { return j["ts"].get<std::string>() >= t; }));
    CHECK(audit_ids({"--until", t}) ==
          IdsWhere(log, [&](const Json& j) { return j["ts"].get<std::string>() < t; }));
    CHECK(audit_ids({"--backend", "new", "--path", "/api/users", "--status", "2xx"}) ==
          IdsWhere(log, [](const Json& j) {
            return j["backend"] == "new" && j["path"] == "/api/users/me";
          }));
  }
  SUBCASE("each grouping, against the log") {
    for (const std::string by : {"route", "backend", "status", "path"}) {
      INFO("--by ", by);
      Json rows = Json::parse(audit({"--by", by, "--json"}).out, nullptr, false);
      REQUIRE(rows.is_array());
      std::map<std::string, std::vector<const Json*>> groups;
      for (const auto& j : log) groups[KeyOf(j, by)].push_back(&j);
      REQUIRE(rows.size() == groups.size());
      uint64_t previous = UINT64_MAX;
      for (const Json& row : rows) {
        std::string key = KeyOf(row, by);
        INFO(key);
        REQUIRE(groups.count(key) == 1);
        const auto& g = groups[key];
        std::vector<double> ms;
        size_t errors = 0;
        for (const Json* j : g) {
          ms.push_back((*j)["total_ms"].get<double>());
          errors += (*j)["status"].get<int>() >= 500;
        }
        CHECK(row["count"] == g.size());
        CHECK(row["share"].get<double>() ==
              doctest::Approx(static_cast<double>(g.size()) / log.size()).epsilon(1e-5));
        CHECK(row["error_rate"].get<double>() ==
              doctest::Approx(static_cast<double>(errors) / g.size()).epsilon(1e-5));
        CHECK(row["p50_ms"].get<double>() == doctest::Approx(Percentile(ms, 0.5)));
        CHECK(row["p99_ms"].get<double>() == doctest::Approx(Percentile(ms, 0.99)));
        CHECK(row["count"].get<uint64_t>() <= previous);  // biggest first
        previous = row["count"].get<uint64_t>();
      }
    }
    RunResult table = audit({"--by", "route"});
    CHECK(table.out.rfind("ROUTE      COUNT  SHARE  ERRORS  P50_MS  P99_MS\n", 0) == 0);
    CHECK(Has(table.out, "\n(default)"));
    RunResult filtered = audit({"--by", "status", "--route", "orders"});
    CHECK(Has(filtered.out, "\n200        10  83.3%    0.00%"));
    CHECK(Has(filtered.out, "\n503         2  16.7%  100.00%"));
  }
  SUBCASE("human lines") {
    RunResult r = audit({"--request-id", "f1"});
    CHECK(Has(r.out, " 503 GET /api/orders/fail -> new (route, route orders) "));
    CHECK(Has(r.out, "id=f1\n"));
  }
  SUBCASE("usage errors exit 2, a missing log exits 1") {
    for (std::vector<std::string> bad : {std::vector<std::string>{"--status", "6xx"},
                                         {"--since", "yesterday"},
                                         {"--by", "color"}}) {
      std::vector<std::string> args = {"audit", path};
      args.insert(args.end(), bad.begin(), bad.end());
      CHECK(fx.Cli(args).exit_code == 2);
    }
    RunResult missing = fx.Cli({"audit", fx.dir().File("nope.log")});
    CHECK(missing.exit_code == 1);
    CHECK(Has(missing.err, "no decision log at"));
  }
}

void Gzip(const std::string& from, const std::string& to) {
  std::string data = ReadFile(from);
  gzFile gz = gzopen(to.c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, data.data(), static_cast<unsigned>(data.size())) ==
          static_cast<int>(data.size()));
  REQUIRE(gzclose(gz) == Z_OK);
  REQUIRE(std::remove(from.c_str()) == 0);
}

TEST_CASE("e2e: serve rotates the log by size and audit reads the rotated set in order") {
  Fixture fx;
  RawBackend legacy("legacy");
  REQUIRE(legacy.Start());
  fx.AddBackend("legacy", legacy.url());
  // 8 KiB files; ~250-byte lines, sent one by one: several rotations.
  REQUIRE(fx.StartServe({"--log-max-mb", "0.008", "--log-keep", "50"}));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  const int n = 400;
  std::vector<std::string> sent;
  for (int i = 0; i < n; ++i) {
    char id[16];
    std::snprintf(id, sizeof(id), "r%04d", i);
    sent.push_back(id);
    HttpResponse r = c.Get("/item/" + std::to_string(i), {{"X-Request-Id", id}});
    REQUIRE(r.ok);
    // Spread the lines over many flush batches (a batch is never split).
    if (i % 20 == 19) std::this_thread::sleep_for(std::chrono::milliseconds(40));
  }
  REQUIRE(fx.StopServe(SIGTERM) == 0);
  const std::string base = fx.dir().File("decisions.log");
  REQUIRE(access(fx.dir().File("decisions.1.log").c_str(), F_OK) == 0);
  REQUIRE(access(fx.dir().File("decisions.2.log").c_str(), F_OK) == 0);
  // A file is renamed before a batch would take it past the limit, and a
  // batch is never split: a rotated file is within the limit (8 KiB here) or
  // holds one batch alone. On a busy machine one batch can gather many lines
  // (15960 bytes were seen), so the bound is a batch: 64 KiB plus its last line.
  for (const char* name : {"decisions.1.log", "decisions.2.log"}) {
    const size_t size = ReadFile(fx.dir().File(name)).size();
    CAPTURE(name);
    CAPTURE(size);
    CHECK(size <= 64 * 1024 + 512);
  }
  // An operator's logrotate-style compression of an older file.
  Gzip(fx.dir().File("decisions.2.log"), fx.dir().File("decisions.2.log.gz"));

  RunResult r = fx.MustCli({"audit", base, "--json"});
  std::vector<std::string> got;
  for (const Json& j : JsonLines(r.out)) got.push_back(j["request_id"]);
  CHECK(got == sent);  // all of them, oldest file first
  // The default LOG is ./decisions.log: run from the log's directory.
  RunResult counted =
      Run({"/bin/sh", "-c",
           "cd '" + fx.dir().path() + "' && '" + STRANGLER_BIN + "' audit --by backend --json"});
  REQUIRE(counted.exit_code == 0);
  Json rows = Json::parse(counted.out);
  CHECK(rows[0]["backend"] == "legacy");
  CHECK(rows[0]["count"] == n);

  RunResult bad = fx.Cli({"serve", "--log", "-", "--log-max-mb", "1"});
  CHECK(bad.exit_code == 2);
  CHECK(fx.Cli({"serve", "--log-keep", "0"}).exit_code == 2);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
