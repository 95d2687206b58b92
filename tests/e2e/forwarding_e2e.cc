// Forwarding fidelity, checked on raw bytes at a RawBackend and at a raw
// client: what the client sent is what the backend gets, and back. Each
// serve has two backends (TwoBackends), and each case checks which one
// answered and that the other got nothing: a proxy that forwards faithfully
// to the wrong backend fails here too.
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string NameOf(const std::string& line) { return line.substr(0, line.find(':')); }

std::string Join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "  " + Printable(x) + "\n";
  return s;
}

// Header lines the proxy may add (or replace) on the way to the backend.
bool ProxyManaged(const std::string& line) {
  static const std::set<std::string> kNames = {"x-forwarded-for",  "x-forwarded-proto",
                                               "x-forwarded-host", "x-request-id",
                                               "connection",       "via",
                                               "forwarded"};
  return kNames.count(Lower(NameOf(line))) > 0;
}

TEST_CASE("e2e: forwarding keeps request line, header bytes and order, and response headers") {
  TwoBackends t;
  t.fresh.set_response(
      "HTTP/1.1 200 OK\r\n"
      "Set-Cookie: a=1%3D%3D; Path=/\r\n"
      "X-Between: 1\r\n"
      "Set-Cookie: b=x%20y; HttpOnly\r\n"
      "Location: /a%20b%2Fc\r\n"
      "X-Weird: %0d%0aX-Injected: 1\r\n"
      "X-Backend: new\r\n"
      "Content-Length: 2\r\n"
      "\r\n"
      "ok");
  const std::vector<std::string> client_lines = {
      "Host: front.example:8080",
      "X-Custom-A: one",
      "Cookie: s=abc%3D%3D",
      "X-Encoded: a%0d%0ab",
      "x-lower-case: Mixed Value  with  spaces",
      "X-Custom-A: two",
      "X-Percent: 100%25 done",
      "Accept: */*",
  };
  const std::string request_line = "GET /new/a/%2F/b?x=%20&y=1 HTTP/1.1";
  std::string raw = request_line + "\r\n";
  for (const auto& l : client_lines) raw += l + "\r\n";
  raw += "\r\n";

  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  REQUIRE(c.Send(raw));
  HttpResponse r = c.ReadFinal();
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "ok");
  t.ExpectOnly(r, t.fresh);

  REQUIRE(t.fresh.WaitForRequests(1, kHangGuardMs));
  RecordedRequest got = t.fresh.requests().at(0);
  INFO("backend received:\n" << Printable(got.head));
  CHECK(got.request_line == request_line);
  CHECK(got.body.empty());
  std::vector<std::string> passed;
  for (const auto& l : got.header_lines) {
    if (!ProxyManaged(l)) passed.push_back(l);
  }
  INFO("client sent:\n"
       << Join(client_lines) << "backend got (minus proxy headers):\n"
       << Join(passed));
  CHECK(passed == client_lines);
  CHECK(got.HeaderCount("X-Encoded") == 1);
  CHECK(got.Header("X-Encoded").value_or("") == "a%0d%0ab");
  CHECK(got.Header("Cookie").value_or("") == "s=abc%3D%3D");

  // The response: both Set-Cookie lines, encoded values untouched, in order.
  INFO("client received:\n" << Printable(r.raw_head));
  std::vector<std::string> cookies;
  for (const auto& l : r.header_lines) {
    if (Lower(NameOf(l)) == "set-cookie") cookies.push_back(l);
  }
  CHECK(cookies ==
        std::vector<std::string>{"Set-Cookie: a=1%3D%3D; Path=/", "Set-Cookie: b=x%20y; HttpOnly"});
  CHECK(r.Header("Location").value_or("") == "/a%20b%2Fc");
  CHECK(r.Header("X-Weird").value_or("") == "%0d%0aX-Injected: 1");
  CHECK(r.HeaderCount("X-Injected") == 0);
}

// An echo of the request body, naming the backend that gave it.
RawBackend::Responder EchoBody(const std::string& backend) {
  return [backend](const RecordedRequest& req) {
    return "HTTP/1.1 200 OK\r\nX-Backend: " + backend +
           "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
           std::to_string(req.body.size()) + "\r\n\r\n" + req.body;
  };
}

