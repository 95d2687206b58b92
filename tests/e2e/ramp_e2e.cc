// Ramps: a running serve raises a route's percent step by step, judging the
// --to backend's 5xx rate in each window against the error budget and the
// --else backend's rate; a breach rolls back or freezes and ends the ramp.
// Windows are a second or two; traffic comes from a client thread, or is
// sent in counted amounts where a test must know which window judges it.
// Every wait is for an event (a percent, a state); its cap only ends a hang.
#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

// Sends GETs to /api/N on one keep-alive connection until stopped (by Stop()
// or the destructor), about one every 10 ms, and counts answers by X-Backend.
class Traffic {
 public:
  explicit Traffic(uint16_t port) {
    thread_ = std::thread([this, port] {
      RawClient client;
      for (int i = 0; !stop_; ++i) {
        if (!client.connected() && !client.Connect(port)) break;
        HttpResponse r = client.Get("/api/" + std::to_string(i), {{"Host", "h"}});
        if (!r.ok) {
          client.Close();
          continue;
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          ++by_backend_[r.Header("X-Backend").value_or("?") + " " + std::to_string(r.status)];
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }
  ~Traffic() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::map<std::string, int> counts() {
    std::lock_guard<std::mutex> lock(mu_);
    return by_backend_;
  }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::map<std::string, int> by_backend_;
  std::thread thread_;
};

Json CliJson(Fixture& fx, const std::vector<std::string>& args) {
  RunResult r = fx.MustCli(args);
  Json j = Json::parse(r.out, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), r.out);
  return j;
}

Json RampOf(Fixture& fx, const std::string& route) {
  for (const Json& r : CliJson(fx, {"ramp", "list", "--json"})) {
    if (r.value("route", "") == route) return r;
  }
  return Json::object();
}

double Percent(Fixture& fx, const std::string& route) {
  return CliJson(fx, {"route", "show", route, "--json"}).value("percent", -1.0);
}

// Polls until the ramp's state is not "running", or timeout (a hang guard:
// a ramp takes its steps at --every, a few seconds in these tests).
Json WaitForRampEnd(Fixture& fx, const std::string& route, int timeout_ms = kHangGuardMs) {
  int64_t deadline = NowMs() + timeout_ms;
  Json ramp;
  while (NowMs() < deadline) {
    ramp = RampOf(fx, route);
    if (ramp.value("state", "") != "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return ramp;
}

// History rows of the route (oldest first) written by actor "ramp".
std::vector<Json> RampRows(Fixture& fx, const std::string& route) {
  Json all = CliJson(fx, {"history", route, "--json", "--limit", "1000"});
  std::vector<Json> rows;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {
    if ((*it).value("actor", "") == "ramp" || (*it).value("action", "").rfind("ramp.", 0) == 0) {
      rows.push_back(*it);
    }
  }
  return rows;
}

std::vector<double> StepPercents(const std::vector<Json>& rows) {
  std::vector<double> out;
  for (const Json& r : rows) {
    if (r.value("action", "") == "route.set" && r.value("actor", "") == "ramp") {
      out.push_back(r["after"].value("percent", -1.0));
    }
  }
  return out;
}

void SetUpRoute(Fixture& fx, RawBackend& legacy, RawBackend& fresh) {
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("api", {"--to", "new", "--else", "legacy", "--path", "/api", "--percent", "0"});
}

TEST_CASE("e2e: a ramp takes a route to 100% step by step, each step a history entry") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  SetUpRoute(fx, legacy, fresh);
  REQUIRE(fx.StartServe());
  Traffic traffic(fx.port());
  fx.MustCli({"ramp", "api", "--to", "100", "--step", "40", "--every", "1s",
              "--max-error-rate", "5%"});
  Json ramp = WaitForRampEnd(fx, "api");
  MESSAGE(ramp.dump());
  CHECK(ramp.value("state", "") == "done");
  CHECK(Percent(fx, "api") == 100);
  std::vector<Json> rows = RampRows(fx, "api");
  CHECK(StepPercents(rows) == std::vector<double>{40, 80, 100});
  REQUIRE(!rows.empty());
  CHECK(rows.front().value("action", "") == "ramp.start");
  CHECK(rows.back().value("action", "") == "ramp.done");
  for (const Json& r : rows) MESSAGE(r.value("action", "") << ": " << r.value("reason", ""));

  // Every request now goes to the new backend.
  traffic.Stop();
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  for (int i = 0; i < 20; ++i) {
    HttpResponse r = client.Get("/api/x", {{"Host", "h"}});
    REQUIRE(r.ok);
    CHECK(r.Header("X-Backend").value_or("") == "new");
  }
  MESSAGE("traffic during the ramp: " << Json(traffic.counts()).dump());
}

// Sends GETs on route api until `fresh` has received n more requests (at most
// 10000: a hang guard), all answered 200.
void SendUntilNewGot(Fixture& fx, RawBackend& fresh, size_t n) {
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  const size_t want = fresh.request_count() + n;
  for (int i = 0; fresh.request_count() < want && i < 10000; ++i) {
    HttpResponse r = client.Get("/api/healthy/" + std::to_string(i), {{"Host", "h"}});
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
  }
  REQUIRE(fresh.request_count() >= want);
}

// The new backend answers 500 once the ramp is at 50%. The ramp's steps are
// paced by the requests the test sends, not by the clock: with
// --min-requests 5, a window in which fewer than 5 requests reached new is
// not judged (the ramp waits, counting on), so without traffic it stays put.
void BreachCase(const std::string& on_breach) {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  std::atomic<bool> failing{false};
  fresh.set_responder([&fresh, &failing](const RecordedRequest& req) {
    if (failing) return std::string("HTTP/1.1 500 Internal Server Error\r\nX-Backend: new\r\n"
                                    "Content-Length: 4\r\n\r\noops");
    return fresh.DefaultResponse(req);
  });
  SetUpRoute(fx, legacy, fresh);
  // A second route whose ramp only shows that time passed (below).
  fx.AddRoute("clock", {"--to", "new", "--path", "/clock", "--percent", "0"});
  REQUIRE(fx.StartServe());
  fx.MustCli({"ramp", "api", "--to", "100", "--step", "25", "--every", "2s",
              "--max-error-rate", "0.1", "--min-requests", "5", "--on-breach", on_breach});
  // The first step (25%) comes at serve's next tick, without judging.
  REQUIRE(PollUntil([&] { return Percent(fx, "api") >= 25; }, kHangGuardMs, 50));
  REQUIRE(Percent(fx, "api") == 25);
  // A healthy window: 10 requests reach new, then nothing more is sent, so
  // the ramp steps to 50% once and stays there.
  SendUntilNewGot(fx, fresh, 10);
  REQUIRE(PollUntil([&] { return Percent(fx, "api") >= 50; }, kHangGuardMs, 50));
  REQUIRE(Percent(fx, "api") == 50);
  // Failing from 50%: the next window is a breach.
  failing = true;
  Traffic traffic(fx.port());
  Json ramp = WaitForRampEnd(fx, "api");
  MESSAGE(ramp.dump());
  std::vector<Json> rows = RampRows(fx, "api");
  for (const Json& r : rows) MESSAGE(r.value("action", "") << ": " << r.value("reason", ""));
  REQUIRE(!rows.empty());
  const Json& last = rows.back();
  CHECK(last.value("action", "") == "ramp.breach");
  // The reason carries the measured rates: "... 5xx 23/25 = 92.00% > 10.00% ..."
  std::string why = last.value("reason", "");
  CHECK(why.find("5xx") != std::string::npos);
  CHECK(why.find("%") != std::string::npos);
  CHECK(why.find("/") != std::string::npos);
  CHECK(StepPercents(rows).size() >= 2);
  if (on_breach == "rollback") {
    CHECK(ramp.value("state", "") == "rolled_back");
    CHECK(Percent(fx, "api") == 0);
    CHECK(StepPercents(rows).back() == 0);
    // Traffic is back on the legacy backend.
    traffic.Stop();
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    for (int i = 0; i < 20; ++i) {
      HttpResponse r = client.Get("/api/y", {{"Host", "h"}});
      REQUIRE(r.ok);
      CHECK(r.Header("X-Backend").value_or("") == "legacy");
    }
  } else {
    CHECK(ramp.value("state", "") == "frozen");
    CHECK(Percent(fx, "api") == 50);
    CHECK(StepPercents(rows).back() == 50);
  }
  // Ended: the percent no longer moves. Time enough for this ramp's next
  // window (2 s) has passed once serve has taken four steps of a 1 s ramp on
  // the clock route (the first at once, then one a second).
  double now = Percent(fx, "api");
  std::string state = ramp.value("state", "");
  fx.MustCli({"ramp", "clock", "--to", "100", "--step", "10", "--every", "1s"});
  CHECK(PollUntil([&] { return Percent(fx, "clock") >= 40; }, kHangGuardMs, 100));
  CHECK(Percent(fx, "api") == now);
  CHECK(RampOf(fx, "api").value("state", "") == state);
}

TEST_CASE("e2e: a ramp whose new backend starts failing is rolled back, with the rates") {
  BreachCase("rollback");
}

TEST_CASE("e2e: a ramp whose new backend starts failing is frozen, with the rates") {
  BreachCase("freeze");
}

TEST_CASE("e2e: two serves on one store take each ramp step once") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  SetUpRoute(fx, legacy, fresh);
  REQUIRE(fx.StartServe());
  // The second serve binds port 0 (no race with other processes for a port
  // picked in advance) and says which port it got.
  Process second({STRANGLER_BIN, "--db", fx.db(), "serve", "--listen", "127.0.0.1:0", "--log",
                  fx.dir().File("second.log"), "--reload-ms", "50"},
                 {}, fx.dir().File("second.out"), fx.dir().File("second.err"));
  REQUIRE(second.Start());
  const uint16_t port2 = ListeningPort(second);
  REQUIRE_MESSAGE(port2 != 0, "second serve: " << second.Stderr());
  REQUIRE(WaitForPort(port2, kHangGuardMs));
  Traffic a(fx.port()), b(port2);
  fx.MustCli({"ramp", "api", "--to", "100", "--step", "20", "--every", "1s"});
  Json ramp = WaitForRampEnd(fx, "api");
  CHECK(ramp.value("state", "") == "done");
  std::vector<Json> rows = RampRows(fx, "api");
  CHECK(StepPercents(rows) == std::vector<double>{20, 40, 60, 80, 100});
  int done = 0;
  for (const Json& r : rows) done += r.value("action", "") == "ramp.done";
  CHECK(done == 1);
  a.Stop();
  b.Stop();
  CHECK(second.Stop(SIGTERM, 10000) == 0);
  MESSAGE("second serve stderr: " << second.Stderr());
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
