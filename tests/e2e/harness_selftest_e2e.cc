// The harness checked against itself (RawClient straight to RawBackend, no
// router), so a failing e2e test points at the router, not the harness.
#include <csignal>
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: harness: RawClient and RawBackend agree on framing") {
  RawBackend be("self");
  REQUIRE(be.Start());
  RawClient c;
  REQUIRE(c.Connect(be.port()));

  // Pipelined GET, POST with Content-Length, chunked POST, HEAD.
  REQUIRE(
      c.Send("GET /a HTTP/1.1\r\nHost: h\r\nX-V: a%0d%0ab\r\n\r\n"
             "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
             "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: "
             "chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n"
             "HEAD /d HTTP/1.1\r\nHost: h\r\n\r\n"));
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = c.ReadFinal();
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "self");
    CHECK(r.Header("x-backend").value_or("") == "self");
  }
  HttpResponse head = c.ReadFinal(true);
  REQUIRE_MESSAGE(head.ok, head.error);
  CHECK(head.body.empty());
  REQUIRE(be.WaitForRequests(4, kHangGuardMs));
  auto reqs = be.requests();
  CHECK(reqs[0].request_line == "GET /a HTTP/1.1");
  CHECK(reqs[0].header_lines[1] == "X-V: a%0d%0ab");
  CHECK(reqs[1].body == "xyz");
  CHECK(reqs[2].body == "abc");
  CHECK(reqs[2].chunked);
  CHECK(reqs[2].raw.size() > reqs[2].head.size() + 4);
  CHECK(reqs[3].method == "HEAD");
  CHECK(be.connections_accepted() == 1);

  // Chunked response and 100-continue.
  be.set_response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
  REQUIRE(
      c.Send("PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"));
  HttpResponse interim = c.ReadResponse(false, kHangGuardMs);
  REQUIRE_MESSAGE(interim.ok, interim.error);
  CHECK(interim.status == 100);
  REQUIRE(c.Send("hi"));
  HttpResponse r = c.ReadFinal();
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.chunked);
  CHECK(r.body == "ok");

  // A read timeout that does not hang: the backend holds its answer until
  // after the read gave up, so the read can only end by its own timeout.
  be.Hold();
  int64_t t0 = NowMs();
  HttpResponse late = c.Get("/slow", {}, 100);
  MESSAGE("a read with a 100 ms timeout gave up after " << NowMs() - t0 << " ms: " << late.error);
  CHECK(!late.ok);
  CHECK(late.error.find("timeout") == 0);
  CHECK(be.WaitForRequests(6, kHangGuardMs));  // the request did reach the backend
  be.Release();
  // A delay is a delay: the answer comes after it.
  be.set_delay_ms(50);
  RawClient d;
  REQUIRE(d.Connect(be.port()));
  HttpResponse delayed = d.Get("/delayed");
  REQUIRE_MESSAGE(delayed.ok, delayed.error);
  CHECK(delayed.body == "ok");
}

TEST_CASE("e2e: harness: Run and Process report exit codes and output") {
  RunResult r = Run({"/bin/sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(r.exit_code == 3);
  CHECK(r.out == "out\n");
  CHECK(r.err == "err\n");
  TempDir d;
  Process p({"/bin/sleep", "30"}, {}, d.File("o"), d.File("e"));
  REQUIRE(p.Start());
  CHECK(p.Running());
  CHECK(p.Stop(SIGTERM, 2000) == 128 + SIGTERM);
  RunResult t = Run({"/bin/sleep", "30"}, {}, 100);
  CHECK(t.exit_code == -1);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
