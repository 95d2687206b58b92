// Upstream failures: 502 for a backend that refuses or breaks, 504 for one
// that is too slow, each with a JSON body; the router keeps serving.
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

// True when some string value anywhere in `j` contains `needle`.
bool MentionsString(const Json& j, const std::string& needle) {
  if (j.is_string()) return j.get<std::string>().find(needle) != std::string::npos;
  if (j.is_structured()) {
    for (const auto& v : j) {
      if (MentionsString(v, needle)) return true;
    }
  }
  return false;
}

void CheckErrorBody(const HttpResponse& r, const std::string& backend, const std::string& rid) {
  INFO("response:\n" << Printable(r.raw_head) << "\n\n" << Printable(r.body));
  Json j = Json::parse(r.body, nullptr, false);
  REQUIRE_MESSAGE(!j.is_discarded(), "error body is not JSON");
  CHECK(j.is_object());
  CHECK_MESSAGE(MentionsString(j, backend), "body does not name backend " << backend);
  CHECK_MESSAGE(MentionsString(j, rid), "body does not carry request id " << rid);
}

TEST_CASE("e2e: 502 for a refusing or broken backend, 504 for a slow one; serving goes on") {
  Fixture fx;
  RawBackend mono("mono"), slow("slow"), mute("mute"), junk("junk");
  REQUIRE(mono.Start());
  REQUIRE(slow.Start());
  REQUIRE(mute.Start());
  REQUIRE(junk.Start());
  slow.Hold();            // answers only once released: a 504 before that is the router's timeout
  mute.set_response("");  // reads the request, closes without a byte
  mute.set_close_after_response(true);
  junk.set_response("this is not HTTP\r\n\r\n");
  junk.set_close_after_response(true);
  ClosedPort closed;  // nothing listens there

  fx.AddBackend("mono", mono.url());
  fx.AddBackend("dead", closed.url());
  fx.AddBackend("slow", slow.url(), {"--timeout-ms", "300"});
  fx.AddBackend("mute", mute.url());
  fx.AddBackend("junk", junk.url());
  fx.AddRoute("dead", {"--to", "dead", "--path", "/dead"});
  fx.AddRoute("slow", {"--to", "slow", "--path", "/slow"});
  fx.AddRoute("mute", {"--to", "mute", "--path", "/mute"});
  fx.AddRoute("junk", {"--to", "junk", "--path", "/junk"});
  REQUIRE(fx.StartServe());

  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  auto reconnect_if_closed = [&](const HttpResponse& r) {
    if (r.Header("Connection").value_or("").find("close") != std::string::npos || !c.connected()) {
      REQUIRE(c.Connect(fx.port()));
    }
  };

  struct Expected {
    std::string rid;
    std::string backend;
    int status = 0;
  } expect_log;

  SUBCASE("refused") {
    HttpResponse r = c.Get("/dead", {{"X-Request-Id", "rid-502"}});
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 502);
    CheckErrorBody(r, "dead", "rid-502");
    expect_log = {"rid-502", "dead", 502};
    reconnect_if_closed(r);
  }
  SUBCASE("closed without answering") {
    HttpResponse r = c.Get("/mute", {{"X-Request-Id", "rid-mute"}});
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 502);
    CheckErrorBody(r, "mute", "rid-mute");
    expect_log = {"rid-mute", "mute", 502};
    reconnect_if_closed(r);
  }
  SUBCASE("answered garbage") {
    HttpResponse r = c.Get("/junk", {{"X-Request-Id", "rid-junk"}});
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 502);
    CheckErrorBody(r, "junk", "rid-junk");
    expect_log = {"rid-junk", "junk", 502};
    reconnect_if_closed(r);
  }
  SUBCASE("timeout") {
    int64_t start = NowMs();
    HttpResponse r = c.Get("/slow", {{"X-Request-Id", "rid-504"}}, kHangGuardMs);
    int64_t elapsed = NowMs() - start;
    MESSAGE("504 after " << elapsed << " ms (backend timeout 300 ms; the backend never answered)");
    REQUIRE_MESSAGE(r.ok, r.error);
    // The backend holds its answer until released below, so this answer can
    // only be the router's: its timeout fired before the backend answered.
    CHECK(r.status == 504);
    CHECK(slow.request_count() >= 1);  // it had the request, and no answer for it
    slow.Release();
    CheckErrorBody(r, "slow", "rid-504");
    expect_log = {"rid-504", "slow", 504};
    reconnect_if_closed(r);
  }

  // The failed request went to its route's backend only: the default one,
  // which would have answered 200, got nothing of it.
  CHECK(mono.request_count() == 0);
  // Still serving, on the same connection when the router kept it.
  for (int i = 0; i < 5; ++i) {
    HttpResponse ok = c.Get("/fine");
    REQUIRE_MESSAGE(ok.ok, ok.error);
    CHECK(ok.status == 200);
    CHECK(ok.Header("X-Backend").value_or("") == "mono");
  }
  RawClient fresh;
  REQUIRE(fresh.Connect(fx.port()));
  HttpResponse ok = fresh.Get("/fine");
  REQUIRE_MESSAGE(ok.ok, ok.error);
  CHECK(ok.status == 200);
  CHECK(ok.Header("X-Backend") == std::optional<std::string>("mono"));
  CHECK(mono.request_count() == 6);
  CHECK(fx.serve()->Running());

  // The failure is in the decision log with its status and backend.
  auto logged = ByRequestId(fx.StopAndReadLog());
  REQUIRE(!expect_log.rid.empty());
  auto it = logged.find(expect_log.rid);
  REQUIRE_MESSAGE(it != logged.end(), "no log line with request_id " << expect_log.rid);
  INFO("log: " << it->second.dump());
  CHECK(it->second["status"] == expect_log.status);
  CHECK(it->second["backend"] == expect_log.backend);
  CHECK(it->second["route"] == expect_log.backend);  // each route is named after its backend
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
