// GET /metrics of the admin listener: Prometheus's own checker accepts the
// exposition, and its numbers are the decision log's (every request counted
// once, under the route, backend, reason and status class its line gives),
// with fallbacks, upstream errors by kind, mirror results, instance state,
// reload errors and the process. The last test has a real Prometheus scrape
// the router and reads the count back through its query API.
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

using Labels = std::map<std::string, std::string>;
struct Sample {
  std::string name;
  Labels labels;
  double value = 0;
};

// The samples of a text exposition (comments skipped). A line this cannot
// read fails the test; promtool judges the format itself.
std::vector<Sample> ParseExposition(const std::string& text) {
  std::vector<Sample> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t i = line.find_first_of("{ ");
    REQUIRE_MESSAGE(i != std::string::npos, line);
    s.name = line.substr(0, i);
    if (line[i] == '{') {
      ++i;
      while (line[i] != '}') {
        size_t eq = line.find("=\"", i);
        REQUIRE_MESSAGE(eq != std::string::npos, line);
        std::string key = line.substr(i, eq - i), value;
        for (i = eq + 2; line[i] != '"'; ++i) {
          if (line[i] == '\\') ++i;  // \\ \" \n: the escaped character (n stays n)
          value.push_back(line[i]);
        }
        s.labels[key] = value;
        ++i;
        if (line[i] == ',') ++i;
      }
      ++i;
    }
    s.value = std::stod(line.substr(i + 1));
    out.push_back(std::move(s));
  }
  return out;
}

// The value of the sample `name` with exactly these labels, if present.
std::optional<double> Value(const std::vector<Sample>& samples, const std::string& name,
                            const Labels& labels = {}) {
  for (const Sample& s : samples) {
    if (s.name == name && s.labels == labels) return s.value;
  }
  return std::nullopt;
}

double Sum(const std::vector<Sample>& samples, const std::string& name, const Labels& match = {}) {
  double sum = 0;
  for (const Sample& s : samples) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      all = all && it != s.labels.end() && it->second == v;
    }
    if (all) sum += s.value;
  }
  return sum;
}

