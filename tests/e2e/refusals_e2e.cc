// Answers the router makes itself are not decisions: a CONNECT (405) or a
// body over --max-body-mb (413) reaches no backend and writes no decision
// line, so that an audit by backend counts only answers that backend gave.
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: CONNECT (405) and a body over --max-body-mb (413) reach no backend and are not logged") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("all", {"--to", "new", "--path", "/"});
  REQUIRE(fx.StartServe({"--max-body-mb", "1"}));
  {
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    REQUIRE(c.Send("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"));
    HttpResponse r = c.ReadFinal();
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 405);
    CHECK(r.body.find("\"backend\":null") != std::string::npos);
  }
  {
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    REQUIRE(c.Send("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"));
    HttpResponse r = c.ReadFinal();
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 413);
  }
  RawClient ok;
  REQUIRE(ok.Connect(fx.port()));
  HttpResponse r = ok.Get("/fine");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.Header("X-Backend") == std::optional<std::string>("new"));
  CHECK(legacy.request_count() + fresh.request_count() == 1);
  auto lines = fx.StopAndReadLog();
  REQUIRE(lines.size() == 1);  // the GET alone
  CHECK(lines[0]["path"] == "/fine");
  CHECK(lines[0]["backend"] == "new");
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
