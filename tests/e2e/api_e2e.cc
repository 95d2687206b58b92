// The control API (/api/v1 on the admin listener) driven by a real HTTP
// client: bearer tokens made by `strangler token add`, roles, writes going
// through the same store calls as the CLI (the same messages, the same
// history rows with the token's name as actor), traffic following them, and
// failed attempts rate-limited per client address.
#include <sys/stat.h>

#include <signal.h>

#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "api_client.h"
#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: the control API: tokens and roles, writes as the CLI makes them, traffic follows") {
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  Fixture fx;
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  const std::string tokens = fx.dir().File("tokens");
  const std::string ops = AddToken(fx, "ops", "write", tokens);
  const std::string viewer = AddToken(fx, "viewer", "read", tokens);
  struct stat st {};
  REQUIRE(stat(tokens.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(ReadFile(tokens).find(ops) == std::string::npos);  // only its digest is kept
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-token-file", tokens}));
  Api api{AdminPort(*fx.serve())};
  REQUIRE(api.port != 0);

  // No token, a wrong one: 401. A read token may read, not write (403).
  HttpResponse none = api.Call("GET", "/api/v1/routes", "");
  CHECK(none.status == 401);
  CHECK(none.Header("WWW-Authenticate") == "Bearer");
  CHECK(api.Call("GET", "/api/v1/routes", "strangler_wrong").status == 401);
  CHECK(api.CallJson("GET", "/api/v1/routes", viewer, 200) == Json::array());
  Json backends = api.CallJson("GET", "/api/v1/backends", viewer, 200);
  REQUIRE(backends.size() == 2);
  CHECK(backends[0]["name"] == "legacy");
  Json denied = api.CallJson("PUT", "/api/v1/routes/orders", viewer, 403,
                             R"({"to": "new", "path": "/api/orders"})");
  CHECK(denied["error"] == "token 'viewer' may only read");

  // A write: created (201), in history with the token's name and the reason.
  Json made = api.CallJson("PUT", "/api/v1/routes/orders", ops, 201,
                           R"({"to": "new", "path": "/api/orders"})",
                           {{"X-Reason", "orders move to the new service"}});
  CHECK(made["name"] == "orders");
  CHECK(made["percent"] == 100);
  Json history = api.CallJson("GET", "/api/v1/history?limit=1", viewer, 200);
  REQUIRE(history.size() == 1);
  CHECK(history[0]["actor"] == "ops");
  CHECK(history[0]["action"] == "route.add");
  CHECK(history[0]["reason"] == "orders move to the new service");
  RunResult cli_history = fx.MustCli({"history", "--json"});
  CHECK(Json::parse(cli_history.out)[0]["actor"] == "ops");  // the same row the CLI reads
  // Serve picks it up as it picks up a CLI write.
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  CHECK(PollUntil([&] {
    HttpResponse r = client.Get("/api/orders/1");
    return r.Header("X-Backend") == "new";
  }));

  // PATCH changes the fields given; the reason may come in the body.
  Json patched = api.CallJson("PATCH", "/api/v1/routes/orders", ops, 200,
                              R"({"percent": 0, "reason": "rolled back"})");
  CHECK(patched["percent"] == 0);
  CHECK(patched["path"] == "/api/orders");
  CHECK(api.CallJson("GET", "/api/v1/history?limit=1", viewer, 200)[0]["reason"] == "rolled back");
  CHECK(PollUntil([&] { return client.Get("/api/orders/1").Header("X-Backend") == "legacy"; }));

  // Bad input: 400 with the CLI's own message, and nothing written.
  const size_t rows = Json::parse(fx.MustCli({"history", "--json", "--limit", "1000"}).out).size();
  struct Bad {
    std::string method, path, body;
    std::vector<std::string> cli;  // the same mistake made with the CLI ({} when none)
    std::string message;           // when there is no CLI twin
  };
  const Bad bads[] = {
      {"PUT", "/api/v1/routes/r2", R"({"to": "new",)", {}, "the body is not JSON"},
      {"PUT", "/api/v1/routes/r2", R"(["to"])", {}, "the body must be a JSON object"},
      {"PUT",
       "/api/v1/routes/r2",
       R"({"to": "new", "bogus": 1})",
       {},
       "unknown field 'bogus' in route"},
      {"PUT", "/api/v1/routes/r2", R"({"to": "nope"})", {"route", "add", "r2", "--to", "nope"}, ""},
      {"PUT",
       "/api/v1/routes/r2",
       R"({"to": "new", "headers": ["X-A~("]})",
       {"route", "add", "r2", "--to", "new", "--header", "X-A~("},
       ""},
      {"PATCH",
       "/api/v1/routes/orders",
       R"({"percent": 101})",
       {"route", "set", "orders", "--percent", "101"},
       ""},
      {"PUT",
       "/api/v1/routes/r2",
       R"({"name": "r3", "to": "new"})",
       {},
       "the body names '\"r3\"' but the path names 'r2' (a rename is a DELETE and a PUT)"},
  };
  for (const Bad& b : bads) {
    INFO(b.method << " " << b.path << " " << b.body);
    Json err = api.CallJson(b.method, b.path, ops, 400, b.body);
    std::string want = b.cli.empty() ? b.message : CliError(fx, b.cli);
    CHECK(err["error"] == want);
  }
  CHECK(Json::parse(fx.MustCli({"history", "--json", "--limit", "1000"}).out).size() == rows);
  CHECK(api.CallJson("PATCH", "/api/v1/routes/none", ops, 404, R"({"percent": 5})")["error"] ==
        CliError(fx, {"route", "set", "none", "--percent", "5"}));
  CHECK(api.CallJson("GET", "/api/v1/routes/none", viewer, 404).contains("error"));

  // DELETE, then revert that change: the route is back.
  CHECK(api.CallJson("DELETE", "/api/v1/routes/orders", ops, 200)["removed"] == "route/orders");
  Json last = api.CallJson("GET", "/api/v1/history?limit=1", viewer, 200)[0];
  CHECK(last["action"] == "route.rm");
  Json reverted = api.CallJson("POST", "/api/v1/revert/" + std::to_string(last["id"].get<int>()),
                               ops, 200, "", {{"X-Reason", "undo"}});
  REQUIRE(reverted.size() == 1);
  CHECK(reverted[0]["actor"] == "ops");
  CHECK(api.CallJson("GET", "/api/v1/routes/orders", viewer, 200)["percent"] == 0);

  // Backends: PUT makes one, PATCH changes it, a backend in use cannot go.
  Json b = api.CallJson("PUT", "/api/v1/backends/extra", ops, 201,
                        R"({"urls": [")" + fresh.url() + R"("], "timeout_ms": 5000})");
  CHECK(b["timeout_ms"] == 5000);
  CHECK(api.CallJson("PATCH", "/api/v1/backends/extra", ops, 200,
                     R"({"timeout_ms": 7000})")["timeout_ms"] == 7000);
  CHECK(api.CallJson("DELETE", "/api/v1/backends/new", ops, 409)["error"] ==
        CliError(fx, {"backend", "rm", "new"}));
  CHECK(api.CallJson("DELETE", "/api/v1/backends/extra", ops, 200)["removed"] == "backend/extra");
  // A base path that would climb out of itself, or read differently to
  // different servers, is refused by both with one message.
  for (const char* url : {"http://127.0.0.1:9/v2/../admin", "http://127.0.0.1:9/v2;x",
                          "http://127.0.0.1:9/v2%2Fadmin"}) {
    INFO(url);
    const std::string body = std::string(R"({"urls": [")") + url + R"("]})";
    CHECK(api.CallJson("PUT", "/api/v1/backends/based", ops, 400, body)["error"] ==
          CliError(fx, {"backend", "add", "based", url}));
  }
}

// Backends "legacy" and "new", the route "orders" at 0% with a ramp to 100%
// (a step an hour), a write token "ops", and a serve with the control API.
struct RampingRouter {
  RawBackend legacy{"legacy"}, fresh{"new"};
  Fixture fx;
  std::string ops;
  Api api{0};

  RampingRouter() {
    REQUIRE(legacy.Start());
    REQUIRE(fresh.Start());
    fx.AddBackend("legacy", legacy.url());
    fx.AddBackend("new", fresh.url());
    fx.AddRoute("orders", {"--to", "new", "--path", "/api/orders", "--percent", "0"});
    fx.MustCli({"ramp", "orders", "--to", "100", "--step", "10", "--every", "1h"});
    const std::string tokens = fx.dir().File("tokens");
    ops = AddToken(fx, "ops", "write", tokens);
    REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-token-file", tokens}));
    api.port = AdminPort(*fx.serve());
    REQUIRE(api.WaitReady());
    // serve takes the ramp's first step at its first tick; the next is an
    // hour away, so the rules hold still from here on.
    REQUIRE(PollUntil([this] {
      return Json::parse(fx.MustCli({"route", "show", "orders", "--json"}).out)["percent"] == 10;
    }));
  }
};

TEST_CASE_FIXTURE(
    RampingRouter,
    "e2e: the control API lists ramps as `ramp list --json` does, and pauses, resumes and "
    "aborts them") {
  Json ramps = api.CallJson("GET", "/api/v1/ramps", ops, 200);
  REQUIRE(ramps.size() == 1);
  CHECK(ramps[0]["route"] == "orders");
  CHECK(ramps[0]["to_backend"] == "new");
  for (const char* verb : {"pause", "resume", "abort"}) {
    INFO(verb);
    CHECK(api.CallJson("POST", std::string("/api/v1/ramps/orders/") + verb, ops, 200, "",
                       {{"X-Reason", std::string("api ") + verb}})["ramp"] == "orders");
    Json row = api.CallJson("GET", "/api/v1/history?limit=1", ops, 200)[0];
    CHECK(row["action"] == std::string("ramp.") + verb);
    CHECK(row["actor"] == "ops");
    CHECK(row["reason"] == std::string("api ") + verb);
  }
  // The same document the CLI prints.
  CHECK(api.CallJson("GET", "/api/v1/ramps", ops, 200) ==
        Json::parse(fx.MustCli({"ramp", "list", "--json"}).out));
  CHECK(api.CallJson("POST", "/api/v1/ramps/none/pause", ops, 404)["error"] ==
        CliError(fx, {"ramp", "pause", "none"}));
}

TEST_CASE_FIXTURE(
    RampingRouter,
    "e2e: the control API takes a reason from the body of every write, refuses one that is "
    "not UTF-8, and filters history by kind/name") {
  // pause with the reason in the body (before: recorded as "")
  api.CallJson("POST", "/api/v1/ramps/orders/pause", ops, 200, R"({"reason": "body reason"})");
  Json row = api.CallJson("GET", "/api/v1/history?limit=1", ops, 200)[0];
  CHECK(row["action"] == "ramp.pause");
  CHECK(row["reason"] == "body reason");
  // Such a body takes nothing else, and must be JSON.
  CHECK(api.CallJson("POST", "/api/v1/ramps/orders/resume", ops, 400,
                     R"({"force": true})")["error"] ==
        "unknown field 'force': this request takes only \"reason\"");
  CHECK(api.CallJson("POST", "/api/v1/ramps/orders/resume", ops, 400, "{")["error"] ==
        "the body is not JSON");

  // A reason that is not UTF-8 is refused (before: stored, and every read
  // of history after it failed with an empty 500), as from the CLI.
  const std::string before = fx.MustCli({"history", "--json"}).out;
  Json bad = api.CallJson("POST", "/api/v1/ramps/orders/resume", ops, 400, "",
                          {{"X-Reason", "caf\xe9 latin-1"}});
  CHECK(bad["error"] == "the reason is not UTF-8 text; write it in UTF-8");
  CHECK(CliError(fx, {"-m", "caf\xe9", "ramp", "resume", "orders"}) == bad["error"]);
  CHECK(fx.MustCli({"history", "--json"}).out == before);
  CHECK(api.CallJson("GET", "/api/v1/history", ops, 200).size() >= 3);
  api.CallJson("POST", "/api/v1/ramps/orders/resume", ops, 200, "",
               {{"X-Reason", "caf\xc3\xa9 in UTF-8"}});
  CHECK(api.CallJson("GET", "/api/v1/history?limit=1", ops, 200)[0]["reason"] ==
        "caf\xc3\xa9 in UTF-8");

  // A reason is a string, and a sentence rather than a document.
  CHECK(api.CallJson("POST", "/api/v1/ramps/orders/pause", ops, 400, R"({"reason": 7})")["error"] ==
        "\"reason\" must be a string");
  CHECK(api.CallJson("PATCH", "/api/v1/routes/orders", ops, 400,
                     R"({"percent": 5, "reason": ["x"]})")["error"] ==
        "\"reason\" must be a string");
  Json too_long = api.CallJson("POST", "/api/v1/ramps/orders/pause", ops, 400,
                               Json{{"reason", std::string(5000, 'r')}}.dump());
  CHECK(too_long["error"] == "the reason is 5000 bytes; keep it under 4097");
  CHECK(CliError(fx, {"-m", std::string(5000, 'r'), "ramp", "pause", "orders"}) ==
        too_long["error"]);

  // history is printed to terminals: no control characters in a reason or
  // an actor (an escape sequence could erase the row above it).
  const std::string erase = "hide \x1b[1A\x1b[2K this";
  Json esc =
      api.CallJson("POST", "/api/v1/ramps/orders/pause", ops, 400, "", {{"X-Reason", erase}});
  CHECK(esc["error"] ==
        "the reason has a control character (a newline, escape or direction override); write it "
        "on one line as plain text");
  CHECK(CliError(fx, {"-m", erase, "ramp", "pause", "orders"}) == esc["error"]);
  CHECK(CliError(fx, {"-m", "two\nlines", "ramp", "pause", "orders"}) == esc["error"]);
  CHECK(CliError(fx, {"-m", "rtl \xe2\x80\xae", "ramp", "pause", "orders"}) == esc["error"]);
  CHECK(CliError(fx, {"--actor", "a\x1b]0;x\x07", "ramp", "pause", "orders"}) ==
        "the actor must be one line of plain text of at most 256 bytes");
  CHECK(CliError(fx, {"--actor", std::string(300, 'a'), "ramp", "pause", "orders"}) ==
        "the actor must be one line of plain text of at most 256 bytes");

  // object=NAME is every kind by that name; object=KIND/NAME that object only.
  Json all = api.CallJson("GET", "/api/v1/history?object=orders", ops, 200);
  Json routes = api.CallJson("GET", "/api/v1/history?object=route/orders", ops, 200);
  Json ramps = api.CallJson("GET", "/api/v1/history?object=ramp/orders&limit=2", ops, 200);
  // (serve may have taken a ramp step meanwhile: a route.set by "ramp")
  REQUIRE_FALSE(routes.empty());
  for (const Json& row : routes) CHECK(row["object"] == "route/orders");
  CHECK(routes.back()["action"] == "route.add");
  REQUIRE(ramps.size() == 2);
  for (const Json& row : ramps) CHECK(row["object"] == "ramp/orders");
  CHECK(all.size() > routes.size() + ramps.size());
  CHECK(api.CallJson("GET", "/api/v1/history?object=backend/orders", ops, 200) == Json::array());
}

TEST_CASE_FIXTURE(
    RampingRouter,
    "e2e: the control API exports and applies rule files and resets mirror results as the "
    "CLI does") {
  // export: the CLI's rule file, byte for byte.
  HttpResponse exported = api.Call("GET", "/api/v1/export", ops);
  CHECK(exported.status == 200);
  CHECK(exported.body == fx.MustCli({"export"}).out);

  // apply: a bad file gets every problem and changes nothing.
  const std::string before = fx.MustCli({"history", "--json"}).out;
  Json bad = api.CallJson("POST", "/api/v1/apply", ops, 400,
                          R"({"backends": [{"name": "legacy", "urls": ["http://127.0.0.1:1"]}],
                              "routes": [{"name": "x", "to": "nowhere"}]})");
  CHECK(bad["error"].get<std::string>().find("the rule file is invalid") == 0);
  CHECK(bad["problems"].size() >= 2);
  CHECK(fx.MustCli({"history", "--json"}).out == before);
  // A good one: planned by ?dry_run=1 (nothing written), then applied.
  Json file = Json::parse(exported.body);
  for (Json& route : file["routes"]) {
    if (route["name"] == "orders") route["percent"] = 40;
  }
  Json plan = api.CallJson("POST", "/api/v1/apply?dry_run=1", ops, 200, file.dump());
  CHECK(plan["dry_run"] == true);
  REQUIRE(plan["plan"].size() == 1);
  CHECK(plan["plan"][0]["action"] == "change");
  CHECK(fx.MustCli({"history", "--json"}).out == before);
  Json applied =
      api.CallJson("POST", "/api/v1/apply", ops, 200, file.dump(), {{"X-Reason", "from git"}});
  CHECK(applied["plan"] == plan["plan"]);
  REQUIRE(applied["recorded"].size() == 1);
  CHECK(applied["recorded"][0]["actor"] == "ops");
  CHECK(applied["recorded"][0]["reason"] == "from git");
  CHECK(Json::parse(fx.MustCli({"route", "show", "orders", "--json"}).out)["percent"] == 40);
  // Applying it again changes nothing.
  CHECK(api.CallJson("POST", "/api/v1/apply", ops, 200, file.dump())["recorded"].empty());

  // diff reset: recorded like `diff --reset`; an unknown route as the CLI says.
  CHECK(api.CallJson("POST", "/api/v1/diff/orders/reset", ops, 200,
                     R"({"reason": "new rules"})")["reset"] == "orders");
  Json row = api.CallJson("GET", "/api/v1/history?limit=1", ops, 200)[0];
  CHECK(row["actor"] == "ops");
  CHECK(row["reason"] == "new rules");
  CHECK(api.CallJson("POST", "/api/v1/diff/nope/reset", ops, 404)["error"] ==
        CliError(fx, {"diff", "--reset", "nope"}));
}

TEST_CASE_FIXTURE(
    RampingRouter,
    "e2e: the admin listener survives a deeply nested body and does not read a huge one") {
  // 200,000 levels in a PATCH: before, merge_patch overflowed the admin
  // thread's stack and took serve down (SIGSEGV). Refused before parsing.
  const std::string deep =
      R"({"percent": )" + std::string(200000, '[') + std::string(200000, ']') + "}";
  for (const char* method : {"PATCH", "PUT"}) {
    INFO(method);
    CHECK(api.CallJson(method, "/api/v1/routes/orders", ops, 400, deep)["error"] ==
          "the body nests deeper than 32 levels");
  }
  CHECK(api.CallJson("POST", "/api/v1/ramps/orders", ops, 400, deep)["error"] ==
        "the body nests deeper than 32 levels");
  Json apply =
      api.CallJson("POST", "/api/v1/apply", ops, 400,
                   R"({"backends": )" + std::string(100, '[') + std::string(100, ']') + "}");
  CHECK(apply["problems"][0] == "nests deeper than 32 levels; a rule file's objects hold a few");
  // A body over 4 MiB is not read: 413 (before: read whole into memory).
  const std::string huge(5 * 1024 * 1024, 'x');
  CHECK(api.CallJson("PUT", "/api/v1/routes/orders", ops, 413, huge)["error"] ==
        "the body is over 4 MiB, the admin listener's limit");
  // A chunked body is refused from its head, never read (before: read whole,
  // past the 4 MiB cap: 1 GiB without a token grew serve to 2 GB).
  {
    RawClient c;
    REQUIRE(c.Connect(api.port));
    REQUIRE(
        c.Send("PUT /api/v1/routes/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Authorization: Bearer " +
               ops +
               "\r\nTransfer-Encoding: chunked\r\n\r\n"
               "5\r\nhello\r\n"));  // and no more
    HttpResponse chunked = c.ReadResponse();
    CHECK(chunked.status == 411);
    CHECK(chunked.body.find("send the body with a Content-Length") != std::string::npos);
    CHECK(c.WaitForClose(kHangGuardMs));
  }
  // Nor is the body of a write without a write token: 401 from the head.
  for (const std::string& auth :
       std::vector<std::string>{"", "Authorization: Bearer strangler_wrong\r\n"}) {
    RawClient c;
    REQUIRE(c.Connect(api.port));
    REQUIRE(c.Send("PUT /api/v1/routes/orders HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
                   "Content-Length: 4000000\r\n\r\n{"));  // 3999999 bytes never come
    HttpResponse unread = c.ReadResponse();
    CHECK(unread.status == 401);
    CHECK(c.WaitForClose(kHangGuardMs));
  }
  // Still serving, both listeners.
  CHECK(api.Call("GET", "/healthz", "").status == 200);
  CHECK(api.CallJson("GET", "/api/v1/routes/orders", ops, 200)["name"] == "orders");
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  CHECK(c.Get("/api/orders").status == 200);
}

TEST_CASE("e2e: the control API turns away a client address after repeated failed attempts") {
  RawBackend be("be");
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  const std::string tokens = fx.dir().File("tokens");
  const std::string viewer = AddToken(fx, "viewer", "read", tokens);
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-token-file", tokens}));
  Api api{AdminPort(*fx.serve())};
  REQUIRE(api.port != 0);
  CHECK(api.Call("GET", "/api/v1/routes", viewer).status == 200);
  // A request without a token guesses nothing: never counted (the dashboard
  // asks so on every load).
  for (int i = 0; i < 8; ++i) CHECK(api.Call("GET", "/api/v1/whoami", "").status == 401);
  CHECK(api.Call("GET", "/api/v1/routes", viewer).status == 200);
  for (int i = 0; i < 5; ++i) {
    CHECK(api.Call("GET", "/api/v1/routes", "strangler_guess" + std::to_string(i)).status == 401);
  }
  HttpResponse limited = api.Call("GET", "/api/v1/routes", "strangler_guess5");
  CHECK(limited.status == 429);
  auto retry = limited.Header("Retry-After");
  REQUIRE(retry.has_value());
  CHECK(std::stoi(*retry) >= 1);
  CHECK(std::stoi(*retry) <= 60);
  // Meanwhile guesses from the address are not even looked at, but a good
  // token still works: whoever guessed cannot lock the operators out.
  CHECK(api.Call("GET", "/api/v1/routes", "strangler_guess6").status == 429);
  CHECK(api.Call("GET", "/api/v1/routes", viewer).status == 200);
  CHECK(api.Call("GET", "/api/v1/routes", "strangler_guess7").status == 429);
  // The data plane and the other admin paths are not affected.
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  CHECK(c.Get("/x").status == 200);
  CHECK(api.Call("GET", "/healthz", "").status == 200);
}

TEST_CASE("e2e: token add, list and rm; a removed token stops working; no token file, no API") {
  RawBackend be("be");
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  const std::string tokens = fx.dir().File("tokens");
  const std::string ops = AddToken(fx, "ops", "write", tokens);
  const std::string gone = AddToken(fx, "gone", "read", tokens);
  CHECK(ops != gone);
  CHECK(fx.MustCli({"token", "list", "--file", tokens}).out == "ops\twrite\ngone\tread\n");
  CHECK(CliError(fx, {"token", "add", "ops", "--file", tokens}).find("already exists") !=
        std::string::npos);
  CHECK(fx.Cli({"token", "add", "x", "--role", "admin", "--file", tokens}).exit_code == 2);
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0", "--admin-token-file", tokens}));
  Api api{AdminPort(*fx.serve())};
  REQUIRE(api.port != 0);
  CHECK(api.Call("GET", "/api/v1/backends", gone).status == 200);
  fx.MustCli({"token", "rm", "gone", "--file", tokens});
  CHECK(fx.MustCli({"token", "list", "--file", tokens}).out == "ops\twrite\n");
  CHECK(api.Call("GET", "/api/v1/backends", gone).status == 401);  // the file is read again
  CHECK(api.Call("GET", "/api/v1/backends", ops).status == 200);
  fx.StopServe(SIGTERM);

  // Without --admin-token-file the API is off and says so.
  REQUIRE(fx.StartServe({"--admin", "127.0.0.1:0"}));
  Api off{AdminPort(*fx.serve())};
  Json j = off.CallJson("GET", "/api/v1/routes", ops, 404);
  CHECK(j["error"] == "the control API is off: start serve with --admin-token-file FILE");
  fx.StopServe(SIGTERM);
  // A token file without --admin, or a bad one, stops serve from starting.
  CHECK(fx.Cli({"serve", "--admin-token-file", tokens}).exit_code == 2);
  const std::string bad = fx.dir().File("bad-tokens");
  std::ofstream(bad) << "ops:admin:1234\n";
  RunResult r = fx.Cli(
      {"serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--admin-token-file", bad});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("line 1: not NAME:read|write:SHA256") != std::string::npos);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