// GET /metrics (GetMetrics: 503 until serve's first snapshot serves, then
// 200) with the exposition's Content-Type; its body.
std::string Scrape(uint16_t admin) {
  const HttpResponse r = GetMetrics(admin);
  CHECK(r.Header("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  return r.body;
}

// promtool (Debian's prometheus package) accepts the exposition: its
// parser, its lint (names, units, help).
void ExpectPromtoolAccepts(const Fixture& fx, const std::string& text) {
  const std::string file = fx.dir().File("metrics.txt");
  std::ofstream(file) << text;
  RunResult r = Run({"/bin/sh", "-c", "promtool check metrics < " + file});
  INFO("promtool: " << r.out << r.err);
  CHECK(r.exit_code == 0);
}

// One backend "be" (the default) behind a serve with an admin listener.
struct OneBackendWithAdmin {
  RawBackend be{"be"};
  Fixture fx;
  uint16_t admin = 0;
  OneBackendWithAdmin() {
    REQUIRE(be.Start());
    fx.AddBackend("be", be.url());
    REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0"}));
    admin = AdminPort(*fx.serve());
    REQUIRE(admin != 0);
  }
};

std::string CodeClass(int status) { return std::to_string(status / 100) + "xx"; }
std::string Str(const Json& v) { return v.is_string() ? v.get<std::string>() : std::string(); }

TEST_CASE(
    "e2e: GET /metrics counts every request as its decision-log line says; promtool "
    "accepts it") {
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  ClosedPort gone;
  Fixture fx;
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddBackend("gone", gone.url(), {"--eject-after", "0"});  // every request tries it
  fx.AddRoute("orders", {"--path", "/api/orders", "--to", "new", "--percent", "30", "--sticky",
                         "header:X-User-Id"});
  fx.AddRoute("fb", {"--path", "/fb", "--to", "gone", "--fallback"});
  fx.AddRoute("m", {"--path", "/m", "--to", "new", "--mirror", "legacy"});
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0"}));
  const uint16_t admin = AdminPort(*fx.serve());
  REQUIRE(admin != 0);

  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  size_t sent = 0;
  for (int i = 0; i < 40; ++i, ++sent) {
    REQUIRE(c.Get("/api/orders/" + std::to_string(i), {{"X-User-Id", "u" + std::to_string(i)}})
                .status == 200);
  }
  for (int i = 0; i < 10; ++i, ++sent) REQUIRE(c.Get("/fb").status == 200);
  for (int i = 0; i < 10; ++i, ++sent) REQUIRE(c.Get("/m").status == 200);
  for (int i = 0; i < 10; ++i, ++sent) REQUIRE(c.Get("/other").status == 200);
  for (int i = 0; i < 2; ++i, ++sent) {  // the router's own answer: no route, no backend
    RawClient once;
    REQUIRE(once.Connect(fx.port()));
    REQUIRE(once.Request("CONNECT", "example.com:443").status == 405);
  }
  std::vector<Json> lines = fx.WaitForLogLines(sent);
  REQUIRE(lines.size() == sent);
  // The mirror's 10 results are in once counted (equal, differ or failed).
  std::string text;
  REQUIRE(PollUntil([&] {
    text = Scrape(admin);
    return Sum(ParseExposition(text), "strangler_mirror_results_total", {{"route", "m"}}) == 10;
  }));
  ExpectPromtoolAccepts(fx, text);
  std::vector<Sample> m = ParseExposition(text);
  MESSAGE("a scrape after " << sent << " requests:\n" << text.substr(0, 1500));

  // Requests: each (route, backend, reason, class) of the log, exactly.
  std::map<Labels, int> want;
  std::map<std::pair<std::string, std::string>, int> timed;  // those that reached a backend
  for (const Json& line : lines) {
    Labels l{{"route", Str(line["route"])},
             {"backend", Str(line["backend"])},
             {"reason", Str(line["reason"])},
             {"code", CodeClass(line["status"].get<int>())}};
    ++want[l];
    if (!l["backend"].empty()) ++timed[{l["route"], l["backend"]}];
  }
  CHECK(want.size() >= 5);  // default, split to both sides, fallback, route, refused
  for (const auto& [labels, n] : want) {
    INFO("route=" << labels.at("route") << " backend=" << labels.at("backend")
                  << " reason=" << labels.at("reason") << " code=" << labels.at("code"));
    CHECK(Value(m, "strangler_requests_total", labels) == n);
  }
  CHECK(Sum(m, "strangler_requests_total") == static_cast<double>(sent));  // nothing else
  CHECK(Value(m, "strangler_requests_total",
              {{"route", ""}, {"backend", ""}, {"reason", "refused"}, {"code", "4xx"}}) == 2);

  // Durations: a histogram per route and backend, as many as reached it.
  for (const auto& [key, n] : timed) {
    Labels l{{"route", key.first}, {"backend", key.second}};
    INFO("route=" << key.first << " backend=" << key.second);
    CHECK(Value(m, "strangler_request_duration_seconds_count", l) == n);
    Labels inf = l;
    inf["le"] = "+Inf";
    CHECK(Value(m, "strangler_request_duration_seconds_bucket", inf) == n);
    CHECK(Value(m, "strangler_request_duration_seconds_sum", l) > 0);
    double below = 0;
    for (const Sample& s : m) {  // cumulative: never falls
      if (s.name != "strangler_request_duration_seconds_bucket" ||
          s.labels.at("route") != key.first || s.labels.at("backend") != key.second) {
        continue;
      }
      CHECK(s.value >= below);
      below = s.value;
    }
  }
  CHECK(Sum(m, "strangler_request_duration_seconds_count") == static_cast<double>(sent - 2));

  // Fallbacks and the failures behind them: every /fb found `gone` refusing.
  CHECK(Value(m, "strangler_fallbacks_total", {{"route", "fb"}}) == 10);
  CHECK(Value(m, "strangler_upstream_errors_total", {{"backend", "gone"}, {"kind", "refused"}}) ==
        10);
  CHECK(Value(m, "strangler_upstream_errors_total", {{"backend", "new"}, {"kind", "refused"}}) ==
        0);
  CHECK(Sum(m, "strangler_upstream_errors_total", {{"backend", "legacy"}}) == 0);

  CHECK(Value(m, "strangler_route_percent", {{"route", "orders"}}) == 30);
  CHECK(Value(m, "strangler_route_percent", {{"route", "fb"}}) == 100);
  CHECK(Value(m, "strangler_mirror_results_total", {{"route", "m"}, {"result", "dropped"}}) == 0);
  CHECK(Value(m, "strangler_instance_up",
              {{"backend", "legacy"},
               {"instance", "127.0.0.1:" + std::to_string(legacy.port())}}) == 1);
  CHECK(Value(m, "strangler_open_connections", {{"side", "client"}}) >= 1);    // c is still open
  CHECK(Value(m, "strangler_open_connections", {{"side", "upstream"}}) >= 1);  // pooled
  CHECK(Value(m, "strangler_ruleset_version") == lines.back()["ruleset"].get<double>());
  CHECK(Value(m, "strangler_reload_errors_total") == 0);
  CHECK(Value(m, "strangler_log_dropped_lines_total") == 0);
  CHECK(Value(m, "process_resident_memory_bytes") > 0);
  CHECK(Value(m, "process_open_fds") > 0);
  CHECK(Value(m, "process_cpu_seconds_total").has_value());
  CHECK(Value(m, "process_start_time_seconds") > 0);
}

TEST_CASE("e2e: upstream errors are counted by kind: refused, reset, timeout, bad_response") {
  RawBackend reset("reset"), slow("slow"), garbage("garbage");
  REQUIRE(reset.Start());
  REQUIRE(slow.Start());
  REQUIRE(garbage.Start());
  reset.set_response("");  // reads the request, closes without a byte
  reset.set_close_after_response(true);
  slow.set_delay_ms(3000);
  garbage.set_response("NOT HTTP AT ALL\r\n\r\n");
  ClosedPort refused;
  Fixture fx;
  fx.AddBackend("refused", refused.url());
  fx.AddBackend("reset", reset.url());
  fx.AddBackend("slow", slow.url(), {"--timeout-ms", "200"});
  fx.AddBackend("garbage", garbage.url());
  for (const char* b : {"reset", "slow", "garbage"})
    fx.AddRoute(b, {"--path", "/" + std::string(b), "--to", b});
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0"}));
  const uint16_t admin = AdminPort(*fx.serve());
  REQUIRE(admin != 0);
  struct Case {
    std::string backend, kind;
    int status;
  };
  for (const Case& k : {Case{"refused", "refused", 502}, Case{"reset", "reset", 502},
                        Case{"slow", "timeout", 504}, Case{"garbage", "bad_response", 502}}) {
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    // POST: sent once, never retried, whatever the failure.
    HttpResponse r = c.Request("POST", k.backend == "refused" ? "/x" : "/" + k.backend, {}, "b");
    CHECK(r.status == k.status);
  }
  fx.WaitForLogLines(4);
  std::vector<Sample> m = ParseExposition(Scrape(admin));
  for (const char* backend : {"refused", "reset", "slow", "garbage"}) {
    for (const char* kind : {"refused", "reset", "timeout", "bad_response"}) {
      const bool expected =
          (std::string(backend) == "refused" && std::string(kind) == "refused") ||
          (std::string(backend) == "reset" && std::string(kind) == "reset") ||
          (std::string(backend) == "slow" && std::string(kind) == "timeout") ||
          (std::string(backend) == "garbage" && std::string(kind) == "bad_response");
      INFO("backend=" << backend << " kind=" << kind);
      CHECK(Value(m, "strangler_upstream_errors_total", {{"backend", backend}, {"kind", kind}}) ==
            (expected ? 1 : 0));
    }
  }
}

TEST_CASE("e2e: a reload that fails is counted in strangler_reload_errors_total") {
  OneBackendWithAdmin one;
  Fixture& fx = one.fx;
  const uint16_t admin = one.admin;
  CHECK(Value(ParseExposition(Scrape(admin)), "strangler_reload_errors_total") == 0);
  const std::string moved = fx.db() + ".away";
  REQUIRE(std::rename(fx.db().c_str(), moved.c_str()) == 0);  // "store file ... is gone"
  CHECK(PollUntil(
      [&] { return Value(ParseExposition(Scrape(admin)), "strangler_reload_errors_total") == 1; }));
  REQUIRE(std::rename(moved.c_str(), fx.db().c_str()) == 0);
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  CHECK(c.Get("/").status == 200);  // the last good rules served throughout
  // Logged once, counted once, however many polls found it gone.
  CHECK(Value(ParseExposition(Scrape(admin)), "strangler_reload_errors_total") == 1);
}

// A real Prometheus (Debian's package) scrapes the admin listener every
// second; the requests sent are read back through its HTTP query API.
TEST_CASE("e2e: a real Prometheus scrapes /metrics and reads strangler_requests_total back") {
  RunResult version = Run({"/usr/bin/prometheus", "--version"});
  REQUIRE_MESSAGE(version.exit_code == 0, "prometheus is missing (scripts/deps.sh installs it)");
  OneBackendWithAdmin one;
  Fixture& fx = one.fx;
  const uint16_t admin = one.admin;
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  const int kRequests = 25;
  for (int i = 0; i < kRequests; ++i) REQUIRE(c.Get("/p/" + std::to_string(i)).status == 200);

  const std::string config = fx.dir().File("prometheus.yml");
  std::ofstream(config) << "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        << "scrape_configs:\n  - job_name: strangler\n    static_configs:\n"
                        << "      - targets: ['127.0.0.1:" << admin << "']\n";
  // Its port: picked free, and picked again should another process take it first.
  std::unique_ptr<Process> prom;
  uint16_t prom_port = 0;
  for (int attempt = 0; attempt < 3 && !prom; ++attempt) {
    prom_port = PickFreePort();
    const std::string data = fx.dir().File("tsdb" + std::to_string(attempt));
    auto p = std::make_unique<Process>(
        std::vector<std::string>{"/usr/bin/prometheus", "--config.file=" + config,
                                 "--storage.tsdb.path=" + data,
                                 "--web.listen-address=127.0.0.1:" + std::to_string(prom_port)},
        std::vector<std::string>{}, fx.dir().File("prom.out"), fx.dir().File("prom.err"));
    REQUIRE(p->Start());
    if (WaitForPort(prom_port, kHangGuardMs) && p->Running()) prom = std::move(p);
  }
  REQUIRE(prom);
  const int64_t t0 = NowMs();
  double seen = -1;
  bool got = PollUntil(
      [&] {
        RawClient q;
        if (!q.Connect(prom_port)) return false;
        HttpResponse r = q.Get("/api/v1/query?query=sum(strangler_requests_total)");
        if (!r.ok || r.status != 200) return false;
        Json j = Json::parse(r.body, nullptr, false);
        if (j.is_discarded() || j["status"] != "success" || j["data"]["result"].empty()) {
          return false;
        }
        seen = std::stod(j["data"]["result"][0]["value"][1].get<std::string>());
        return seen == kRequests;
      },
      kHangGuardMs, 200);
  if (!got) MESSAGE("prometheus stderr: " << prom->Stderr().substr(0, 4000));
  CHECK(got);
  CHECK(seen == kRequests);
  MESSAGE("Prometheus read strangler_requests_total = " << seen << " after " << NowMs() - t0
                                                        << " ms of scraping");
  // Its view of the target: up.
  RawClient q;
  REQUIRE(q.Connect(prom_port));
  HttpResponse up = q.Get("/api/v1/query?query=up%7Bjob%3D%22strangler%22%7D");
  Json j = Json::parse(up.body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  REQUIRE_FALSE(j["data"]["result"].empty());
  CHECK(j["data"]["result"][0]["value"][1] == "1");
  prom->Stop(SIGTERM, kHangGuardMs);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
