// --fallback: when `--to` fails before any byte of its answer reached the
// client, an idempotent bodiless request is answered by `--else` instead,
// and the log says reason "fallback" and why. Never for a POST, never once
// the answer has begun.
#include <csignal>
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: fallback on refused, timeout and 5xx; not for POST; not once bytes went out") {
  Fixture fx;
  RawBackend legacy("legacy"), slow("slow"), failing("failing"), cut("cut");
  REQUIRE(legacy.Start());
  REQUIRE(slow.Start());
  REQUIRE(failing.Start());
  REQUIRE(cut.Start());
  slow.Hold();  // never answers in time: only the router's 300 ms timeout ends its requests
  failing.set_response(
      "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nX-Backend: failing\r\n\r\nnope");
  cut.set_response("HTTP/1.1 200 OK\r\nContent-Length: 100\r\nX-Backend: cut\r\n\r\npartial");
  cut.set_close_after_response(true);
  fx.AddBackend("legacy", legacy.url());
  ClosedPort dead;  // refuses every connection, and no other process can take its port
  fx.AddBackend("dead", dead.url());
  fx.AddBackend("slow", slow.url(), {"--timeout-ms", "300"});
  fx.AddBackend("failing", failing.url());
  fx.AddBackend("cut", cut.url());
  fx.AddRoute("r-dead", {"--to", "dead", "--path", "/dead", "--fallback"});
  fx.AddRoute("r-slow", {"--to", "slow", "--path", "/slow", "--fallback"});
  fx.AddRoute("r-5xx", {"--to", "failing", "--path", "/5xx", "--fallback-on-5xx"});
  fx.AddRoute("r-5xx-plain", {"--to", "failing", "--path", "/plain5xx", "--fallback"});
  fx.AddRoute("r-cut", {"--to", "cut", "--path", "/cut", "--fallback"});
  fx.AddRoute("r-nofb", {"--to", "dead", "--path", "/nofb"});
  REQUIRE(fx.StartServe());

  struct Case {
    std::string method, path;
    int status;            // 0: the connection is cut
    std::string backend;   // X-Backend of the answer
    bool fell_back;
    std::string why_has;   // in the log's "fallback" field
  };
  const Case cases[] = {
      {"GET", "/dead/1", 200, "legacy", true, "refused"},
      {"HEAD", "/dead/2", 200, "legacy", true, "refused"},
      {"OPTIONS", "/dead/3", 200, "legacy", true, "refused"},
      {"GET", "/slow/1", 200, "legacy", true, "did not answer within 300 ms"},
      {"GET", "/5xx/1", 200, "legacy", true, "answered 503"},
      {"GET", "/plain5xx/1", 503, "failing", false, ""},  // 5xx passes without --fallback-on-5xx
      {"POST", "/dead/4", 502, "", false, ""},            // never for a POST
      {"GET", "/nofb/1", 502, "", false, ""},             // route without --fallback
      {"GET", "/cut/1", 0, "", false, ""},                // the answer had begun: no retry
  };
  for (const auto& c : cases) {
    INFO(c.method << " " << c.path);
    legacy.ClearRequests();
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    HttpResponse r = client.Request(c.method, c.path, {{"Host", "h"}}, "");
    if (c.status == 0) {
      CHECK_FALSE(r.ok);
      CHECK(legacy.request_count() == 0);
      continue;
    }
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == c.status);
    if (!c.backend.empty()) CHECK(r.Header("X-Backend").value_or("") == c.backend);
    CHECK(legacy.request_count() == (c.fell_back ? 1u : 0u));
    auto rid = r.Header("X-Request-Id");
    REQUIRE(rid);
    auto line = fx.LogLineFor(*rid);
    REQUIRE(line);
    MESSAGE(line->dump());
    if (c.fell_back) {
      CHECK((*line)["reason"] == "fallback");
      CHECK((*line)["backend"] == "legacy");
      CHECK((*line)["route"] != nullptr);
      CHECK((*line)["fallback"].get<std::string>().find(c.why_has) != std::string::npos);
    } else {
      CHECK((*line)["reason"] != "fallback");
      CHECK_FALSE(line->contains("fallback"));
    }
  }
  CHECK(fx.StopServe(SIGTERM) == 0);
}

TEST_CASE("e2e: route options --fallback round-trip through show --json, set and export") {
  Fixture fx;
  fx.AddBackend("legacy", "http://127.0.0.1:9");
  fx.AddBackend("new", "http://127.0.0.1:10");
  fx.AddRoute("r", {"--to", "new", "--path", "/x", "--fallback-on-5xx"});
  Json j = Json::parse(fx.MustCli({"route", "show", "r", "--json"}).out);
  CHECK(j["fallback"] == true);
  CHECK(j["fallback_on_5xx"] == true);
  fx.MustCli({"route", "set", "r", "--no-fallback"});
  j = Json::parse(fx.MustCli({"route", "show", "r", "--json"}).out);
  CHECK_FALSE(j.contains("fallback"));
  CHECK_FALSE(j.contains("fallback_on_5xx"));
  fx.MustCli({"route", "set", "r", "--fallback"});
  Json exported = Json::parse(fx.MustCli({"export"}).out);
  CHECK(exported["routes"][0]["fallback"] == true);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
