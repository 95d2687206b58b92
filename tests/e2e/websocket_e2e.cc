// WebSocket through the router (PRODUCT.md "Upgrades"): a request with
// Connection: upgrade and Upgrade: websocket is routed like any other, and a
// 101 turns both connections into a byte tunnel until either side closes,
// --tunnel-idle-s passes or the drain ends; one decision line per tunnel.
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "script_backend.h"
#include "websocket.h"
#include "wire.h"

namespace strangler {
namespace e2e {
namespace {

constexpr int kTimeoutMs = 10000;  // guards against hangs only

std::string Blob(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + 7) & 0xff);
  return s;
}

TEST_CASE("e2e: websocket: an echo through the router, routed by path, logged as 101 with byte counts") {
  Fixture fx;
  RawBackend legacy("legacy");
  WsEchoBackend ws("ws");
  REQUIRE(legacy.Start());
  REQUIRE(ws.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("ws", ws.url());
  fx.AddRoute("live", {"--to", "ws", "--path", "/live"});
  REQUIRE(fx.StartServe());

  WsClient c;
  REQUIRE_MESSAGE(c.Open(fx.port(), "/live/feed?x=1", {{"Host", "shop.example"}}), c.error());
  CHECK(c.status() == 101);
  CHECK(c.accept_ok());
  CHECK(c.response().Header("X-Backend") == std::optional<std::string>("ws"));
  CHECK(c.response().Header("X-Request-Id").has_value());
  auto ups = ws.upgrade_requests();
  REQUIRE(ups.size() == 1);
  CHECK(ups[0].target == "/live/feed?x=1");
  CHECK(ups[0].Header("Host") == std::optional<std::string>("shop.example"));
  CHECK(ups[0].Header("Sec-WebSocket-Key") == std::optional<std::string>(c.key()));
  CHECK(ups[0].Header("X-Forwarded-For").has_value());

  REQUIRE(c.SendText("hello"));
  WsMessage m = c.ReceiveMessage(kTimeoutMs);
  REQUIRE_MESSAGE(m.ok, m.error);
  CHECK(m.opcode == WsOpcode::kText);
  CHECK(m.payload == "hello");
  const std::string big = Blob(1 << 20);
  REQUIRE(c.SendBinary(big, 64 * 1024));  // one message in 16 fragments
  m = c.ReceiveMessage(kTimeoutMs);
  REQUIRE_MESSAGE(m.ok, m.error);
  CHECK(m.opcode == WsOpcode::kBinary);
  CHECK(m.payload.size() == big.size());
  CHECK(m.payload == big);
  REQUIRE(c.SendClose(1000));
  WsMessage closed = c.ReadClose(kTimeoutMs);
  REQUIRE_MESSAGE(closed.ok, closed.error);
  CHECK(closed.close_code == 1000);
  CHECK(c.WaitForClosed(kTimeoutMs));
  REQUIRE(ws.WaitForClosed(1, kTimeoutMs));
  CHECK(ws.messages_echoed() == 2);
  CHECK(legacy.request_count() == 0);

  // Plain requests on the same route still work.
  RawClient plain;
  REQUIRE(plain.Connect(fx.port()));
  HttpResponse r = plain.Get("/live/status");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);

  auto lines = fx.StopAndReadLog();
  REQUIRE(lines.size() == 2);
  const Json& t = lines[0]["status"] == 101 ? lines[0] : lines[1];
  CHECK(t["status"] == 101);
  CHECK(t["route"] == "live");
  CHECK(t["backend"] == "ws");
  CHECK(t["path"] == "/live/feed");
  CHECK(t["bytes_in"].get<uint64_t>() == c.bytes_sent());
  CHECK(t["bytes_out"].get<uint64_t>() == c.bytes_received());
  MESSAGE("tunnel: " << t.dump());
}

TEST_CASE("e2e: websocket: a sticky cohort upgrades to the backend its plain requests go to") {
  Fixture fx;
  WsEchoBackend a("a"), b("b");
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  fx.AddBackend("a", a.url());
  fx.AddBackend("b", b.url());
  fx.AddRoute("half", {"--to", "b", "--percent", "50", "--sticky", "header:X-User-Id"});
  REQUIRE(fx.StartServe());
  int on_a = 0, on_b = 0;
  for (int u = 0; u < 12; ++u) {
    const std::string user = "user-" + std::to_string(u);
    RawClient plain;
    REQUIRE(plain.Connect(fx.port()));
    HttpResponse r = plain.Get("/chat", {{"X-User-Id", user}});
    REQUIRE_MESSAGE(r.ok, r.error);
    const std::string plain_backend = r.Header("X-Backend").value_or("?");
    WsClient c;
    REQUIRE_MESSAGE(c.Open(fx.port(), "/chat", {{"X-User-Id", user}}), c.error());
    INFO("user " << user);
    CHECK(c.response().Header("X-Backend") == std::optional<std::string>(plain_backend));
    REQUIRE(c.SendText(user));
    WsMessage m = c.ReceiveMessage(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.payload == user);
    (plain_backend == "a" ? on_a : on_b)++;
  }
  CHECK(on_a > 0);
  CHECK(on_b > 0);
  CHECK(a.handshakes() == on_a);
  CHECK(b.handshakes() == on_b);
}

TEST_CASE("e2e: websocket: a refused upgrade is an ordinary answer, and the connection closes after it") {
  Fixture fx;
  WsEchoBackend ws("ws");
  ws.set_refuse_upgrades(403);
  REQUIRE(ws.Start());
  fx.AddBackend("ws", ws.url());
  REQUIRE(fx.StartServe());
  WsClient c;
  CHECK_FALSE(c.Open(fx.port(), "/live"));
  CHECK(c.status() == 403);
  CHECK(c.response().Header("Upgrade") == std::nullopt);
  auto lines = fx.StopAndReadLog();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["status"] == 403);
}

