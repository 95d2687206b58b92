// --mirror: copies of matched requests go to a mirror backend after the
// client has its answer; the two answers are compared and `strangler diff`
// reports parity and field-level mismatches. Real backends, a real serve, a
// real store; results reach the store on serve's tick (about once a second).
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

std::string JsonResponse(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// `strangler diff --json` parsed.
Json DiffJson(Fixture& fx, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"diff", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  RunResult r = fx.MustCli(args);
  Json j = Json::parse(r.out, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), r.out);
  return j;
}

Json RouteStats(const Json& diff, const std::string& route) {
  for (const Json& r : diff["routes"]) {
    if (r.value("route", "") == route) return r;
  }
  return Json::object();
}

// Polls `diff --json` until the route's compared + failed + dropped reaches n
// (the cap only ends a hang: serve writes results about once a second).
Json WaitForResults(Fixture& fx, const std::string& route, int64_t n,
                    int timeout_ms = kHangGuardMs) {
  int64_t deadline = NowMs() + timeout_ms;
  Json diff;
  while (true) {
    diff = DiffJson(fx);
    Json s = RouteStats(diff, route);
    int64_t seen = s.value("compared", 0) + s.value("failed", 0) + s.value("dropped", 0);
    if (seen >= n || NowMs() > deadline) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return diff;
}

std::vector<Json> Mismatches(const Json& diff, const std::string& route) {
  std::vector<Json> out;
  for (const Json& m : diff["mismatches"]) {
    if (m.value("route", "") == route) out.push_back(m);
  }
  return out;
}

TEST_CASE("e2e: mirror compares JSON as values, reports field diffs, honours ignored fields") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  // Each path answers a different pair of bodies.
  legacy.set_responder([](const RecordedRequest& req) {
    if (req.target == "/same") return JsonResponse(R"({"id":7,"tags":["a","b"],"price":10.5})");
    if (req.target == "/differs") return JsonResponse(R"({"id":7,"price":10,"name":"lamp"})");
    return JsonResponse(R"({"id":7,"ts":"2026-01-01","items":[{"sku":"x","at":1},{"sku":"y","at":2}]})");
  });
  fresh.set_responder([](const RecordedRequest& req) {
    if (req.target == "/same")  // other key order, other number spelling
      return JsonResponse(R"({"price":10.50,"tags":["a","b"],"id":7})");
    if (req.target == "/differs") return JsonResponse(R"({"id":7,"price":12,"name":"lamp"})");
    return JsonResponse(R"({"items":[{"at":9,"sku":"x"},{"sku":"y","at":8}],"ts":"2026-11-28","id":7})");
  });
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("same", {"--to", "legacy", "--path", "=/same", "--mirror", "new"});
  fx.AddRoute("differs", {"--to", "legacy", "--path", "=/differs", "--mirror", "new"});
  fx.AddRoute("ignored", {"--to", "legacy", "--path", "=/ignored", "--mirror", "new",
                          "--ignore-field", "ts", "--ignore-field", "items[].at"});
  REQUIRE(fx.StartServe());

  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  std::multiset<std::string> client_ids;  // the X-Request-Id each client request carried
  for (int i = 0; i < 3; ++i) {
    for (const char* path : {"/same", "/differs", "/ignored"}) {
      const std::string id = "mirror-" + std::to_string(i) + path;
      client_ids.insert(id);
      HttpResponse r = client.Get(path, {{"Host", "shop.example"}, {"X-Request-Id", id}});
      REQUIRE_MESSAGE(r.ok, r.error);
      CHECK(r.status == 200);
      // The client always gets the --to backend's answer.
      CHECK(r.body.find("\"id\":7") != std::string::npos);
      CHECK(r.body.find("10.50") == std::string::npos);
    }
  }
  REQUIRE(fresh.WaitForRequests(9, kHangGuardMs));
  // Each copy carries the X-Request-Id of the client request it copies
  // (README, Mirror and compare): the copies' ids are the clients' ids.
  std::multiset<std::string> copy_ids;
  for (const RecordedRequest& m : fresh.requests()) {
    CHECK(m.Header("X-Strangler-Mirror").value_or("") == "1");
    CHECK(m.Header("Host").value_or("") == "shop.example");
    CHECK(m.HeaderCount("X-Request-Id") == 1);
    const std::string id = m.Header("X-Request-Id").value_or("");
    copy_ids.insert(id);
    const size_t slash = id.find('/');
    CHECK_MESSAGE((slash != std::string::npos && id.substr(slash) == m.target),
                  "copy of " << m.target << " carries " << id);
  }
  CHECK(copy_ids == client_ids);
  for (const char* route : {"same", "differs", "ignored"}) WaitForResults(fx, route, 3);
  Json diff = DiffJson(fx);
  MESSAGE(diff.dump());

  Json same = RouteStats(diff, "same");
  CHECK(same.value("compared", 0) == 3);
  CHECK(same.value("equal", 0) == 3);
  CHECK(Mismatches(diff, "same").empty());

  Json ignored = RouteStats(diff, "ignored");
  CHECK(ignored.value("compared", 0) == 3);
  CHECK(ignored.value("equal", 0) == 3);

  Json differs = RouteStats(diff, "differs");
  CHECK(differs.value("compared", 0) == 3);
  CHECK(differs.value("equal", 0) == 0);
  std::vector<Json> mism = Mismatches(diff, "differs");
  REQUIRE(mism.size() == 3);
  const Json& m = mism.front();
  CHECK(m.value("method", "") == "GET");
  CHECK(m.value("target", "") == "/differs");
  CHECK(m.value("primary_backend", "") == "legacy");
  CHECK(m.value("mirror_backend", "") == "new");
  const Json& result = m["result"];
  CHECK(result.value("equal", true) == false);
  CHECK(result.value("kind", "") == "json");
  REQUIRE(result["diffs"].size() == 1);
  CHECK(result["diffs"][0].value("where", "") == "$.price");
  CHECK(result["diffs"][0]["primary"] == 10);
  CHECK(result["diffs"][0]["mirror"] == 12);

  // The human form names the route, the parity and the field.
  RunResult text = fx.MustCli({"diff", "differs"});
  MESSAGE(text.out);
  CHECK(text.out.find("differs") != std::string::npos);
  CHECK(text.out.find("$.price") != std::string::npos);
  CHECK(text.out.find("10") != std::string::npos);
  CHECK(text.out.find("12") != std::string::npos);
}

