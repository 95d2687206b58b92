// A backend whose address cannot be connected to at all: TCP to a multicast
// address is refused by the local kernel at once (ENETUNREACH), no packet
// leaves the machine. Its requests get 502 and its mirror copies fail; the
// router keeps serving.
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: a backend that cannot be reached: 502 naming it, mirror copies failed, serving goes on") {
  Fixture fx;
  RawBackend legacy("legacy");
  REQUIRE(legacy.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("void", "http://224.0.0.1:80");
  fx.AddRoute("void", {"--to", "void", "--path", "/void"});
  fx.AddRoute("copied", {"--to", "legacy", "--path", "/copied", "--mirror", "void"});
  REQUIRE(fx.StartServe());

  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  HttpResponse r = c.Get("/void/x", {{"X-Request-Id", "rid-void"}});
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 502);
  Json body = Json::parse(r.body, nullptr, false);
  REQUIRE_MESSAGE(!body.is_discarded(), r.body);
  CHECK(body["backend"] == "void");
  CHECK(body["request_id"] == "rid-void");
  if (!c.connected()) REQUIRE(c.Connect(fx.port()));
  HttpResponse ok = c.Get("/copied");
  REQUIRE_MESSAGE(ok.ok, ok.error);
  CHECK(ok.status == 200);
  CHECK(ok.Header("X-Backend") == std::optional<std::string>("legacy"));

  // The copy's failure reaches the store (serve writes results about once a second).
  Json mismatch;
  CHECK(PollUntil(
      [&] {
        RunResult d = fx.MustCli({"diff", "--json"});
        Json j = Json::parse(d.out, nullptr, false);
        if (j.is_discarded() || !j.contains("mismatches") || j["mismatches"].empty()) return false;
        mismatch = j["mismatches"][0];
        return true;
      },
      kHangGuardMs, 100));
  CHECK(mismatch.value("route", "") == "copied");
  CHECK(mismatch["result"].value("error", "") == "mirror backend 'void' could not be reached");
  auto lines = ByRequestId(fx.StopAndReadLog());
  REQUIRE(lines.count("rid-void") == 1);
  CHECK(lines["rid-void"]["status"] == 502);
  CHECK(lines["rid-void"]["backend"] == "void");
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
