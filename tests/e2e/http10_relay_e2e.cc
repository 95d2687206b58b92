// An HTTP/1.0 client knows no chunked encoding: an answer the backend sends
// without a length reaches it as bytes ended by the end of the connection.
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: an answer without length reaches an HTTP/1.0 client unchunked, ended by close") {
  Fixture fx;
  RawBackend be("be");
  REQUIRE(be.Start());
  be.set_responder([](const RecordedRequest& req) -> std::string {
    if (req.target == "/chunked") {
      return "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    }
    return "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nhello world";  // ends at EOF
  });
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  for (const std::string target : {"/chunked", "/eof"}) {
    INFO("target " << target);
    if (target == "/eof") be.set_close_after_response(true);
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    REQUIRE(c.Send("GET " + target + " HTTP/1.0\r\n\r\n"));
    HttpResponse r = c.ReadFinal(false, kHangGuardMs);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status_line.rfind("HTTP/1.0 200 ", 0) == 0);
    CHECK(r.HeaderCount("Transfer-Encoding") == 0);
    CHECK(r.HeaderCount("Content-Length") == 0);
    CHECK(r.Header("Connection") == std::optional<std::string>("close"));
    CHECK_FALSE(r.chunked);
    CHECK(r.body == "hello world");
  }
  CHECK(be.request_count() == 2);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
