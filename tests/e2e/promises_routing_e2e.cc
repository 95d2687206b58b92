// README promises about where a request goes that had no test (issue 20):
// `--sticky ip`; `--fallback` to an explicit `--else`, on a reset, and never
// for a GET with a body; `--mirror-percent`; `--compare-header`; a request
// body over 1 MiB not copied but counted as dropped; reverting a step a ramp
// made; a manual change of the percent during a ramp. Real backends, a real
// serve on loopback; every answer tells which backend gave it.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "wire.h"

namespace strangler {
namespace e2e {
namespace {

constexpr int kCapMs = 10000;  // guards a hang only

// The README's bucket, written independently of src/.
int Bucket(const std::string& salt, const std::string& key) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ULL;
  };
  for (unsigned char c : salt) mix(c);
  mix(0);
  for (unsigned char c : key) mix(c);
  return static_cast<int>(h % 10000);
}

Json CliJson(Fixture& fx, const std::vector<std::string>& args) {
  RunResult r = fx.MustCli(args);
  Json j = Json::parse(r.out, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), r.out);
  return j;
}

// One request sent from source address `src` (any 127/8 address is local on
// Linux), its answer read to the close; the raw bytes.
std::string ExchangeFrom(const std::string& src, uint16_t port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  REQUIRE(inet_pton(AF_INET, src.c_str(), &a.sin_addr) == 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(SendAll(fd, request));
  std::string got;
  std::atomic<bool> never{false};
  const int64_t deadline = NowMs() + kCapMs;
  while (RecvMore(fd, &got, never, deadline) > 0) {
  }
  close(fd);
  return got;
}

// The value of header `name` in a raw answer ("" when absent).
std::string RawHeader(const std::string& raw, const std::string& name) {
  const std::string head = raw.substr(0, raw.find("\r\n\r\n") + 2);
  const std::string key = "\r\n" + name + ": ";
  size_t p = head.find(key);
  if (p == std::string::npos) return "";
  p += key.size();
  return head.substr(p, head.find("\r\n", p) - p);
}

TEST_CASE("e2e: promise: --sticky ip buckets by the client's address, the same on every request") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("by-ip", {"--to", "new", "--path", "/s", "--percent", "50", "--sticky", "ip"});
  REQUIRE(fx.StartServe());
  std::set<std::string> seen;
  for (int i = 1; i <= 10; ++i) {
    const std::string ip = "127.0.0." + std::to_string(i);
    const int bucket = Bucket("by-ip", ip);
    const std::string want = bucket < 5000 ? "new" : "legacy";
    for (int run = 0; run < 3; ++run) {
      const std::string rid = "ip-" + std::to_string(i) + "-" + std::to_string(run);
      INFO("from " << ip << ", bucket " << bucket << ", " << rid);
      // Another user header each time: only the address counts.
      std::string raw =
          ExchangeFrom(ip, fx.port(),
                       "GET /s/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-User-Id: u" +
                           std::to_string(run) + "\r\nX-Request-Id: " + rid + "\r\n\r\n");
      CHECK(raw.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
      CHECK(RawHeader(raw, "X-Backend") == want);
      auto line = fx.LogLineFor(rid);
      REQUIRE(line);
      CHECK((*line)["client"] == ip);
      CHECK((*line)["bucket"] == bucket);
      CHECK((*line)["reason"] == "split");
      CHECK((*line)["backend"] == want);
    }
    seen.insert(want);
  }
  CHECK(seen.size() == 2);  // the ten addresses fall on both sides of 50%
}

// A backend that reads each request head and resets the connection (RST,
// by SO_LINGER 0) without a byte of answer.
class ResettingBackend {
 public:
  ResettingBackend() {
    REQUIRE(server_.Start(&stop_, [this](int fd, int) {
      std::string got;
      while (got.find("\r\n\r\n") == std::string::npos) {
        if (RecvMore(fd, &got, stop_, NowMs() + kCapMs) <= 0) break;
      }
      if (!got.empty()) ++requests_;
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
      close(fd);
    }));
  }
  ~ResettingBackend() {
    stop_ = true;
    server_.Join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }
  int requests() const { return requests_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  LoopbackServer server_;
};

TEST_CASE("e2e: promise: --fallback goes to an explicit --else, also on a reset; never for a GET with a body") {
  Fixture fx;
  RawBackend legacy("legacy"), spare("spare");
  ResettingBackend resetter;
  REQUIRE(legacy.Start());
  REQUIRE(spare.Start());
  fx.AddBackend("legacy", legacy.url());  // the default: never the fallback here
  fx.AddBackend("spare", spare.url());
  fx.AddBackend("dead", "http://127.0.0.1:" + std::to_string(PickFreePort()));
  fx.AddBackend("resetter", resetter.url());
  fx.AddRoute("refused", {"--to", "dead", "--else", "spare", "--path", "/refused", "--fallback"});
  fx.AddRoute("reset", {"--to", "resetter", "--else", "spare", "--path", "/reset", "--fallback"});
  REQUIRE(fx.StartServe());

  struct Case {
    std::string name, request;
    int status;
    std::string backend;  // X-Backend of the answer, "" for the router's own
    std::string why_has;  // in the log's "fallback" field; "" = no fallback
  };
  const std::vector<Case> cases = {
      {"refused, GET", "GET /refused/1 HTTP/1.1\r\nHost: h\r\n", 200, "spare",
       "backend 'dead' refused the connection"},
      {"refused, GET with Content-Length: 0 (no body)",
       "GET /refused/2 HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n", 200, "spare",
       "backend 'dead' refused the connection"},
      {"reset before an answer, GET", "GET /reset/1 HTTP/1.1\r\nHost: h\r\n", 200, "spare",
       "backend 'resetter'"},
      {"reset before an answer, HEAD", "HEAD /reset/2 HTTP/1.1\r\nHost: h\r\n", 200, "spare",
       "backend 'resetter'"},
      {"GET with a body: 502", "GET /refused/3 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n", 502,
       "", ""},
      {"GET with a chunked body: 502",
       "GET /reset/3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n", 502, "", ""},
  };
  int n = 0;
  for (const Case& c : cases) {
    INFO("case: " << c.name);
    spare.ClearRequests();
    const std::string rid = "fb-" + std::to_string(++n);
    std::string bytes = c.request + "X-Request-Id: " + rid + "\r\n\r\n";
    if (c.request.find("Content-Length: 5") != std::string::npos) bytes += "hello";
    if (c.request.find("chunked") != std::string::npos) bytes += "5\r\nhello\r\n0\r\n\r\n";
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    REQUIRE(client.Send(bytes));
    const bool head = c.request.rfind("HEAD", 0) == 0;
    HttpResponse r = client.ReadFinal(head, kCapMs);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == c.status);
    CHECK(r.Header("X-Backend").value_or("") == c.backend);
    CHECK(spare.request_count() == (c.why_has.empty() ? 0u : 1u));
    auto line = fx.LogLineFor(rid);
    REQUIRE(line);
    INFO("log: " << line->dump());
    if (c.why_has.empty()) {
      CHECK((*line)["reason"] == "route");
      CHECK_FALSE(line->contains("fallback"));
    } else {
      CHECK((*line)["reason"] == "fallback");
      CHECK((*line)["backend"] == "spare");
      CHECK((*line)["fallback"].get<std::string>().find(c.why_has) != std::string::npos);
    }
  }
  CHECK(legacy.request_count() == 0);
  CHECK(resetter.requests() == 3);  // each tried once, on a connection of its own
}

std::string Answer(const std::string& headers, const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + headers +
         "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

Json RouteStats(const Json& diff, const std::string& route) {
  for (const Json& r : diff["routes"]) {
    if (r.value("route", "") == route) return r;
  }
  return Json::object();
}

int64_t Settled(const Json& stats) {
  return stats.value("compared", int64_t{0}) + stats.value("dropped", int64_t{0}) +
         stats.value("failed", int64_t{0});
}

size_t CountTargets(const RawBackend& be, const std::string& prefix) {
  size_t n = 0;
  for (const auto& r : be.requests()) n += r.target.rfind(prefix, 0) == 0;
  return n;
}

TEST_CASE("e2e: promise: --mirror-percent is the share of matched requests copied") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("none",
              {"--to", "legacy", "--path", "/none", "--mirror", "new", "--mirror-percent", "0"});
  fx.AddRoute("half",
              {"--to", "legacy", "--path", "/half", "--mirror", "new", "--mirror-percent", "50"});
  fx.AddRoute("all", {"--to", "legacy", "--path", "/all", "--mirror", "new"});
  REQUIRE(fx.StartServe());
  constexpr int kN = 100;
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (int i = 0; i < kN; ++i) {
    for (const std::string p : {"/none/", "/half/", "/all/"}) {
      HttpResponse r = c.Get(p + std::to_string(i));
      REQUIRE_MESSAGE(r.ok, r.error);
      REQUIRE(r.Header("X-Backend") == std::optional<std::string>("legacy"));
    }
  }
  const int64_t deadline = NowMs() + kCapMs;
  while (CountTargets(fresh, "/all/") < kN && NowMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(CountTargets(fresh, "/all/") == kN);
  // Stopped, serve settles every copy it took: compared, failed, or dropped
  // when cut off. So each route's sum is the number of copies it made.
  REQUIRE(fx.StopServe(SIGTERM) == 0);
  Json diff = CliJson(fx, {"diff", "--json"});
  INFO(diff.dump());
  CHECK(Settled(RouteStats(diff, "none")) == 0);
  CHECK(CountTargets(fresh, "/none/") == 0);
  CHECK(Settled(RouteStats(diff, "all")) == kN);
  const int64_t half = Settled(RouteStats(diff, "half"));
  MESSAGE("--mirror-percent 50 copied " << half << " of " << kN);
  CHECK(half >= kN / 5);  // 50% of 100 draws: outside 20..80 has odds below 1e-9
  CHECK(half <= kN * 4 / 5);
  CHECK(CountTargets(fresh, "/half/") == static_cast<size_t>(half));
  CHECK(legacy.request_count() == 3u * kN);
}

TEST_CASE("e2e: promise: --compare-header adds that header to the comparison; other headers never count") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  legacy.set_response(Answer("X-Version: 1\r\nX-Other: a\r\n", R"({"id":1})"));
  fresh.set_response(Answer("X-Version: 2\r\nX-Other: b\r\n", R"({"id":1})"));
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("named", {"--to", "legacy", "--path", "/named", "--mirror", "new", "--compare-header",
                        "X-Version"});
  fx.AddRoute("plain", {"--to", "legacy", "--path", "/plain", "--mirror", "new"});
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (const std::string p : {"/named/1", "/plain/1"}) {
    HttpResponse r = c.Get(p, {{"X-Request-Id", "rid" + p}});
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.Header("X-Version") == std::optional<std::string>("1"));  // the --to answer
  }
  Json diff;
  const int64_t deadline = NowMs() + kCapMs;
  do {
    diff = CliJson(fx, {"diff", "--json"});
    if (Settled(RouteStats(diff, "named")) >= 1 && Settled(RouteStats(diff, "plain")) >= 1) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  } while (NowMs() < deadline);
  INFO(diff.dump());
  Json named = RouteStats(diff, "named"), plain = RouteStats(diff, "plain");
  CHECK(named["compared"] == 1);
  CHECK(named["equal"] == 0);
  CHECK(plain["compared"] == 1);
  CHECK(plain["equal"] == 1);
  REQUIRE(diff["mismatches"].size() == 1);
  const Json& m = diff["mismatches"][0];
  CHECK(m["route"] == "named");
  CHECK(m["request_id"] == "rid/named/1");
  CHECK(m["result"]["diffs"] ==
        Json::parse(R"([{"where":"header X-Version","primary":"1","mirror":"2"}])"));
  RunResult text = fx.MustCli({"diff", "named"});
  CHECK(text.out.find("\n  header X-Version: legacy \"1\" -> new \"2\"\n") != std::string::npos);
}