TEST_CASE("e2e: only reads are mirrored unless --mirror-writes; a copy of a write carries its body") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new"), fresh2("new2");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  REQUIRE(fresh2.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddBackend("new2", fresh2.url());
  fx.AddRoute("reads", {"--to", "legacy", "--path", "/reads", "--mirror", "new"});
  fx.AddRoute("writes", {"--to", "legacy", "--path", "/writes", "--mirror", "new2",
                         "--mirror-writes"});
  REQUIRE(fx.StartServe());

  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  HttpResponse r = client.Request("POST", "/reads/1", {{"Host", "h"}}, "{\"n\":1}");
  REQUIRE(r.ok);
  r = client.Request("PUT", "/reads/2", {{"Host", "h"}}, "x");
  REQUIRE(r.ok);
  r = client.Get("/reads/3", {{"Host", "h"}});
  REQUIRE(r.ok);
  // Chunked on the way in: the copy goes with a Content-Length of its own.
  REQUIRE(client.Send("POST /writes/9?q=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
                      "Content-Type: application/json\r\n\r\n5\r\n{\"a\":\r\n2\r\n1}\r\n0\r\n\r\n"));
  r = client.ReadFinal();
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);

  // A body larger than the router's read buffer: the request line is long
  // gone from it when the copy is handed over.
  const std::string big(200 * 1024, 'b');
  r = client.Request("POST", "/writes/big?x=1", {{"Host", "h"}}, big);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);

  REQUIRE(fresh.WaitForRequests(1, kHangGuardMs));
  REQUIRE(fresh2.WaitForRequests(2, kHangGuardMs));
  // Every copy serve made is counted by the time it exits (compared, failed,
  // or dropped when it was still queued or in flight): one for the reads
  // route means the POST and the PUT were not copied, however late a copy
  // would have come.
  CHECK(fx.StopServe(SIGTERM) == 0);
  Json diff = DiffJson(fx);
  for (const auto& [route, copies] : {std::pair<const char*, int>{"reads", 1}, {"writes", 2}}) {
    Json st = RouteStats(diff, route);
    INFO(route << ": " << st.dump());
    CHECK(st.value("compared", 0) + st.value("failed", 0) + st.value("dropped", 0) == copies);
  }
  auto reads = fresh.requests();
  REQUIRE(reads.size() == 1);  // the POST and the PUT were not copied
  CHECK(reads[0].method == "GET");
  CHECK(reads[0].target == "/reads/3");
  auto writes = fresh2.requests();
  REQUIRE(writes.size() == 2);
  std::sort(writes.begin(), writes.end(),
            [](const auto& a, const auto& b) { return a.target < b.target; });
  CHECK(writes[1].target == "/writes/big?x=1");
  CHECK(writes[1].body == big);
  CHECK(writes[0].method == "POST");
  CHECK(writes[0].target == "/writes/9?q=1");
  CHECK(writes[0].body == "{\"a\":1}");
  CHECK(writes[0].Header("Content-Length").value_or("") == "7");
  CHECK_FALSE(writes[0].chunked);
  CHECK(writes[0].Header("X-Strangler-Mirror").value_or("") == "1");
  CHECK(writes[0].Header("Content-Type").value_or("") == "application/json");
  // The legacy backend got every request, the write as the client sent it.
  CHECK(legacy.request_count() == 5);
}