TEST_CASE("e2e: websocket: --tunnel-idle-s closes a quiet tunnel; traffic keeps one open") {
  Fixture fx;
  WsEchoBackend ws("ws");
  REQUIRE(ws.Start());
  fx.AddBackend("ws", ws.url());
  REQUIRE(fx.StartServe({"--tunnel-idle-s", "1"}));
  WsClient busy, quiet;
  REQUIRE_MESSAGE(busy.Open(fx.port(), "/busy"), busy.error());
  REQUIRE_MESSAGE(quiet.Open(fx.port(), "/quiet"), quiet.error());
  const int64_t t0 = NowMs();
  // The busy one talks every 300 ms for 2 s: never idle for a whole second.
  for (int i = 0; i < 7; ++i) {
    REQUIRE(busy.SendText("ping " + std::to_string(i)));
    WsMessage m = busy.ReceiveMessage(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  CHECK(quiet.WaitForClosed(kTimeoutMs));
  MESSAGE("quiet tunnel closed after " << NowMs() - t0 << " ms (--tunnel-idle-s 1)");
  REQUIRE(busy.SendText("still here"));
  WsMessage m = busy.ReceiveMessage(kTimeoutMs);
  REQUIRE_MESSAGE(m.ok, m.error);
  CHECK(m.payload == "still here");
}

TEST_CASE("e2e: websocket: SIGTERM ends open tunnels within the drain time, and each is logged") {
  Fixture fx;
  WsEchoBackend ws("ws");
  REQUIRE(ws.Start());
  fx.AddBackend("ws", ws.url());
  REQUIRE(fx.StartServe({"--drain-s", "2"}));
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < 3; ++i) {
    clients.push_back(std::make_unique<WsClient>());
    REQUIRE_MESSAGE(clients.back()->Open(fx.port(), "/t" + std::to_string(i)),
                    clients.back()->error());
    REQUIRE(clients.back()->SendText("hi"));
    REQUIRE(clients.back()->ReceiveMessage(kTimeoutMs).ok);
  }
  const int64_t t0 = NowMs();
  REQUIRE(kill(fx.serve()->pid(), SIGTERM) == 0);
  auto status = fx.serve()->Wait(kTimeoutMs);
  REQUIRE(status.has_value());
  CHECK(*status == 0);
  MESSAGE("serve exited " << NowMs() - t0 << " ms after SIGTERM with 3 open tunnels (--drain-s 2)");
  for (auto& c : clients) CHECK(c->WaitForClosed(kTimeoutMs));
  auto lines = fx.LogLines();
  CHECK(lines.size() == 3);
  for (const Json& l : lines) CHECK(l["status"] == 101);
}

TEST_CASE("e2e: websocket: a 101 that does not name websocket is a 502, not a tunnel") {
  ScriptBackend be([](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req)) return;
    conn.Send("HTTP/1.1 101 Switching Protocols\r\n\r\n");  // then it would speak HTTP again
    conn.WaitForPeerClose(kTimeoutMs);
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  WsClient c;
  CHECK_FALSE(c.Open(fx.port(), "/live"));
  CHECK(c.status() == 502);
}

TEST_CASE("e2e: websocket: a tunnel ends when either side closes, even toward a silent backend") {
  std::atomic<int> closed{0};
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req)) return;
    conn.Send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: " + WsAcceptKey(*req.Header("Sec-WebSocket-Key")) + "\r\n\r\n");
    // Silent from here on: it never answers the client's close.
    if (conn.WaitForPeerClose(kTimeoutMs)) ++closed;
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());  // --tunnel-idle-s left at 300
  WsClient c;
  REQUIRE_MESSAGE(c.Open(fx.port(), "/live"), c.error());
  c.Close();  // the client goes away
  const int64_t deadline = NowMs() + kTimeoutMs;  // guards a hang only
  while (closed.load() == 0 && NowMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(closed.load() == 1);
  auto lines = fx.StopAndReadLog();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["status"] == 101);
}