TEST_CASE("e2e: binary request and response bodies arrive intact") {
  TwoBackends t;
  t.legacy.set_responder(EchoBody("legacy"));
  t.fresh.set_responder(EchoBody("new"));
  std::string all256;
  for (int i = 0; i < 256; ++i) all256.push_back(static_cast<char>(i));
  std::string big;
  for (int i = 0; i < (1 << 20); ++i) big.push_back(static_cast<char>((i * 7 + i / 256) & 0xff));

  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  for (RawBackend* be : {&t.legacy, &t.fresh}) {
    for (const std::string* body : {&all256, &big}) {
      const std::string target = be == &t.fresh ? "/new/upload" : "/upload";
      INFO("body of " << body->size() << " bytes to " << target);
      t.ClearRequests();
      HttpResponse r =
          c.Request("POST", target, {{"Content-Type", "application/octet-stream"}}, *body, 10000);
      REQUIRE_MESSAGE(r.ok, r.error);
      CHECK(r.status == 200);
      CHECK(r.body.size() == body->size());
      CHECK((r.body == *body));
      t.ExpectOnly(r, *be);
      REQUIRE(be->WaitForRequests(1, kHangGuardMs));
      RecordedRequest got = be->requests().back();
      CHECK(got.Header("Content-Length").value_or("") == std::to_string(body->size()));
      CHECK(got.body.size() == body->size());
      CHECK((got.body == *body));
    }
  }
}