TEST_CASE("e2e: a slow mirror does not slow the client; a full queue drops copies and counts them") {
  Fixture fx;
  RawBackend legacy("legacy"), slow("slow");
  REQUIRE(legacy.Start());
  REQUIRE(slow.Start());
  // The mirror holds every answer until the test ends (and its timeout is
  // longer than the test): no copy finishes while the client sends.
  slow.Hold();
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("slow", slow.url(), {"--timeout-ms", "600000"});
  fx.AddRoute("plain", {"--to", "legacy", "--path", "/plain"});
  fx.AddRoute("mirrored", {"--to", "legacy", "--path", "/mirrored", "--mirror", "slow"});
  // A drain long enough that waiting for the copies would show.
  REQUIRE(fx.StartServe({"--drain-s", "600"}));

  // Latency of N sequential requests on one keep-alive connection, both
  // routes interleaved so machine noise hits both alike: printed, not judged.
  constexpr int kRequests = 200;
  std::vector<double> plain_ms, mirrored_ms;
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  for (int i = 0; i < kRequests; ++i) {
    for (bool mirror : {false, true}) {
      auto t0 = std::chrono::steady_clock::now();
      HttpResponse r = client.Get(mirror ? "/mirrored/x" : "/plain/x", {{"Host", "h"}});
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                      .count();
      REQUIRE_MESSAGE(r.ok, r.error);
      REQUIRE(r.status == 200);
      (mirror ? mirrored_ms : plain_ms).push_back(ms);
    }
  }
  auto p = [](std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
  };
  MESSAGE("client latency ms over " << kRequests << " requests each: without mirror p50 "
          << p(plain_ms, 0.5) << " p99 " << p(plain_ms, 0.99) << " max " << p(plain_ms, 1.0)
          << "; with a mirror that never answers p50 " << p(mirrored_ms, 0.5) << " p99 "
          << p(mirrored_ms, 0.99) << " max " << p(mirrored_ms, 1.0));
  // Every client got its answer while no copy had one: the client never
  // waits for a copy. The copies did go out.
  CHECK(slow.WaitForRequests(1, kHangGuardMs));

  // 64 copies in flight (kMirrorInFlight), held, and a bounded queue (256):
  // of 500 copies at least 500 - 64 - 256 = 180 find no room and are dropped.
  for (int i = 0; i < 300; ++i) {
    HttpResponse r = client.Get("/mirrored/y", {{"Host", "h"}});
    REQUIRE(r.ok);
  }
  constexpr int64_t kAtLeastDropped = 2 * kRequests + 100 - 64 - 256;
  // serve writes the counts about once a second: poll until they are in.
  Json s;
  CHECK(PollUntil(
      [&] {
        s = RouteStats(DiffJson(fx), "mirrored");
        return s.value("dropped", int64_t{0}) >= kAtLeastDropped;
      },
      kHangGuardMs, 100));
  MESSAGE(s.dump());
  CHECK(s.value("dropped", int64_t{0}) >= kAtLeastDropped);
  CHECK(s.value("compared", 0) + s.value("failed", 0) == 0);  // none came back: the hold held
  // serve stops without waiting for the copies queued and in flight: with
  // them held and a 600 s drain, waiting would outlast the hang guard.
  int64_t t0 = NowMs();
  CHECK(fx.StopServe(SIGTERM, kHangGuardMs) == 0);
  MESSAGE("serve exited " << NowMs() - t0 << " ms after SIGTERM");
}