TEST_CASE("e2e: websocket: tunnels count against --max-connections") {
  Fixture fx;
  WsEchoBackend ws("ws");
  REQUIRE(ws.Start());
  fx.AddBackend("ws", ws.url());
  REQUIRE(fx.StartServe({"--max-connections", "2"}));
  WsClient one, two;
  REQUIRE_MESSAGE(one.Open(fx.port(), "/a"), one.error());
  REQUIRE_MESSAGE(two.Open(fx.port(), "/b"), two.error());
  RawClient third;
  REQUIRE(third.Connect(fx.port()));
  HttpResponse r = third.Get("/c");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 503);
  REQUIRE(one.SendClose(1000));
  CHECK(one.WaitForClosed(kTimeoutMs));
  // Once a tunnel ends, its place is free again (polled: the router frees
  // it when its session ends).
  bool served = false;
  const int64_t deadline = NowMs() + kTimeoutMs;
  while (!served && NowMs() < deadline) {
    RawClient again;
    if (again.Connect(fx.port())) served = again.Get("/d").status == 200;
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(served);
}

TEST_CASE("e2e: websocket: upgrade requests are not mirrored, and HTTP/1.0 cannot upgrade") {
  Fixture fx;
  WsEchoBackend ws("ws");
  RawBackend mirror("mirror");
  REQUIRE(ws.Start());
  REQUIRE(mirror.Start());
  fx.AddBackend("ws", ws.url());
  fx.AddBackend("mirror", mirror.url());
  fx.AddRoute("live", {"--to", "ws", "--mirror", "mirror"});
  REQUIRE(fx.StartServe());
  WsClient c;
  REQUIRE_MESSAGE(c.Open(fx.port(), "/live/ws"), c.error());
  REQUIRE(c.SendText("x"));
  REQUIRE(c.ReceiveMessage(kTimeoutMs).ok);
  REQUIRE(c.SendClose(1000));
  CHECK(c.WaitForClosed(kTimeoutMs));
  RawClient old;
  REQUIRE(old.Connect(fx.port()));
  REQUIRE(old.Send("GET /live/old HTTP/1.0\r\nHost: x\r\nConnection: upgrade\r\n"
                   "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n"));
  HttpResponse r = old.ReadFinal(false, kTimeoutMs);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);  // answered as a plain request
  CHECK(ws.handshakes() == 1);
  // Copies are made in order of the answers: once the plain GET's copy is
  // there, an upgrade's copy would be too.
  REQUIRE(mirror.WaitForRequests(1, kTimeoutMs));
  auto copies = mirror.requests();
  REQUIRE(copies.size() == 1);
  CHECK(copies[0].target == "/live/old");
  CHECK(copies[0].HeaderCount("Upgrade") == 0);
}

TEST_CASE("e2e: websocket: a client that reads late still gets every byte the backend sent, in order") {
  // After the 101 the backend sends 64 MiB at once; the client reads none of
  // it until the backend's sends are stuck behind the router's (the router
  // cannot pass the bytes on), then reads all of it.
  const std::string payload = Blob(64u << 20);
  std::atomic<size_t> pushed{0};
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req)) return;
    conn.Send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              "Sec-WebSocket-Accept: " + WsAcceptKey(req.Header("Sec-WebSocket-Key").value_or("")) +
              "\r\n\r\n");
    for (size_t at = 0; at < payload.size(); at += 64 * 1024) {
      if (!conn.Send(payload.substr(at, 64 * 1024))) return;
      pushed = at + 64 * 1024;
    }
    conn.WaitForPeerClose(kHangGuardMs);
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("ws", be.url());
  REQUIRE(fx.StartServe());

  int fd = ConnectLoopbackWithin(fx.port(), kTimeoutMs);
  REQUIRE(fd >= 0);
  REQUIRE(SendAll(fd, "GET /live HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                      "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"));
  // The backend's progress stops short of the end: everything between is full.
  size_t last = 0;
  int same = 0;
  const int64_t deadline = NowMs() + kHangGuardMs;
  while (same < 10 && NowMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const size_t now = pushed.load();
    same = now > 0 && now == last ? same + 1 : 0;
    last = now;
  }
  CHECK(pushed.load() < payload.size());
  std::string got;
  const std::atomic<bool> never{false};
  const size_t head_end_guard = 4096;
  size_t head_len = 0;
  while (NowMs() < deadline) {
    if (head_len == 0) {
      size_t he = got.find("\r\n\r\n");
      if (he != std::string::npos) head_len = he + 4;
    }
    if (head_len > 0 && got.size() >= head_len + payload.size()) break;
    if (head_len == 0 && got.size() > head_end_guard) break;  // no head: fails below
    if (RecvMore(fd, &got, never, deadline) <= 0) break;
  }
  close(fd);
  REQUIRE(head_len > 0);
  CHECK(got.rfind("HTTP/1.1 101 ", 0) == 0);
  REQUIRE(got.size() == head_len + payload.size());
  CHECK(got.compare(head_len, payload.size(), payload) == 0);
  auto lines = fx.StopAndReadLog();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["status"] == 101);
  CHECK(lines[0]["bytes_out"].get<uint64_t>() == got.size());
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
