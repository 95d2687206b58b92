// A client that goes away in the middle: while a large answer is being
// relayed to it, or with a WebSocket tunnel open. The router drops the
// backend's side too, logs the request, and goes on serving others.
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <map>
#include <string>

#include <doctest/doctest.h>

#include "harness.h"
#include "script_backend.h"
#include "websocket.h"
#include "wire.h"

namespace strangler {
namespace e2e {
namespace {

// Closes fd with a reset (SO_LINGER 0), as a client that crashes does.
void Reset(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  close(fd);
}

// Reads from fd until `bytes` holds `want` (or the hang guard ends it).
bool ReadUntil(int fd, std::string* bytes, const std::string& want) {
  const std::atomic<bool> never{false};
  const int64_t deadline = NowMs() + kHangGuardMs;
  while (bytes->find(want) == std::string::npos) {
    if (RecvMore(fd, bytes, never, deadline) <= 0) return false;
  }
  return true;
}

TEST_CASE("e2e: a client that leaves in the middle of a large answer: the backend is let go, the request logged") {
  // /big streams 64 MiB until its connection fails; /small is a plain answer.
  std::atomic<bool> backend_cut{false};
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    while (conn.ReadRequest(&req)) {
      if (req.target != "/big") {
        conn.Send("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nsmall");
        continue;
      }
      const size_t total = 64u << 20;
      if (!conn.Send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(total) + "\r\n\r\n")) {
        break;
      }
      const std::string piece(64 * 1024, 'z');
      size_t sent = 0;
      while (sent < total && conn.Send(piece)) sent += piece.size();
      backend_cut = sent < total;
      break;
    }
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());

  int fd = ConnectLoopbackWithin(fx.port(), kHangGuardMs);
  REQUIRE(fd >= 0);
  REQUIRE(SendAll(fd, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got;
  REQUIRE(ReadUntil(fd, &got, "\r\n\r\n"));
  CHECK(got.rfind("HTTP/1.1 200 ", 0) == 0);
  Reset(fd);  // with most of the answer still to come

  // The router stops reading the backend's answer: the backend's sends fail.
  CHECK(PollUntil([&] { return backend_cut.load(); }));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  HttpResponse r = c.Get("/small");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.body == "small");
  auto by_path = std::map<std::string, Json>();
  for (const Json& line : fx.StopAndReadLog()) by_path[line["path"].get<std::string>()] = line;
  REQUIRE(by_path.count("/big") == 1);
  CHECK(by_path["/big"]["backend"] == "be");
  CHECK(by_path["/big"]["status"] == 200);
  CHECK(by_path["/big"]["bytes_out"].get<uint64_t>() < (64u << 20));
  CHECK(by_path["/small"]["status"] == 200);
}

TEST_CASE("e2e: websocket: a client that resets an open tunnel ends it; the backend sees it close") {
  std::atomic<bool> backend_saw_close{false};
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req)) return;
    conn.Send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: " +
              WsAcceptKey(req.Header("Sec-WebSocket-Key").value_or("")) + "\r\n\r\nhello");
    if (req.target == "/flood") {
      // More than the sockets between hold: the router has bytes waiting
      // for the client when it resets. Sends fail once the tunnel is gone.
      const std::string piece(64 * 1024, 'f');
      for (int i = 0; i < 1024 && conn.Send(piece); ++i) {
      }
    }
    backend_saw_close = conn.WaitForPeerClose(kHangGuardMs);
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("ws", be.url());
  REQUIRE(fx.StartServe());

  // /live: a quiet tunnel; /flood: the backend sends 64 MiB the client never reads.
  std::string target = "/live";
  SUBCASE("a quiet tunnel") {}
  SUBCASE("a tunnel the backend floods") { target = "/flood"; }
  INFO("target " << target);
  int fd = ConnectLoopbackWithin(fx.port(), kHangGuardMs);
  REQUIRE(fd >= 0);
  REQUIRE(SendAll(fd, "GET " + target + " HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
  std::string got;
  REQUIRE(ReadUntil(fd, &got, "hello"));  // the tunnel is open: the backend's first bytes came
  CHECK(got.rfind("HTTP/1.1 101 ", 0) == 0);
  REQUIRE(SendAll(fd, "ping"));
  Reset(fd);
  CHECK(PollUntil([&] { return backend_saw_close.load(); }));
  auto lines = fx.StopAndReadLog();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["status"] == 101);
  CHECK(lines[0]["backend"] == "ws");
}

TEST_CASE("e2e: a client that resets in the middle of its body is logged as 499; the backend is let go") {
  std::atomic<bool> backend_saw_close{false};
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req, /*head_only=*/true)) return;
    backend_saw_close = conn.WaitForPeerClose(kHangGuardMs);
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  int fd = ConnectLoopbackWithin(fx.port(), kHangGuardMs);
  REQUIRE(fd >= 0);
  REQUIRE(SendAll(fd, "POST /upload HTTP/1.1\r\nHost: x\r\nX-Request-Id: rid-gone\r\n"
                      "Content-Length: 1000\r\n\r\nfirst part"));
  REQUIRE(PollUntil([&] { return be.request_count() == 1; }));  // the head reached the backend
  Reset(fd);
  CHECK(PollUntil([&] { return backend_saw_close.load(); }));
  auto lines = ByRequestId(fx.StopAndReadLog());
  REQUIRE(lines.count("rid-gone") == 1);
  CHECK(lines["rid-gone"]["status"] == 499);
  CHECK(lines["rid-gone"]["backend"] == "be");
  CHECK(lines["rid-gone"]["path"] == "/upload");
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