TEST_CASE("e2e: promise: a request body over 1 MiB is not copied to the mirror; counted as dropped") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("up", {"--to", "legacy", "--path", "/up", "--mirror", "new", "--mirror-writes"});
  REQUIRE(fx.StartServe());
  const std::string mib(1 << 20, 'm');
  std::string chunked_over;
  for (int i = 0; i < 16; ++i) chunked_over += "10000\r\n" + std::string(0x10000, 'c') + "\r\n";
  chunked_over += "1\r\nc\r\n0\r\n\r\n";  // 1 MiB + 1 byte, no length up front
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  HttpResponse r = c.Request("POST", "/up/over", {}, mib + "x");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.Header("X-Backend") == std::optional<std::string>("legacy"));
  REQUIRE(c.Send("POST /up/chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" +
                 chunked_over));
  r = c.ReadFinal(false, kCapMs);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.Header("X-Backend") == std::optional<std::string>("legacy"));
  r = c.Request("POST", "/up/exact", {}, mib);  // exactly 1 MiB is copied
  REQUIRE_MESSAGE(r.ok, r.error);
  REQUIRE(fresh.WaitForRequests(1, kCapMs));
  REQUIRE(fx.StopServe(SIGTERM) == 0);
  auto copies = fresh.requests();
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].target == "/up/exact");
  CHECK(copies[0].body == mib);
  Json s = RouteStats(CliJson(fx, {"diff", "--json"}), "up");
  INFO(s.dump());
  CHECK(s["dropped"] == 2);
  CHECK(s["compared"] == 1);
  CHECK(s["failed"] == 0);
  // The client's backend got every body whole.
  auto got = legacy.requests();
  REQUIRE(got.size() == 3);
  CHECK(got[0].body.size() == (1u << 20) + 1);
  CHECK(got[1].body.size() == (1u << 20) + 1);
  CHECK(got[2].body.size() == 1u << 20);
}

