// What the third raw-byte attack round (beside nginx and HAProxy) found where
// the router did worse than both, each case as a test that failed before its
// fix: empty lines trickled before a request held a connection forever; a
// request whose body the client abandoned after the backend had its head left
// no decision line; the backend got a second X-Request-Id beside the one the
// log names; a client's X-Strangler-Mirror reached the primary backend.
#include <chrono>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: empty lines trickled before a request do not hold the connection past the head timeout") {
  TwoBackends t;
  RawClient fresh, after_request;
  REQUIRE(fresh.Connect(t.fx.port()));
  REQUIRE(after_request.Connect(t.fx.port()));
  HttpResponse first = after_request.Get("/x");
  REQUIRE_MESSAGE(first.ok, first.error);
  // The router's head timeout is 10 s and its idle timeout 60 s: a trickle
  // that outlasts this cap (a hang guard) was never cut.
  const int64_t t0 = NowMs();
  const int64_t cap = t0 + kHangGuardMs;
  bool fresh_closed = false, after_closed = false;
  while (NowMs() < cap && !(fresh_closed && after_closed)) {
    if (!fresh_closed) fresh_closed = !fresh.Send("\r\n") || fresh.WaitForClose(200);
    if (!after_closed) after_closed = !after_request.Send("\r\n") || after_request.WaitForClose(200);
  }
  MESSAGE("trickled connections closed after " << NowMs() - t0 << " ms");
  CHECK_MESSAGE(fresh_closed, "a fresh connection trickling CRLF is still open");
  CHECK_MESSAGE(after_closed, "a kept-alive connection trickling CRLF is still open");
  CHECK(t.forwarded() == 1);
}

TEST_CASE("e2e: X-Request-Id: the backend gets exactly the one the decision log names") {
  Fixture fx;
  RawBackend be("be");
  REQUIRE(be.Start());
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  struct Case {
    const char* name;
    std::string fields;
    bool client_id_kept;  // the client's first X-Request-Id is the one used
  };
  const Case cases[] = {
      {"empty", "X-Request-Id: \r\n", false},
      {"over 200 characters", "X-Request-Id: " + std::string(201, 'r') + "\r\n", false},
      {"two of them", "X-Request-Id: first-id\r\nX-Request-Id: second-id\r\n", true},
      {"an empty one, then a good one", "X-Request-Id: \r\nX-Request-Id: good-id\r\n", true},
      {"one", "X-Request-Id: only-id\r\n", true},
  };
  for (const Case& c : cases) {
    INFO("case: " << c.name);
    be.ClearRequests();
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    REQUIRE(client.Send("GET /rid HTTP/1.1\r\nHost: h\r\n" + c.fields + "\r\n"));
    HttpResponse r = client.ReadFinal();
    REQUIRE_MESSAGE(r.ok, r.error);
    REQUIRE(be.WaitForRequests(1, kHangGuardMs));
    RecordedRequest got = be.requests().front();
    CHECK(got.HeaderCount("X-Request-Id") == 1);
    std::optional<std::string> sent = got.Header("X-Request-Id");
    REQUIRE(sent.has_value());
    std::optional<Json> line = fx.LogLineFor(*sent);
    CHECK_MESSAGE(line.has_value(), "the id the backend got is not the one logged");
    if (c.client_id_kept) CHECK(sent->find("-id") != std::string::npos);
  }
}

TEST_CASE("e2e: a client's own X-Strangler-Mirror is not passed on") {
  Fixture fx;
  RawBackend be("be");
  REQUIRE(be.Start());
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  RawClient client;
  REQUIRE(client.Connect(fx.port()));
  HttpResponse r = client.Get("/m", {{"X-Strangler-Mirror", "1"}});
  REQUIRE_MESSAGE(r.ok, r.error);
  REQUIRE(be.WaitForRequests(1, kHangGuardMs));
  CHECK(be.requests().front().HeaderCount("X-Strangler-Mirror") == 0);
}

TEST_CASE("e2e: a request whose body is abandoned after its head reached the backend is logged") {
  TwoBackends t;
  SUBCASE("the client goes away mid-body: 499") {
    RawClient client;
    REQUIRE(client.Connect(t.fx.port()));
    REQUIRE(client.Send("POST /new/upload HTTP/1.1\r\nHost: h\r\nContent-Length: 100000\r\n\r\n" +
                        std::string(20000, 'a')));
    REQUIRE(PollUntil([&] { return t.fresh.connections_accepted() >= 1; }));
    client.Close();
    auto lines = t.fx.WaitForLogLines(1);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["path"] == "/new/upload");
    CHECK(lines[0]["backend"] == "new");
    CHECK(lines[0]["route"] == "new");
    CHECK(lines[0]["status"] == 499);
  }
  SUBCASE("a bad chunk after the head went out: 400, logged with the backend") {
    RawClient client;
    REQUIRE(client.Connect(t.fx.port()));
    REQUIRE(client.Send("POST /new/chunks HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
                        "5\r\nhello\r\n"));
    REQUIRE(PollUntil([&] { return t.fresh.connections_accepted() >= 1; }));
    REQUIRE(client.Send("zz\r\n"));
    HttpResponse r = client.ReadFinal(false, kHangGuardMs);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 400);
    auto lines = t.fx.WaitForLogLines(1);
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["backend"] == "new");
    CHECK(lines[0]["status"] == 400);
  }
  CHECK(t.forwarded() == 0);  // never a whole request
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
