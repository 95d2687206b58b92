// What a running router shows of its last minute (GET /api/v1/live and
// `strangler status`), the rest of the control API's reads and the ramp
// start (diff, explain, whoami, POST /api/v1/ramps/NAME), --admin-public-read,
// and the dashboard page served at GET /. Real backends, a real serve, real
// HTTP; the numbers are checked against what the clients were answered.
#include <unistd.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "api_client.h"
#include "harness.h"
#include "websocket.h"

namespace strangler {
namespace e2e {
namespace {

// `n` GETs of /orders/I with distinct X-User-Ids; returns how many the
// "new" backend answered. Every one must be answered 200.
int SendOrders(uint16_t port, int n, const std::string& user_prefix) {
  RawClient client;
  REQUIRE(client.Connect(port));
  int to_new = 0;
  for (int i = 0; i < n; ++i) {
    HttpResponse r = client.Get("/orders/" + std::to_string(i),
                                {{"X-User-Id", user_prefix + std::to_string(i)}});
    REQUIRE_MESSAGE(r.ok, r.error);
    REQUIRE(r.status == 200);
    if (r.Header("X-Backend") == "new") ++to_new;
  }
  return to_new;
}

const Json* LiveRoute(const Json& live, const std::string& name) {
  for (const Json& r : live["routes"]) {
    if (r["route"] == name) return &r;
  }
  return nullptr;
}

TEST_CASE("e2e: /api/v1/live and strangler status show the last minute as the clients saw it") {
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  // The new service fails every /boom request.
  fresh.set_responder([&fresh](const RecordedRequest& req) {
    if (req.target.rfind("/boom", 0) == 0) {
      return std::string("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nboom");
    }
    return fresh.DefaultResponse(req);
  });
  Fixture fx;
  fx.AddBackend("legacy", legacy.url(), {"--default"});
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("orders", {"--path", "/orders/*", "--to", "new", "--percent", "30", "--sticky",
                         "header:X-User-Id"});
  fx.AddRoute("boom", {"--path", "/boom", "--to", "new"});
  const std::string tokens = fx.dir().File("tokens");
  const std::string viewer = AddToken(fx, "viewer", "read", tokens);
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-token-file", tokens}));
  Api api{AdminPort(*fx.serve())};
  REQUIRE(api.WaitReady());

  const int kOrders = 200, kBooms = 7;
  const int to_new = SendOrders(fx.port(), kOrders, "user-");
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  for (int i = 0; i < kBooms; ++i) CHECK(client.Get("/boom").status == 500);

  Json live = api.CallJson("GET", "/api/v1/live", viewer, 200);
  MESSAGE("live: " << live.dump());
  CHECK(live["window_s"] == 60);
  const Json* orders = LiveRoute(live, "orders");
  REQUIRE(orders != nullptr);
  CHECK((*orders)["percent"] == 30);
  CHECK((*orders)["requests"] == kOrders);
  CHECK((*orders)["sides"]["to"]["backend"] == "new");
  CHECK((*orders)["sides"]["to"]["requests"] == to_new);
  CHECK((*orders)["sides"]["else"]["backend"] == "legacy");
  CHECK((*orders)["sides"]["else"]["requests"] == kOrders - to_new);
  CHECK((*orders)["observed_share"].get<double>() ==
        doctest::Approx(100.0 * to_new / kOrders).epsilon(0.0001));
  CHECK((*orders)["sides"]["to"]["errors_5xx"] == 0);
  CHECK((*orders)["sides"]["else"]["error_rate"] == 0);
  for (const char* side : {"to", "else"}) {
    const Json& s = (*orders)["sides"][side];
    REQUIRE(s["p50_ms"].is_number());
    CHECK(s["p50_ms"].get<double>() > 0);
    CHECK(s["p50_ms"].get<double>() <= s["p99_ms"].get<double>());
  }
  CHECK((*orders)["mirror"].is_null());
  CHECK((*orders)["ramp"].is_null());
  const Json* boom = LiveRoute(live, "boom");
  REQUIRE(boom != nullptr);
  CHECK((*boom)["requests"] == kBooms);
  CHECK((*boom)["observed_share"] == 100);
  CHECK((*boom)["sides"]["to"]["errors_5xx"] == kBooms);
  CHECK((*boom)["sides"]["to"]["error_rate"] == 100);
  CHECK((*boom)["sides"]["else"]["requests"] == 0);
  CHECK((*boom)["sides"]["else"]["p99_ms"].is_null());

  // The decision log agrees, line for line.
  std::vector<Json> lines = fx.WaitForLogLines(kOrders + kBooms);
  int logged_new = 0;
  for (const Json& l : lines) logged_new += l["route"] == "orders" && l["backend"] == "new";
  CHECK(logged_new == to_new);

  // `strangler status` finds the serve by the address it wrote next to the
  // store, and shows the same numbers.
  CHECK(ReadFile(fx.db() + ".admin") == "http://127.0.0.1:" + std::to_string(api.port) + "\n");
  RunResult table = fx.MustCli({"status", "--token", viewer});
  MESSAGE(table.out);
  CHECK(table.out.find("ROUTE") != std::string::npos);
  CHECK(table.out.find("orders  30%") != std::string::npos);
  CHECK(table.out.find(" " + std::to_string(kOrders) + " ") != std::string::npos);
  RunResult as_json = fx.MustCli(
      {"status", "--json", "--admin", "127.0.0.1:" + std::to_string(api.port), "--token", viewer});
  Json shown = Json::parse(as_json.out, nullptr, false);
  REQUIRE_FALSE(shown.is_discarded());
  CHECK(shown["routes"].size() == live["routes"].size());
  CHECK((*LiveRoute(shown, "orders"))["sides"]["to"]["requests"] == to_new);
  // No token: the API's message and where to give one; exit 1.
  std::string no_token = CliError(fx, {"status"});
  CHECK(no_token.find("no token") != std::string::npos);
  CHECK(no_token.find("--token") != std::string::npos);

  // Stopped, serve takes its address away; status says what to do.
  CHECK(fx.StopServe(SIGTERM) == 0);
  CHECK(access((fx.db() + ".admin").c_str(), F_OK) != 0);
  std::string gone = CliError(fx, {"status", "--token", viewer});
  CHECK(gone.find("no running serve with --admin") != std::string::npos);
  std::string refused = CliError(fx, {"status", "--admin", "127.0.0.1:1", "--token", viewer});
  CHECK(refused.find("cannot reach the admin listener at http://127.0.0.1:1") != std::string::npos);
}

TEST_CASE("e2e: /api/v1/live counts each side by the backend that answered, across rule changes") {
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  Fixture fx;
  fx.AddBackend("legacy", legacy.url(), {"--default"});
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("orders", {"--path", "/orders/*", "--to", "new"});
  const std::string tokens = fx.dir().File("tokens");
  const std::string viewer = AddToken(fx, "viewer", "read", tokens);
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-token-file", tokens}));
  Api api{AdminPort(*fx.serve())};
  REQUIRE(api.WaitReady());
  CHECK(SendOrders(fx.port(), 7, "a-") == 7);  // all to new
  // The route turned around: new is now the --else side, legacy --to.
  fx.MustCli({"route", "set", "orders", "--to", "legacy", "--else", "new", "--percent", "0"});
  REQUIRE(PollUntil([&] {
    return (*LiveRoute(api.CallJson("GET", "/api/v1/live", viewer, 200), "orders"))["to"] ==
           "legacy";
  }));
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  CHECK(client.Get("/orders/x").Header("X-Backend") == "new");
  Json live = api.CallJson("GET", "/api/v1/live", viewer, 200);
  const Json& orders = *LiveRoute(live, "orders");
  INFO(orders.dump());
  // new answered 8 in the last minute, legacy none (before: new's 7 were
  // shown as legacy's, the side they were counted on).
  CHECK(orders["sides"]["to"]["backend"] == "legacy");
  CHECK(orders["sides"]["to"]["requests"] == 0);
  CHECK(orders["sides"]["else"]["backend"] == "new");
  CHECK(orders["sides"]["else"]["requests"] == 8);
  CHECK(orders["observed_share"] == 0);
}

// A tunnel's total_ms is how long it stayed open: found by the raw-byte
// round after this change (two 2.5 s tunnels showed a p50 of 2755 ms).
TEST_CASE("e2e: a WebSocket tunnel counts as a request in /live but not as a latency") {
  RawBackend legacy("legacy");
  WsEchoBackend ws("ws");
  REQUIRE(legacy.Start());
  REQUIRE(ws.Start());
  Fixture fx;
  fx.AddBackend("legacy", legacy.url(), {"--default"});
  fx.AddBackend("ws", ws.url());
  fx.AddRoute("feed", {"--to", "ws", "--path", "/feed"});
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-public-read"}));
  Api api{AdminPort(*fx.serve())};
  REQUIRE(api.WaitReady());
  {
    WsClient c;
    REQUIRE_MESSAGE(c.Open(fx.port(), "/feed/1"), c.error());
    REQUIRE(c.status() == 101);
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // held open a while
    REQUIRE(c.SendClose(1000));
    REQUIRE(c.ReadClose(kHangGuardMs).ok);
  }
  REQUIRE(PollUntil([&] {
    return (*LiveRoute(api.CallJson("GET", "/api/v1/live", "", 200), "feed"))["requests"] == 1;
  }));
  const Json live = api.CallJson("GET", "/api/v1/live", "", 200);
  const Json& to = (*LiveRoute(live, "feed"))["sides"]["to"];
  INFO(to.dump());
  CHECK(to["requests"] == 1);
  CHECK(to["p50_ms"].is_null());
  CHECK(to["p99_ms"].is_null());
}

TEST_CASE("e2e: the API's diff, explain, whoami and ramp start answer as the CLI does") {
  RawBackend legacy("legacy"), fresh("new"), shadow("shadow");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  REQUIRE(shadow.Start());
  Fixture fx;
  fx.AddBackend("legacy", legacy.url(), {"--default"});
  fx.AddBackend("new", fresh.url());
  fx.AddBackend("shadow", shadow.url());
  fx.AddRoute("orders", {"--path", "/orders/*", "--to", "new", "--percent", "30", "--sticky",
                         "header:X-User-Id", "--mirror", "shadow"});
  const std::string tokens = fx.dir().File("tokens");
  const std::string ops = AddToken(fx, "ops", "write", tokens);
  const std::string viewer = AddToken(fx, "viewer", "read", tokens);
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-token-file", tokens}));
  Api api{AdminPort(*fx.serve())};
  REQUIRE(api.WaitReady());

  Json me = api.CallJson("GET", "/api/v1/whoami", ops, 200);
  CHECK(me == Json{{"name", "ops"}, {"role", "write"}});
  CHECK(api.CallJson("GET", "/api/v1/whoami", viewer, 200)["role"] == "read");
  CHECK(api.Call("GET", "/api/v1/whoami", "").status == 401);

  // explain: the CLI's JSON, plus the split sentence the CLI prints.
  Json explained = api.CallJson(
      "GET", "/api/v1/explain?method=GET&path=/orders/7&header=X-User-Id:%20u7", viewer, 200);
  Json cli_explained =
      Json::parse(fx.MustCli({"explain", "GET", "/orders/7", "-H", "X-User-Id: u7", "--json"}).out);
  CHECK(explained["split"].get<std::string>().find("buckets below 3000 (30%) go to new") == 0);
  explained.erase("split");
  CHECK(explained == cli_explained);
  Json bad_path = api.CallJson("GET", "/api/v1/explain?path=orders", viewer, 400);
  CHECK(bad_path["error"] == CliError(fx, {"explain", "orders"}));
  Json bad_header = api.CallJson("GET", "/api/v1/explain?path=/x&header=no-colon", viewer, 400);
  CHECK(bad_header["error"] == CliError(fx, {"explain", "/x", "-H", "no-colon"}));

  // diff: what `strangler diff --json` prints, once the mirror compared some.
  SendOrders(fx.port(), 20, "d-");
  REQUIRE(PollUntil([&] {
    Json d = Json::parse(fx.MustCli({"diff", "--json"}).out);
    return !d["routes"].empty() && d["routes"][0]["compared"].get<int>() > 0;
  }));
  Json diff = api.CallJson("GET", "/api/v1/diff?limit=5", viewer, 200);
  Json cli_diff = Json::parse(fx.MustCli({"diff", "--json", "--limit", "5"}).out);
  CHECK(diff == cli_diff);
  Json unknown = api.CallJson("GET", "/api/v1/diff?route=nope", viewer, 404);
  CHECK(unknown["error"] == CliError(fx, {"diff", "nope"}));
  CHECK(api.CallJson("GET", "/api/v1/diff?limit=0", viewer, 400)["error"] ==
        "bad limit '0': 1..10000");
  // live shows the mirror's last minute too.
  REQUIRE(PollUntil([&] {
    Json live = api.CallJson("GET", "/api/v1/live", viewer, 200);
    const Json& m = (*LiveRoute(live, "orders"))["mirror"];
    return m.is_object() && m["compared"].get<int>() == 20;
  }));

  // Ramp start: bad specs get the CLI's messages and change nothing.
  const std::string before = fx.MustCli({"history", "--json"}).out;
  Json over = api.CallJson("POST", "/api/v1/ramps/orders", ops, 400,
                           R"({"to": 101, "step": 10, "every": "30s"})");
  CHECK(over["error"] ==
        CliError(fx, {"ramp", "orders", "--to", "101", "--step", "10", "--every", "30s"}));
  Json missing = api.CallJson("POST", "/api/v1/ramps/orders", ops, 400, R"({"to": 50})");
  CHECK(missing["error"] == CliError(fx, {"ramp", "orders", "--to", "50"}));
  Json field = api.CallJson("POST", "/api/v1/ramps/orders", ops, 400,
                            R"({"to": 50, "step": 10, "every": "30s", "speed": 2})");
  CHECK(field["error"].get<std::string>().find("unknown field 'speed'") == 0);
  Json no_route = api.CallJson("POST", "/api/v1/ramps/nope", ops, 404,
                               R"({"to": 50, "step": 10, "every": "30s"})");
  CHECK(no_route["error"].get<std::string>().find("nope") != std::string::npos);
  CHECK(api.CallJson("POST", "/api/v1/ramps/orders", viewer, 403,
                     R"({"to": 50, "step": 10, "every": "30s"})")["error"] ==
        "token 'viewer' may only read");
  CHECK(fx.MustCli({"history", "--json"}).out == before);
  CHECK(fx.MustCli({"ramp", "list", "--json"}).out == "[]\n");
  // A good one: started, in the ramp list and history as the token's.
  Json ramp = api.CallJson(
      "POST", "/api/v1/ramps/orders", ops, 201,
      R"({"to": 60, "step": "10%", "every": "1h", "max_error_rate": "5%", "reason": "go"})");
  CHECK(ramp["route"] == "orders");
  CHECK(ramp["state"] == "running");
  CHECK(ramp["target"] == 60);
  Json listed = Json::parse(fx.MustCli({"ramp", "list", "--json"}).out);
  REQUIRE(listed.size() == 1);
  CHECK(listed[0]["max_error_rate"] == 0.05);
  // (serve may have taken the first step already: a row of actor "ramp")
  bool recorded = false;
  for (const Json& row : Json::parse(fx.MustCli({"history", "--json", "--limit", "3"}).out)) {
    recorded = recorded || (row["actor"] == "ops" && row["reason"] == "go" &&
                            row["action"].get<std::string>().find("ramp") == 0);
  }
  CHECK(recorded);
  // ... and in /live.
  Json live = api.CallJson("GET", "/api/v1/live", viewer, 200);
  CHECK((*LiveRoute(live, "orders"))["ramp"]["target"] == 60);
}

TEST_CASE("e2e: --admin-public-read serves reads without a token, never writes") {
  RawBackend legacy("legacy");
  REQUIRE(legacy.Start());
  Fixture fx;
  fx.AddBackend("legacy", legacy.url(), {"--default"});
  fx.AddRoute("orders", {"--path", "/orders/*", "--to", "legacy"});
  const std::string tokens = fx.dir().File("tokens");
  const std::string ops = AddToken(fx, "ops", "write", tokens);

  SUBCASE("with a token file") {
    REQUIRE(fx.StartServe(
        {"--admin", "127.0.0.1:0", "--admin-token-file", tokens, "--admin-public-read"}));
    Api api{AdminPort(*fx.serve())};
    REQUIRE(api.WaitReady());
    CHECK(api.CallJson("GET", "/api/v1/whoami", "", 200) ==
          Json{{"name", nullptr}, {"role", "public"}});
    CHECK(api.CallJson("GET", "/api/v1/live", "", 200)["routes"].size() == 1);
    CHECK(api.CallJson("GET", "/api/v1/routes", "", 200).size() == 1);
    // Only when addressed by IP or localhost: a page of another site whose
    // name resolves here (DNS rebinding) sends its own Host and reads nothing.
    HttpResponse rebound = api.Call("GET", "/api/v1/live", "", "", {{"Host", "evil.example:9901"}});
    CHECK(rebound.status == 401);
    CHECK(rebound.body.find("addressed by IP or localhost (Host: evil.example:9901)") !=
          std::string::npos);
    for (const char* host : {"localhost:9901", "localhost", "127.0.0.1", "[::1]:9901"}) {
      INFO(host);
      CHECK(api.Call("GET", "/api/v1/whoami", "", "", {{"Host", host}}).status == 200);
    }
    CHECK(api.Call("GET", "/api/v1/live", ops, "", {{"Host", "evil.example"}}).status == 200);
    // A token sent is still checked; writes still need a write token.
    CHECK(api.Call("GET", "/api/v1/routes", "strangler_wrong").status == 401);
    CHECK(api.Call("PATCH", "/api/v1/routes/orders", "", R"({"percent": 50})").status == 401);
    CHECK(api.CallJson("PATCH", "/api/v1/routes/orders", ops, 200,
                       R"({"percent": 50})")["percent"] == 50);
  }
  SUBCASE("without one") {
    REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-public-read"}));
    Api api{AdminPort(*fx.serve())};
    REQUIRE(api.WaitReady());
    CHECK(api.CallJson("GET", "/api/v1/live", "", 200)["routes"].size() == 1);
    CHECK(api.Call("PATCH", "/api/v1/routes/orders", "", R"({"percent": 50})").status == 401);
    CHECK(api.Call("PATCH", "/api/v1/routes/orders", ops, R"({"percent": 50})").status == 401);
  }
  SUBCASE("off by default") {
    REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-token-file", tokens}));
    Api api{AdminPort(*fx.serve())};
    REQUIRE(api.WaitReady());
    CHECK(api.Call("GET", "/api/v1/live", "").status == 401);
  }
  std::string usage = CliError(fx, {"serve", "--admin-public-read"});
  CHECK(usage == "--admin-public-read needs --admin HOST:PORT (the API is served there)");
}

TEST_CASE("e2e: the dashboard at GET / is one page that may only talk to its own origin") {
  RawBackend legacy("legacy");
  REQUIRE(legacy.Start());
  Fixture fx;
  fx.AddBackend("legacy", legacy.url(), {"--default"});
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0"}));
  Api api{AdminPort(*fx.serve())};
  HttpResponse page = api.Call("GET", "/", "");
  CHECK(page.status == 200);
  CHECK(page.Header("Content-Type") == "text/html; charset=utf-8");
  CHECK(page.body.find("<!doctype html>") == 0);
  // Everything inline: no script, style, image or link loaded from anywhere
  // (the one URL is SVG's namespace, a name and not a request; the icon is
  // data:, so that the browser asks for no /favicon.ico).
  std::string body = page.body;
  const std::string kSvgNamespace = "\"http://www.w3.org/2000/svg\"";
  for (size_t at; (at = body.find(kSvgNamespace)) != std::string::npos;) {
    body.erase(at, kSvgNamespace.size());
  }
  for (const char* outside :
       {"http://", "https://", "src=", "rel=\"stylesheet\"", "@import", "url("}) {
    INFO(outside);
    CHECK(body.find(outside) == std::string::npos);
  }
  CHECK(body.find("<link rel=\"icon\" href=\"data:,\">") != std::string::npos);
  // And the browser is told so: requests to this origin only, inline code
  // only by its hash.
  const std::string csp = page.Header("Content-Security-Policy").value_or("");
  CHECK(csp.find("default-src 'none'") != std::string::npos);
  CHECK(csp.find("connect-src 'self'") != std::string::npos);
  CHECK(csp.find("unsafe-inline") == std::string::npos);
  CHECK(page.Header("Cache-Control") == "no-store");
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