// --- ramps ----------------------------------------------------------------------

struct RampSetup {
  Fixture fx;
  RawBackend legacy{"legacy"}, fresh{"new"};
  RampSetup() {
    REQUIRE(legacy.Start());
    REQUIRE(fresh.Start());
    fx.AddBackend("legacy", legacy.url());
    fx.AddBackend("new", fresh.url());
    fx.AddRoute("api", {"--to", "new", "--else", "legacy", "--path", "/api", "--percent", "0"});
    REQUIRE(fx.StartServe());
  }
  double Percent() {
    return CliJson(fx, {"route", "show", "api", "--json"}).value("percent", -1.0);
  }
  // Polls until the percent is no longer `from`; returns it.
  double WaitForPercentOtherThan(double from, int timeout_ms) {
    const int64_t deadline = NowMs() + timeout_ms;
    double p = Percent();
    while (p == from && NowMs() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      p = Percent();
    }
    return p;
  }
  // History rows of the route, oldest first.
  std::vector<Json> History() {
    Json all = CliJson(fx, {"history", "api", "--json", "--limit", "1000"});
    return std::vector<Json>(all.rbegin(), all.rend());
  }
  // Polls until `n` requests in a row to /api go to `backend`.
  bool AllGoTo(const std::string& backend, int n) {
    RawClient c;
    const int64_t deadline = NowMs() + kCapMs;
    int in_a_row = 0;
    while (in_a_row < n && NowMs() < deadline) {
      if (!c.connected() && !c.Connect(fx.port())) return false;
      HttpResponse r = c.Get("/api/x");
      in_a_row = r.Header("X-Backend") == std::optional<std::string>(backend) ? in_a_row + 1 : 0;
    }
    return in_a_row >= n;
  }
};

