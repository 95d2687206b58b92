// What the fourth raw-byte attack round (beside nginx and HAProxy, before the
// I/O layer changes for TLS) found, each case as a test that failed before
// its fix: dot segments in a target climbed out of a backend's base path;
// clients kept alive and idle at --max-connections turned every new client
// away until they timed out (60 s); an answer chunked twice was relayed
// naming chunked twice over a body chunked once.
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

// The router routes on the path with its dot segments resolved, but
// forwarded base path + raw target: "/v2" + "/../admin" reached /admin at a
// backend that resolves dot segments (nginx, Tomcat, Go), outside /v2. With a
// base path the backend now gets the path as routed, under its base path.
TEST_CASE("e2e: dot segments in a target never climb out of a backend's base path") {
  RawBackend legacy("legacy"), fresh("new"), mirror("mirror");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  REQUIRE(mirror.Start());
  Fixture fx;
  fx.AddBackend("legacy", legacy.url() + "/shop");
  fx.AddBackend("new", fresh.url() + "/v2");
  fx.AddBackend("mirror", mirror.url() + "/m");
  fx.AddRoute("orders", {"--path", "/api/orders", "--to", "new"});
  fx.AddRoute("beta", {"--to", "new", "--header", "X-Beta", "--mirror", "mirror"});
  REQUIRE(fx.StartServe());
  struct Case {
    std::string target;
    bool beta;
    RawBackend* be;
    std::string want;  // the request target the backend gets
  };
  const Case cases[] = {
      {"/api/orders/1", false, &fresh, "/v2/api/orders/1"},  // no dot segment: as sent
      {"/api/orders/1?q=%2e%2e", false, &fresh, "/v2/api/orders/1?q=%2e%2e"},
      {"/../api/orders/1", false, &fresh, "/v2/api/orders/1"},
      {"/api/orders/../../../api/orders/x?a=1", false, &fresh, "/v2/api/orders/x?a=1"},
      {"/../../admin", true, &fresh, "/v2/admin"},
      {"/x/../../../etc/passwd", true, &fresh, "/v2/etc/passwd"},
      {"/%2e%2e/%2E%2e/admin", true, &fresh, "/v2/admin"},
      {"/./cart/.", false, &legacy, "/shop/cart/"},
      {"/../admin", false, &legacy, "/shop/admin"},
      {"/a/%2e%2e/%2e%2e/manager/html", false, &legacy, "/shop/manager/html"},
  };
  for (const Case& c : cases) {
    INFO("target: " << c.target);
    legacy.ClearRequests();
    fresh.ClearRequests();
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    Headers h;
    if (c.beta) h.push_back({"X-Beta", "1"});
    HttpResponse r = client.Get(c.target, h);
    REQUIRE(r.ok);
    CHECK(r.status == 200);
    REQUIRE(c.be->request_count() == 1);
    CHECK(c.be->requests()[0].target == c.want);
  }
  // OPTIONS * asks the server itself: no base path goes in front of it
  // (found by the re-attack: "OPTIONS /v2*").
  {
    fresh.ClearRequests();
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    HttpResponse r = client.Request("OPTIONS", "*", {{"X-Beta", "1"}});
    REQUIRE(r.ok);
    REQUIRE(fresh.request_count() == 1);
    CHECK(fresh.requests()[0].target == "*");
  }
  // The mirror's copy of a beta request stays under its base path too.
  REQUIRE(mirror.WaitForRequests(4, kHangGuardMs));  // the beta requests
  for (const RecordedRequest& r : mirror.requests()) {
    INFO("mirror got " << r.target);
    if (r.target == "*") continue;  // the OPTIONS *
    CHECK(r.target.rfind("/m/", 0) == 0);
    CHECK(r.target.find("..") == std::string::npos);
    CHECK(r.target.find("%2") == std::string::npos);
  }
}

