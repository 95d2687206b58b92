// Bad requests and backend URL forms: the router answers 400 to what it
// cannot parse (forwarding it to neither backend), closes the connection,
// and goes on; each forwarded request is checked to reach the one backend
// meant for it.
#include <csignal>
#include <map>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: malformed and ambiguous requests get 400, are not forwarded, and serving goes on") {
  TwoBackends t;
  // Half of them name the route "new": neither backend may get anything.
  ExpectRefused(
      t, {
             {"not HTTP", "THIS IS NOT HTTP\r\n\r\n", 400},
             {"Content-Length and Transfer-Encoding (smuggling)",
              "POST /new/x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n"
              "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
              400},
             {"two different Content-Lengths",
              "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
              400},
             {"space before the colon (RFC 9112 5.1: MUST reject)",
              "GET /new/x HTTP/1.1\r\nHost : h\r\n\r\n", 400},
             {"HTTP/1.1 without Host (RFC 9112 3.2: MUST reject)",
              "GET /x HTTP/1.1\r\nX-A: 1\r\n\r\n", 400},
         });
  RawClient good;
  REQUIRE(good.Connect(t.fx.port()));
  HttpResponse r = good.Get("/after");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  t.ExpectOnly(r, t.legacy);
  CHECK(t.fx.serve()->Running());
}

TEST_CASE("e2e: backend base path is prepended; several URLs are used in turn") {
  Fixture fx;
  RawBackend mono("mono"), based("based"), one("one"), two("two");
  REQUIRE(mono.Start());
  REQUIRE(based.Start());
  REQUIRE(one.Start());
  REQUIRE(two.Start());
  fx.AddBackend("mono", mono.url());
  fx.AddBackend("based", based.url() + "/v2");
  fx.MustCli({"backend", "add", "pair", one.url(), two.url()});
  fx.AddRoute("based", {"--to", "based", "--path", "/api"});
  fx.AddRoute("pair", {"--to", "pair", "--path", "/pair"});
  REQUIRE(fx.StartServe());

  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  HttpResponse r = c.Get("/api/x%2Fy?q=a%20b");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  ExpectOnly(r, based, 1, mono);
  REQUIRE(based.WaitForRequests(1, kHangGuardMs));
  CHECK(based.requests().at(0).request_line == "GET /v2/api/x%2Fy?q=a%20b HTTP/1.1");

  for (int i = 0; i < 20; ++i) {
    HttpResponse p = c.Get("/pair/" + std::to_string(i));
    REQUIRE_MESSAGE(p.ok, p.error);
    CHECK(p.status == 200);
    const std::string by = p.Header("X-Backend").value_or("");
    CHECK_MESSAGE((by == "one" || by == "two"), "answered by " << by);
  }
  CHECK(mono.request_count() == 0);
  CHECK(based.request_count() == 1);
  MESSAGE("instances of `pair`: one got " << one.request_count() << ", two got "
                                          << two.request_count());
  CHECK(one.request_count() + two.request_count() == 20);
  CHECK(one.request_count() >= 5);
  CHECK(two.request_count() >= 5);
}

TEST_CASE("e2e: SIGINT also exits 0 with the log flushed") {
  TwoBackends t;
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  std::map<std::string, RawBackend*> sent;  // request id -> the backend that answered
  for (int i = 0; i < 4; ++i) {
    RawBackend& be = i % 2 ? t.fresh : t.legacy;
    const std::string id = "int-" + std::to_string(i);
    HttpResponse r = c.Get((i % 2 ? "/new/int/" : "/int/") + std::to_string(i), {{"X-Request-Id", id}});
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.Header("X-Backend") == std::optional<std::string>(be.name()));
    sent[id] = &be;
  }
  CHECK(t.legacy.request_count() == 2);
  CHECK(t.fresh.request_count() == 2);
  CHECK(t.fx.StopServe(SIGINT, 10000) == 0);
  auto logged = ByRequestId(t.fx.LogLines());
  CHECK(logged.size() == 4);
  for (const auto& [id, be] : sent) {
    INFO("request " << id);
    REQUIRE(logged.count(id) == 1);
    t.ExpectLogged(logged[id], *be);
  }
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
