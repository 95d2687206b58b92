// Answers the router makes itself are logged as such: a CONNECT (405) or a
// body over --max-body-mb (413) reaches no backend, and its decision line says
// reason "refused" with no route and no backend, so that an audit by backend
// counts only answers that backend gave (PRODUCT.md, decision log).
#include <map>
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: CONNECT (405) and a body over --max-body-mb (413) reach no backend and are logged as refused") {
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
  // Lines of different connections may be written in any order.
  std::map<int, Json> by_status;
  for (const Json& line : fx.StopAndReadLog()) by_status[line["status"].get<int>()] = line;
  REQUIRE(by_status.size() == 3);
  // (A missing line must fail here, not abort the run on a const lookup.)
  REQUIRE(by_status.count(405) == 1);
  REQUIRE(by_status.count(413) == 1);
  CHECK(by_status[405]["method"] == "CONNECT");
  CHECK(by_status[413]["path"] == "/big");
  for (int status : {405, 413}) {
    const Json& line = by_status[status];
    INFO("line: " << line.dump());
    CHECK(line["reason"] == "refused");
    CHECK(line["backend"].is_null());
    CHECK(line["route"].is_null());
  }
  CHECK(by_status[200]["path"] == "/fine");
  CHECK(by_status[200]["backend"] == "new");
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