TEST_CASE("e2e: a mirror that fails is counted as failed, with why") {
  Fixture fx;
  RawBackend legacy("legacy");
  REQUIRE(legacy.Start());
  fx.AddBackend("legacy", legacy.url());
  ClosedPort dead;
  fx.AddBackend("dead", dead.url());
  fx.AddRoute("r", {"--to", "legacy", "--mirror", "dead"});
  REQUIRE(fx.StartServe());
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  for (int i = 0; i < 2; ++i) {
    HttpResponse r = client.Get("/a", {{"Host", "h"}});
    REQUIRE(r.ok);
    CHECK(r.status == 200);
  }
  Json diff = WaitForResults(fx, "r", 2);
  Json s = RouteStats(diff, "r");
  CHECK(s.value("failed", 0) == 2);
  CHECK(s.value("compared", 0) == 0);
  auto mism = Mismatches(diff, "r");
  REQUIRE(!mism.empty());
  CHECK(mism[0]["result"].value("error", "").find("refused") != std::string::npos);
}

TEST_CASE("e2e: a request its backend does not answer is not copied; counted as dropped") {
  Fixture fx;
  RawBackend fresh("new");
  REQUIRE(fresh.Start());
  ClosedPort dead;
  fx.AddBackend("dead", dead.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("r", {"--to", "dead", "--mirror", "new"});
  REQUIRE(fx.StartServe());
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  HttpResponse r = client.Get("/a", {{"Host", "h"}});
  REQUIRE(r.ok);
  CHECK(r.status == 502);
  if (!client.connected()) REQUIRE(client.Connect(fx.port()));
  r = client.Get("/b", {{"Host", "h"}});  // the next request settles the first one's copy
  REQUIRE(r.ok);
  CHECK(fx.StopServe(SIGTERM) == 0);  // and the end of the session the second one's
  Json s = RouteStats(DiffJson(fx), "r");
  INFO(s.dump());
  CHECK(s.value("dropped", 0) == 2);
  CHECK(s.value("compared", 0) == 0);
  CHECK(s.value("failed", 0) == 0);
  CHECK(fresh.request_count() == 0);
}

TEST_CASE("e2e: a mirror's own misbehaviour is counted as failed with why; an answer to EOF compares") {
  // One primary for every route; each route copies to a mirror that fails in
  // its own way. The client always gets the primary's answer.
  const std::string same = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsame";
  Fixture fx;
  RawBackend primary("primary"), junk("junk"), slow("slow"), cut("cut"), eof("eof"), huge("huge"),
      a("a"), b("b");
  for (RawBackend* be : {&primary, &junk, &slow, &cut, &eof, &huge, &a, &b}) REQUIRE(be->Start());
  primary.set_response(same);
  junk.set_response("this is not HTTP\r\n\r\n");
  junk.set_close_after_response(true);
  slow.Hold();  // never answers while the test runs: only the mirror's timeout ends the wait
  cut.set_response("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nsam");
  cut.set_close_after_response(true);
  // No length: the answer ends where the connection does, and equals the primary's.
  eof.set_response("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nsame");
  eof.set_close_after_response(true);
  // A head over the mirror's 256 KiB limit.
  huge.set_response("HTTP/1.1 200 OK\r\nX-Big: " + std::string(300 * 1024, 'h') +
                    "\r\nContent-Length: 4\r\n\r\nsame");
  a.set_response(same);
  b.set_response(same);
  fx.AddBackend("primary", primary.url());
  fx.AddBackend("junk", junk.url());
  fx.AddBackend("slow", slow.url(), {"--timeout-ms", "300"});
  fx.AddBackend("cut", cut.url());
  fx.AddBackend("eof", eof.url());
  fx.AddBackend("huge", huge.url());
  fx.AddBackend("pair", a.url(), {b.url()});  // two instances, used in turn
  for (const char* m : {"junk", "slow", "cut", "eof", "huge", "pair"}) {
    fx.AddRoute(m, {"--to", "primary", "--path", std::string("/") + m, "--mirror", m});
  }
  REQUIRE(fx.StartServe());
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  for (const char* path : {"/junk", "/slow", "/cut", "/eof", "/huge", "/pair", "/pair"}) {
    INFO(path);
    HttpResponse r = client.Get(path);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "same");
  }
  for (const char* route : {"junk", "slow", "cut", "eof", "huge"}) WaitForResults(fx, route, 1);
  Json diff = WaitForResults(fx, "pair", 2);
  MESSAGE(diff.dump());
  struct Want {
    std::string route, error;  // error "": compared and equal
  };
  for (const Want& w : std::vector<Want>{{"junk", "sent a malformed answer"},
                                         {"slow", "did not answer within 300 ms"},
                                         {"cut", "cut its answer short"},
                                         {"huge", "sent a response head over 262144 bytes"},
                                         {"eof", ""}}) {
    INFO("route " << w.route);
    Json s = RouteStats(diff, w.route);
    if (w.error.empty()) {
      CHECK(s.value("compared", 0) == 1);
      CHECK(s.value("equal", 0) == 1);
      CHECK(s.value("failed", 0) == 0);
      CHECK(Mismatches(diff, w.route).empty());
      continue;
    }
    CHECK(s.value("failed", 0) == 1);
    CHECK(s.value("compared", 0) == 0);
    auto mism = Mismatches(diff, w.route);
    REQUIRE(mism.size() == 1);
    CHECK_MESSAGE(mism[0]["result"].value("error", "").find(w.error) != std::string::npos,
                  mism[0].dump());
  }
  Json pair = RouteStats(diff, "pair");
  CHECK(pair.value("compared", 0) == 2);
  CHECK(pair.value("equal", 0) == 2);
  // Each instance of the mirror backend got one of the two copies.
  CHECK(a.request_count() == 1);
  CHECK(b.request_count() == 1);
  CHECK(primary.request_count() == 7);
  slow.Release();
}