// nginx closes keep-alive connections when it runs out of them, HAProxy
// after a few seconds; the router turned every new client away with 503 for
// as long as the idle ones stayed (its 60 s keep-alive timeout).
TEST_CASE("e2e: at --max-connections, clients idle between requests make room for new ones") {
  RawBackend be("be");
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe({"--max-connections", "4"}));
  std::vector<std::unique_ptr<RawClient>> idle;
  for (int i = 0; i < 4; ++i) {
    idle.push_back(std::make_unique<RawClient>());
    REQUIRE(idle.back()->Connect(fx.port()));
    REQUIRE(idle.back()->Get("/kept-alive").status == 200);
  }
  // A new client gets in once an idle one has closed (the first try may get
  // 503); well before the idle ones' own timeout (kCloseWaitMs < 60 s).
  const int64_t t0 = NowMs();
  int refused = 0;
  bool served = PollUntil(
      [&] {
        RawClient fresh;
        if (!fresh.Connect(fx.port())) return false;
        HttpResponse r = fresh.Get("/new-client");
        if (r.status == 503) ++refused;
        return r.ok && r.status == 200;
      },
      kCloseWaitMs, 50);
  MESSAGE("a new client was served after " << NowMs() - t0 << " ms, " << refused
                                           << " tries turned away first");
  CHECK(served);
  int closed = 0;
  // (Already closed by the time the new client was served: its FIN is there.)
  for (auto& c : idle) closed += c->WaitForClose(100) ? 1 : 0;
  CHECK(closed >= 1);
}

// A mirror without a base path gets the target as the client sent it, as
// the primary does: the parity check compares answers to the same request
// (found by the re-attack: it got the routed path while the primary got the
// raw one).
TEST_CASE("e2e: with dot segments, a mirror without a base path gets the raw target") {
  RawBackend legacy("legacy"), mirror("mirror");
  REQUIRE(legacy.Start());
  REQUIRE(mirror.Start());
  Fixture fx;
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("mirror", mirror.url());
  fx.AddRoute("m", {"--to", "legacy", "--header", "X-M", "--mirror", "mirror"});
  REQUIRE(fx.StartServe());
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  REQUIRE(client.Get("/a/../b?x=1", {{"X-M", "1"}}).status == 200);
  REQUIRE(mirror.WaitForRequests(1, kHangGuardMs));
  CHECK(legacy.requests()[0].target == "/a/../b?x=1");
  CHECK(mirror.requests()[0].target == "/a/../b?x=1");
}

// "Transfer-Encoding: chunked, chunked" (or two such fields) is no valid
// answer (RFC 9112 6.1): the router undid one chunked and named both, so a
// client decoded the body twice (Python's http.client returned the chunk
// framing as body). HAProxy answers 502; so does the router now.
TEST_CASE("e2e: an answer chunked twice is a 502, never relayed as chunked twice") {
  struct Case {
    std::string te;     // the answer's Transfer-Encoding field(s)
    std::string body;   // its chunked body
    int status;         // what the client gets
    std::string named;  // the client's Transfer-Encoding ("" for a 502)
  };
  const std::string hello = "5\r\nhello\r\n0\r\n\r\n";
  const Case cases[] = {
      {"Transfer-Encoding: chunked, chunked\r\n", hello, 502, ""},
      {"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", hello, 502, ""},
      {"Transfer-Encoding: chunked,Chunked\r\n", hello, 502, ""},
      // (found by the re-attack: an empty element after chunked)
      {"Transfer-Encoding: chunked,\r\n", hello, 502, ""},
      {"Transfer-Encoding: gzip, chunked, \r\n", hello, 502, ""},
      // One chunked after another coding stays named (gzip is still on the body).
      {"Transfer-Encoding: gzip, chunked\r\n", "3\r\nabc\r\n0\r\n\r\n", 200, "gzip, chunked"},
  };
  RawBackend be("be");
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  for (const Case& k : cases) {
    INFO("answer has " << Printable(k.te));
    be.set_response("HTTP/1.1 200 OK\r\n" + k.te + "\r\n" + k.body);
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    HttpResponse r = c.Get("/x");
    REQUIRE(r.ok);
    CHECK(r.status == k.status);
    if (k.named.empty()) {
      CHECK(r.HeaderCount("Transfer-Encoding") <= 1);
    } else {
      CHECK(r.Header("Transfer-Encoding") == k.named);
    }
  }
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
