// Ramps: a running serve raises a route's percent step by step, judging the
// --to backend's 5xx rate in each window against the error budget and the
// --else backend's rate; a breach rolls back or freezes and ends the ramp.
// Windows are a second or two; traffic comes from a client thread.
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

// Sends GETs to /api/N on one keep-alive connection until stopped (at most
// for `max_ms`), about one every 10 ms, and counts answers by X-Backend.
class Traffic {
 public:
  Traffic(uint16_t port, int max_ms) {
    thread_ = std::thread([this, port, max_ms] {
      RawClient client;
      int64_t end = NowMs() + max_ms;
      for (int i = 0; !stop_ && NowMs() < end; ++i) {
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

// Polls until the ramp's state is not "running", or timeout.
Json WaitForRampEnd(Fixture& fx, const std::string& route, int timeout_ms) {
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
  Traffic traffic(fx.port(), 30000);
  fx.MustCli({"ramp", "api", "--to", "100", "--step", "40", "--every", "1s",
              "--max-error-rate", "5%"});
  Json ramp = WaitForRampEnd(fx, "api", 20000);
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

// The new backend answers 500 once the ramp reached `fail_at` percent.
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
  REQUIRE(fx.StartServe());
  Traffic traffic(fx.port(), 30000);
  fx.MustCli({"ramp", "api", "--to", "100", "--step", "25", "--every", "2s",
              "--max-error-rate", "0.1", "--min-requests", "5", "--on-breach", on_breach});
  // Healthy through the first window (25%), failing from 50%.
  int64_t deadline = NowMs() + 15000;
  while (NowMs() < deadline && Percent(fx, "api") < 50) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  REQUIRE(Percent(fx, "api") == 50);
  failing = true;
  Json ramp = WaitForRampEnd(fx, "api", 15000);
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
  // Ended: the percent no longer moves.
  double now = Percent(fx, "api");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));
  CHECK(Percent(fx, "api") == now);
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
  uint16_t port2 = PickFreePort();
  Process second({STRANGLER_BIN, "--db", fx.db(), "serve", "--listen",
                  "127.0.0.1:" + std::to_string(port2), "--log", fx.dir().File("second.log"),
                  "--reload-ms", "50"},
                 {}, fx.dir().File("second.out"), fx.dir().File("second.err"));
  REQUIRE(second.Start());
  REQUIRE(WaitForPort(port2, 10000));
  Traffic a(fx.port(), 30000), b(port2, 30000);
  fx.MustCli({"ramp", "api", "--to", "100", "--step", "20", "--every", "1s"});
  Json ramp = WaitForRampEnd(fx, "api", 25000);
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
