// Several URLs of one backend are its instances, used in turn; an instance
// that refuses the connection is skipped for the request (nothing was sent,
// so any method may go to the next one), as nginx's proxy_next_upstream does.
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: a refused connect goes to the backend's next instance, whatever the method") {
  Fixture fx;
  RawBackend live("live");
  REQUIRE(live.Start());
  const uint16_t dead = PickFreePort();  // nothing listens there: connections are refused
  fx.AddBackend("app", "http://127.0.0.1:" + std::to_string(dead), {});
  fx.MustCli({"backend", "set", "app", "http://127.0.0.1:" + std::to_string(dead), live.url()});
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  int ok = 0;
  for (int i = 0; i < 8; ++i) {
    HttpResponse r = i % 2 == 0 ? c.Get("/g/" + std::to_string(i))
                                : c.Request("POST", "/p/" + std::to_string(i), {}, "body");
    REQUIRE_MESSAGE(r.ok, r.error);
    INFO("request " << i);
    CHECK(r.status == 200);
    CHECK(r.Header("X-Backend") == std::optional<std::string>("live"));
    ok += r.status == 200;
  }
  CHECK(ok == 8);
  CHECK(live.request_count() == 8);
  for (const auto& req : live.requests()) {
    if (req.method == "POST") CHECK(req.body == "body");
  }
  // With every instance refusing, the answer is 502 naming the backend.
  live.Stop();
  HttpResponse r = c.Get("/after");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 502);
  CHECK(r.body.find("refused the connection") != std::string::npos);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
