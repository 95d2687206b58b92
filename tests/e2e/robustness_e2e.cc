// Bad requests and backend URL forms: the router answers 400 to what it
// cannot parse (never forwarding it), closes the connection, and goes on.
#include <csignal>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: malformed and ambiguous requests get 400, are not forwarded, and serving goes on") {
  Fixture fx;
  RawBackend be("be");
  REQUIRE(be.Start());
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());

  struct Case {
    std::string name;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"not HTTP", "THIS IS NOT HTTP\r\n\r\n"},
      {"Content-Length and Transfer-Encoding (smuggling)",
       "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
       "0\r\n\r\n"},
      {"two different Content-Lengths",
       "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"},
      {"space before the colon (RFC 9112 5.1: MUST reject)", "GET /x HTTP/1.1\r\nHost : h\r\n\r\n"},
      {"HTTP/1.1 without Host (RFC 9112 3.2: MUST reject)", "GET /x HTTP/1.1\r\nX-A: 1\r\n\r\n"},
  };
  for (const auto& c : cases) {
    INFO("case: " << c.name << ": " << Printable(c.bytes));
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    REQUIRE(client.Send(c.bytes));
    HttpResponse r = client.ReadFinal(false, kHangGuardMs);
    CHECK_MESSAGE(r.ok, r.error);
    CHECK(r.status == 400);
    if (client.connected())
      CHECK_MESSAGE(client.WaitForClose(kCloseWaitMs), "connection left open");
  }
  CHECK(be.request_count() == 0);
  for (const auto& req : be.requests()) MESSAGE("forwarded anyway: " << Printable(req.raw));
  RawClient good;
  REQUIRE(good.Connect(fx.port()));
  HttpResponse r = good.Get("/after");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  CHECK(fx.serve()->Running());
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
  REQUIRE(based.WaitForRequests(1, kHangGuardMs));
  CHECK(based.requests().at(0).request_line == "GET /v2/api/x%2Fy?q=a%20b HTTP/1.1");

  for (int i = 0; i < 20; ++i) {
    HttpResponse p = c.Get("/pair/" + std::to_string(i));
    REQUIRE_MESSAGE(p.ok, p.error);
    CHECK(p.status == 200);
  }
  MESSAGE("instances of `pair`: one got " << one.request_count() << ", two got "
                                          << two.request_count());
  CHECK(one.request_count() + two.request_count() == 20);
  CHECK(one.request_count() >= 5);
  CHECK(two.request_count() >= 5);
}

TEST_CASE("e2e: SIGINT also exits 0 with the log flushed") {
  Fixture fx;
  RawBackend be("be");
  REQUIRE(be.Start());
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (int i = 0; i < 4; ++i) {
    HttpResponse r = c.Get("/int/" + std::to_string(i));
    REQUIRE_MESSAGE(r.ok, r.error);
  }
  CHECK(fx.StopServe(SIGINT, 10000) == 0);
  CHECK(fx.LogLines().size() == 4);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