TEST_CASE("e2e: chunked request body and chunked response body arrive intact") {
  TwoBackends t;
  std::string part2(26, 'z');
  for (int i = 0; i < 26; ++i) part2[i] = static_cast<char>('a' + i);
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  REQUIRE(c.Send("POST /new/chunked HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  REQUIRE(c.Send("5;first=yes\r\nhello\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  REQUIRE(c.Send("1a;ext=1\r\n" + part2 + "\r\n"));
  REQUIRE(c.Send(std::string("5\r\n\r\n\x00\xff!\r\n", 10)));
  REQUIRE(c.Send("0\r\nX-Trailer-A: t1\r\nX-Trailer-B: t2\r\n\r\n"));
  HttpResponse r = c.ReadFinal();
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  t.ExpectOnly(r, t.fresh);
  REQUIRE(t.fresh.WaitForRequests(1, kHangGuardMs));
  RecordedRequest got = t.fresh.requests().at(0);
  INFO("backend received:\n" << Printable(got.raw));
  const std::string want = "hello" + part2 + std::string("\r\n\x00\xff!", 5);
  CHECK(Printable(got.body) == Printable(want));
  CHECK(got.HeaderCount("Content-Length") + (got.chunked ? 1 : 0) == 1);
  // Re-chunked in our framing: the chunk extensions and the trailers stay
  // behind (README, Protocol details), in the backend's raw bytes.
  for (const char* gone : {"first=yes", "ext=1", ";", "X-Trailer-A", "t1", "X-Trailer-B"}) {
    INFO("upstream bytes carry " << gone);
    CHECK(got.raw.substr(got.head.size()).find(gone) == std::string::npos);
  }

  t.fresh.set_response(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Backend: new\r\n\r\n"
      "4\r\nWiki\r\n6\r\npedia \r\nE\r\nin \r\n\r\nchunks.\r\n0\r\n\r\n");
  HttpResponse r2 = c.Get("/new/chunked-response");
  REQUIRE_MESSAGE(r2.ok, r2.error);
  CHECK(r2.status == 200);
  CHECK(Printable(r2.body) == Printable("Wikipedia in \r\n\r\nchunks."));
  t.ExpectOnly(r2, t.fresh, 2);
  // The connection is still usable afterwards, and routes each request.
  HttpResponse r3 = c.Get("/after");
  REQUIRE_MESSAGE(r3.ok, r3.error);
  CHECK(r3.body == "legacy");
  CHECK(r3.Header("X-Backend") == std::optional<std::string>("legacy"));
  CHECK(t.legacy.request_count() == 1);
  CHECK(t.fresh.request_count() == 2);
}

TEST_CASE("e2e: a response without length reaches an HTTP/1.1 client chunked") {
  TwoBackends t;
  t.fresh.set_response("HTTP/1.1 200 OK\r\nX-Backend: new\r\n\r\nno length, ended by the close");
  t.fresh.set_close_after_response(true);
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  HttpResponse r = c.Get("/new/unframed");
  REQUIRE_MESSAGE(r.ok, r.error);
  INFO("client received:\n" << Printable(r.raw_head));
  CHECK(r.status == 200);
  CHECK(r.chunked);
  CHECK(r.Header("Transfer-Encoding") == std::optional<std::string>("chunked"));
  CHECK(r.HeaderCount("Content-Length") == 0);
  CHECK(r.body == "no length, ended by the close");
  t.ExpectOnly(r, t.fresh);
}

// Answers "METHOD TARGET BODY", naming the backend that gave it.
RawBackend::Responder EchoRequest(const std::string& backend) {
  return [backend](const RecordedRequest& req) {
    std::string body = req.method + " " + req.target + " " + req.body;
    return "HTTP/1.1 200 OK\r\nX-Backend: " + backend +
           "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  };
}

TEST_CASE("e2e: pipelined requests in one write are all answered, in order") {
  TwoBackends t;
  t.legacy.set_responder(EchoRequest("legacy"));
  t.fresh.set_responder(EchoRequest("new"));
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  REQUIRE(
      c.Send("GET /p1 HTTP/1.1\r\nHost: h\r\n\r\n"
             "POST /new/p2 HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
             "GET /p3 HTTP/1.1\r\nHost: h\r\n\r\n"));
  // Each pipelined request is routed on its own.
  const std::vector<std::pair<std::string, std::string>> want = {
      {"GET /p1 ", "legacy"}, {"POST /new/p2 abc", "new"}, {"GET /p3 ", "legacy"}};
  for (const auto& w : want) {
    HttpResponse r = c.ReadFinal();
    INFO("expecting the answer to " << w.first);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
    CHECK(r.body == w.first);
    CHECK(r.Header("X-Backend") == std::optional<std::string>(w.second));
  }
  CHECK(t.legacy.request_count() == 2);
  CHECK(t.fresh.request_count() == 1);
}

TEST_CASE("e2e: hop-by-hop headers are dropped both ways") {
  TwoBackends t;
  t.legacy.set_response(
      "HTTP/1.1 200 OK\r\n"
      "Connection: keep-alive, X-Hop-R\r\n"
      "X-Hop-R: 1\r\n"
      "Proxy-Connection: keep-alive\r\n"
      "X-End-R: kept\r\n"
      "X-Backend: legacy\r\n"
      "Content-Length: 2\r\n"
      "\r\n"
      "ok");
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  REQUIRE(
      c.Send("GET /hop HTTP/1.1\r\n"
             "Host: h\r\n"
             "Connection: keep-alive, X-Hop-A\r\n"
             "X-Hop-A: 1\r\n"
             "Keep-Alive: timeout=5\r\n"
             "Proxy-Connection: keep-alive\r\n"
             "TE: trailers\r\n"
             "Trailer: X-T\r\n"
             "Upgrade: example/1\r\n"
             "X-End: kept\r\n"
             "\r\n"));
  HttpResponse r = c.ReadFinal();
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  t.ExpectOnly(r, t.legacy);
  REQUIRE(t.legacy.WaitForRequests(1, kHangGuardMs));
  RecordedRequest got = t.legacy.requests().at(0);
  INFO("backend received:\n" << Printable(got.head));
  for (const char* h : {"X-Hop-A", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "Upgrade"}) {
    INFO("header " << h);
    CHECK(got.HeaderCount(h) == 0);
  }
  // The proxy may send its own Connection header, never the client's.
  CHECK(Lower(got.Header("Connection").value_or("")).find("x-hop-a") == std::string::npos);
  CHECK(got.Header("X-End").value_or("") == "kept");

  INFO("client received:\n" << Printable(r.raw_head));
  CHECK(r.HeaderCount("X-Hop-R") == 0);
  CHECK(r.HeaderCount("Proxy-Connection") == 0);
  CHECK(Lower(r.Header("Connection").value_or("")).find("x-hop-r") == std::string::npos);
  CHECK(r.Header("X-End-R").value_or("") == "kept");
}

TEST_CASE("e2e: X-Forwarded-For/Proto/Host and Host") {
  TwoBackends t;
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  HttpResponse r1 = c.Get("/xff", {{"Host", "front.example"}, {"X-Forwarded-For", "203.0.113.7"}});
  REQUIRE_MESSAGE(r1.ok, r1.error);
  t.ExpectOnly(r1, t.legacy);
  HttpResponse r2 = c.Get("/new/noxff", {{"Host", "shop.example:8443"}});
  REQUIRE_MESSAGE(r2.ok, r2.error);
  CHECK(r2.Header("X-Backend") == std::optional<std::string>("new"));
  CHECK(t.legacy.request_count() == 1);
  CHECK(t.fresh.request_count() == 1);
  {
    const RecordedRequest got = t.legacy.requests().at(0);
    INFO("backend received:\n" << Printable(got.head));
    CHECK(got.HeaderCount("X-Forwarded-For") == 1);
    CHECK(got.Header("X-Forwarded-For").value_or("") == "203.0.113.7, 127.0.0.1");
    CHECK(got.Header("X-Forwarded-Proto").value_or("") == "http");
    CHECK(got.Header("X-Forwarded-Host").value_or("") == "front.example");
    CHECK(got.HeaderCount("Host") == 1);
    CHECK(got.Header("Host").value_or("") == "front.example");
  }
  {
    const RecordedRequest got = t.fresh.requests().at(0);
    INFO("backend received:\n" << Printable(got.head));
    CHECK(got.Header("X-Forwarded-For").value_or("") == "127.0.0.1");
    CHECK(got.Header("X-Forwarded-Proto").value_or("") == "http");
    CHECK(got.Header("X-Forwarded-Host").value_or("") == "shop.example:8443");
    CHECK(got.Header("Host").value_or("") == "shop.example:8443");
  }
}

TEST_CASE("e2e: X-Request-Id is propagated both ways, or generated") {
  TwoBackends t;
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  HttpResponse r1 = c.Get("/rid", {{"X-Request-Id", "abc-123"}});
  REQUIRE_MESSAGE(r1.ok, r1.error);
  t.ExpectOnly(r1, t.legacy);
  HttpResponse r2 = c.Get("/new/rid-none");
  REQUIRE_MESSAGE(r2.ok, r2.error);
  CHECK(r2.Header("X-Backend") == std::optional<std::string>("new"));
  CHECK(t.legacy.request_count() == 1);
  REQUIRE(t.fresh.request_count() == 1);
  const RecordedRequest to_legacy = t.legacy.requests().at(0);
  const RecordedRequest to_new = t.fresh.requests().at(0);

  INFO("response 1:\n" << Printable(r1.raw_head));
  CHECK(r1.HeaderCount("X-Request-Id") == 1);
  CHECK(r1.Header("X-Request-Id").value_or("") == "abc-123");
  CHECK(to_legacy.HeaderCount("X-Request-Id") == 1);
  CHECK(to_legacy.Header("X-Request-Id").value_or("") == "abc-123");

  INFO("response 2:\n" << Printable(r2.raw_head));
  INFO("backend 2:\n" << Printable(to_new.head));
  std::string generated = r2.Header("X-Request-Id").value_or("");
  CHECK(!generated.empty());
  CHECK(r2.HeaderCount("X-Request-Id") == 1);
  CHECK(to_new.HeaderCount("X-Request-Id") == 1);
  CHECK(to_new.Header("X-Request-Id").value_or("") == generated);

  auto logged = ByRequestId(t.fx.StopAndReadLog());
  CHECK_MESSAGE(logged.count("abc-123") == 1, "no log line with request_id abc-123");
  if (logged.count("abc-123")) t.ExpectLogged(logged["abc-123"], t.legacy);
  if (!generated.empty()) {
    CHECK_MESSAGE(logged.count(generated) == 1, "no log line with request_id " << generated);
    if (logged.count(generated)) {
      CHECK(logged[generated]["path"] == "/new/rid-none");
      t.ExpectLogged(logged[generated], t.fresh);
    }
  }
}

TEST_CASE("e2e: every method is forwarded; HEAD has no body") {
  TwoBackends t;
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  const std::vector<std::string> methods = {"GET",    "HEAD",    "POST",     "PUT",   "PATCH",
                                            "DELETE", "OPTIONS", "PROPFIND", "PURGE", "GET"};
  for (const auto& m : methods) {
    for (RawBackend* be : {&t.legacy, &t.fresh}) {
      const std::string target = std::string(be == &t.fresh ? "/new" : "") + "/m/" + m + "?q=1";
      INFO("method " << m << " " << target);
      t.ClearRequests();
      bool with_body = m == "POST" || m == "PUT" || m == "PATCH" || m == "PROPFIND";
      std::string body = with_body ? "body-of-" + m : "";
      Headers h;
      if (m == "PROPFIND") h.emplace_back("Depth", "1");
      HttpResponse r = c.Request(m, target, h, body);
      REQUIRE_MESSAGE(r.ok, r.error);
      CHECK(r.status == 200);
      if (m == "HEAD") {
        CHECK(r.body.empty());
        // As the backend said: the length of its name.
        CHECK(r.Header("Content-Length").value_or("") == std::to_string(be->name().size()));
      } else {
        CHECK(r.body == be->name());
      }
      t.ExpectOnly(r, *be);
      REQUIRE(be->WaitForRequests(1, kHangGuardMs));
      RecordedRequest got = be->requests().back();
      CHECK(got.request_line == m + " " + target + " HTTP/1.1");
      CHECK(got.body == body);
      if (r.Header("Connection").value_or("").find("close") != std::string::npos) c.Close();
      if (!c.connected()) REQUIRE(c.Connect(t.fx.port()));
    }
  }
}

TEST_CASE("e2e: Expect: 100-continue gets 100 Continue, then the final answer") {
  TwoBackends t;
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  REQUIRE(c.Send(
      "POST /new/expect HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n"));
  HttpResponse interim = c.ReadResponse(false, kHangGuardMs);
  REQUIRE_MESSAGE(interim.ok, "no 100 Continue: " << interim.error);
  CHECK(interim.status == 100);
  REQUIRE(c.Send("hello world"));
  HttpResponse r = interim.status == 100 ? c.ReadFinal() : interim;
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "new");
  t.ExpectOnly(r, t.fresh);
  REQUIRE(t.fresh.WaitForRequests(1, kHangGuardMs));
  const RecordedRequest got = t.fresh.requests().at(0);
  INFO("backend received:\n" << Printable(got.raw));
  CHECK(got.body == "hello world");
  // The router answered the Expect itself and did not pass it on (README,
  // Protocol details): the backend's bytes carry no Expect.
  CHECK(got.HeaderCount("Expect") == 0);
  CHECK(got.raw.find("100-continue") == std::string::npos);
  CHECK_FALSE(got.sent_continue);
}

TEST_CASE("e2e: an HTTP/1.0 request is answered") {
  TwoBackends t;
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  REQUIRE(c.Send("GET /old HTTP/1.0\r\nHost: h\r\n\r\n"));
  HttpResponse r = c.ReadFinal();
  REQUIRE_MESSAGE(r.ok, r.error);
  INFO("client received:\n" << Printable(r.raw_head));
  CHECK(r.status == 200);
  CHECK(r.body == "legacy");
  CHECK(!r.chunked);  // RFC 9112 7: never chunked to an HTTP/1.0 client
  t.ExpectOnly(r, t.legacy);
  // No keep-alive was asked for: the router closes the connection.
  if (c.connected()) CHECK(c.WaitForClose(kCloseWaitMs));
  REQUIRE(t.legacy.WaitForRequests(1, kHangGuardMs));
  CHECK(t.legacy.requests().at(0).target == "/old");
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