TEST_CASE("e2e: mirror results that meet a locked store are kept and recorded once it is free") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  const std::string same = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nsame";
  legacy.set_response(same);
  fresh.set_response(same);
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("r", {"--to", "legacy", "--mirror", "new"});
  REQUIRE(fx.StartServe());
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  auto get = [&](int n) {
    for (int i = 0; i < n; ++i) {
      HttpResponse r = client.Get("/a");
      REQUIRE_MESSAGE(r.ok, r.error);
      CHECK(r.body == "same");
    }
  };
  get(2);
  CHECK(RouteStats(WaitForResults(fx, "r", 2), "r").value("compared", 0) == 2);

  // Another writer holds the store: serve cannot record what it compares.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(fx.db().c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  get(3);
  REQUIRE(fresh.WaitForRequests(5, kHangGuardMs));
  const std::string kept = "cannot record mirror results (kept for the next try)";
  CHECK(PollUntil([&] { return fx.serve()->Stderr().find(kept) != std::string::npos; }));
  get(2);  // compared while the earlier ones wait for the store
  REQUIRE(fresh.WaitForRequests(7, kHangGuardMs));
  REQUIRE(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);

  // Nothing was lost or counted twice.
  Json s = RouteStats(WaitForResults(fx, "r", 7), "r");
  INFO(s.dump());
  CHECK(s.value("compared", 0) == 7);
  CHECK(s.value("equal", 0) == 7);
  CHECK(s.value("failed", 0) == 0);
  CHECK(fx.StopServe(SIGTERM) == 0);
  s = RouteStats(DiffJson(fx), "r");
  CHECK(s.value("compared", 0) == 7);
  std::string err = fx.serve()->Stderr();
  CHECK(err.find(kept) != std::string::npos);
  CHECK(err.find("locked") != std::string::npos);
}

TEST_CASE("e2e: a bodiless copy: DELETE and OPTIONS go without a length, an empty POST with 0") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("w", {"--to", "legacy", "--mirror", "new", "--mirror-writes"});
  REQUIRE(fx.StartServe());
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  for (const std::string method : {"DELETE", "OPTIONS", "POST"}) {
    HttpResponse r = client.Request(method, "/w/" + method, {{"Content-Length", "0"}});
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
  }
  REQUIRE(fresh.WaitForRequests(3, kHangGuardMs));
  for (const RecordedRequest& copy : fresh.requests()) {
    INFO(copy.head);
    CHECK(copy.target == "/w/" + copy.method);
    CHECK(copy.body.empty());
    if (copy.method == "POST") {
      CHECK(copy.Header("Content-Length") == std::optional<std::string>("0"));
    } else {
      CHECK(copy.HeaderCount("Content-Length") == 0);
    }
  }
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