TEST_CASE("e2e: promise: a step a ramp made can be reverted like any route.set") {
  RampSetup t;
  // One step now (the first is taken at serve's next tick); the next would
  // come a minute later.
  t.fx.MustCli({"ramp", "api", "--to", "100", "--step", "100", "--every", "1m"});
  REQUIRE(t.WaitForPercentOtherThan(0, kCapMs) == 100);
  REQUIRE(t.AllGoTo("new", 20));
  int64_t step_id = -1;
  for (const Json& row : t.History()) {
    if (row["actor"] == "ramp" && row["action"] == "route.set") step_id = row["id"];
  }
  REQUIRE(step_id > 0);
  RunResult r = t.fx.MustCli({"revert", std::to_string(step_id)});
  CHECK(r.out.find("reverted change " + std::to_string(step_id)) != std::string::npos);
  CHECK(t.Percent() == 0);
  const Json last = t.History().back();
  CHECK(last["action"] == "route.set");
  CHECK(last["actor"] == "e2e");
  CHECK(last["reason"] == "revert of change " + std::to_string(step_id));
  CHECK(last["before"]["percent"] == 100);
  CHECK(last["after"]["percent"] == 0);
  // The running serve follows: every request is back on --else.
  CHECK(t.AllGoTo("legacy", 20));
  t.fx.MustCli({"ramp", "abort", "api"});
}

TEST_CASE("e2e: promise: a percent changed by hand during a ramp is where the next step starts") {
  RampSetup t;
  t.fx.MustCli({"ramp", "api", "--to", "100", "--step", "10", "--every", "2s"});
  REQUIRE(t.WaitForPercentOtherThan(0, kCapMs) == 10);  // the first step
  t.fx.MustCli({"route", "set", "api", "--percent", "50", "-m", "by hand"});
  CHECK(t.WaitForPercentOtherThan(50, kCapMs) == 60);  // the next step, from 50
  t.fx.MustCli({"ramp", "abort", "api"});
  std::vector<Json> steps;
  for (const Json& row : t.History()) {
    if (row["action"] == "route.set") steps.push_back(row);
  }
  REQUIRE(steps.size() >= 3);
  CHECK(steps[0]["actor"] == "ramp");
  CHECK(steps[0]["after"]["percent"] == 10);
  CHECK(steps[1]["actor"] == "e2e");
  CHECK(steps[1]["reason"] == "by hand");
  CHECK(steps[2]["actor"] == "ramp");
  CHECK(steps[2]["before"]["percent"] == 50);
  CHECK(steps[2]["after"]["percent"] == 60);
  CHECK(steps[2]["reason"].get<std::string>().rfind("ramp step 2: 50% -> 60%", 0) == 0);
  Json ramp = CliJson(t.fx, {"ramp", "list", "--json"})[0];
  CHECK(ramp["state"] == "aborted");
  CHECK(ramp["percent"] >= 60);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
