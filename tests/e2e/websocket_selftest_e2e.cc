// The WebSocket helpers checked against each other and against RFC 6455's
// own examples (WsClient straight to WsEchoBackend, no router), so a failing
// WebSocket e2e test points at the router, not the helpers.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "websocket.h"

namespace strangler {
namespace e2e {
namespace {

constexpr int kTimeoutMs = 5000;  // guards against hangs only
const char kRfcKey[] = "dGhlIHNhbXBsZSBub25jZQ==";
// RFC 6455 1.3 (SHA-1 b3 7a 4f 2c ...); the GUID ends C5AB0DC85B11.
const char kRfcAccept[] = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::string Bytes(std::initializer_list<int> v) {
  std::string s;
  for (int b : v) s += static_cast<char>(b);
  return s;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (char& c : s) c = static_cast<char>(rng() & 0xff);
  return s;
}

TEST_CASE("e2e: websocket helpers: frames are encoded as in RFC 6455 5.7") {
  struct Case {
    const char* what;
    WsOpcode op;
    std::string payload;
    std::optional<uint32_t> mask;
    std::string want_prefix;  // header (and, for short frames, the whole frame)
    size_t want_size;
  };
  const std::vector<Case> cases = {
      {"unmasked Hello", WsOpcode::kText, "Hello", std::nullopt,
       Bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), 7},
      {"masked Hello", WsOpcode::kText, "Hello", 0x37fa213d,
       Bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}), 11},
      {"unmasked ping Hello", WsOpcode::kPing, "Hello", std::nullopt,
       Bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}), 7},
      {"125 bytes: 7-bit length", WsOpcode::kBinary, std::string(125, 'x'), std::nullopt,
       Bytes({0x82, 0x7d}), 127},
      {"126 bytes: 16-bit length", WsOpcode::kBinary, std::string(126, 'x'), std::nullopt,
       Bytes({0x82, 0x7e, 0x00, 0x7e}), 130},
      {"256 bytes", WsOpcode::kBinary, std::string(256, 'x'), std::nullopt,
       Bytes({0x82, 0x7e, 0x01, 0x00}), 260},
      {"65535 bytes masked", WsOpcode::kBinary, std::string(65535, 'x'), 0u,
       Bytes({0x82, 0xfe, 0xff, 0xff, 0, 0, 0, 0}), 65543},
      {"64 KiB: 64-bit length", WsOpcode::kBinary, std::string(65536, 'x'), std::nullopt,
       Bytes({0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}), 65546},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    std::string f = WsEncodeFrame(c.op, c.payload, WsFin::kFinal, c.mask);
    CHECK(f.size() == c.want_size);
    CHECK(Printable(f.substr(0, c.want_prefix.size())) == Printable(c.want_prefix));
  }
  // FIN clear: the first fragment of RFC 5.7's "Hel" + "lo".
  CHECK(Printable(WsEncodeFrame(WsOpcode::kText, "Hel", WsFin::kMore, std::nullopt)) ==
        Printable(Bytes({0x01, 0x03, 0x48, 0x65, 0x6c})));
  CHECK(Printable(WsEncodeFrame(WsOpcode::kContinuation, "lo", WsFin::kFinal, std::nullopt)) ==
        Printable(Bytes({0x80, 0x02, 0x6c, 0x6f})));
}

TEST_CASE("e2e: websocket helpers: the handshake uses the RFC accept key and arrives whole") {
  CHECK(WsAcceptKey(kRfcKey) == kRfcAccept);

  WsEchoBackend be("echo-a");
  REQUIRE(be.Start());
  WsClient c;
  REQUIRE_MESSAGE(c.Open(be.port(), "/chat?room=1",
                         {{"Host", "example.test"},
                          {"X-User-Id", "42"},
                          {"Cookie", "a=b; c=d"},
                          {"Sec-WebSocket-Key", kRfcKey}},
                         kTimeoutMs),
                  c.error());
  CHECK(c.status() == 101);
  CHECK(c.accept_ok());
  CHECK(c.key() == kRfcKey);
  CHECK(c.response().status_line == "HTTP/1.1 101 Switching Protocols");
  CHECK(c.response().Header("Sec-WebSocket-Accept").value_or("") == kRfcAccept);
  CHECK(c.response().Header("Upgrade").value_or("") == "websocket");
  CHECK(c.response().Header("Connection").value_or("") == "Upgrade");
  CHECK(c.response().Header("X-Backend").value_or("") == "echo-a");
  CHECK(c.handshake_bytes_received() == c.response().raw_head.size() + 4);

  CHECK(be.handshakes() == 1);
  CHECK(be.open_connections() == 1);
  auto ups = be.upgrade_requests();
  REQUIRE(ups.size() == 1);
  const RecordedRequest& r = ups[0];
  CAPTURE(Printable(r.raw));
  CHECK(r.request_line == "GET /chat?room=1 HTTP/1.1");
  CHECK(r.target == "/chat?room=1");
  CHECK(r.Header("Host").value_or("") == "example.test");
  CHECK(r.Header("Upgrade").value_or("") == "websocket");
  CHECK(r.Header("Connection").value_or("") == "Upgrade");
  CHECK(r.Header("Sec-WebSocket-Key").value_or("") == kRfcKey);
  CHECK(r.Header("Sec-WebSocket-Version").value_or("") == "13");
  CHECK(r.Header("X-User-Id").value_or("") == "42");
  CHECK(r.Header("Cookie").value_or("") == "a=b; c=d");
  CHECK(r.raw.size() == c.handshake_bytes_sent());
  CHECK(r.raw.substr(r.raw.size() - 4) == "\r\n\r\n");
  CHECK(r.connection == 1);

  // Generated keys: 16 bytes in base64, fresh per client, reproducible by seed.
  WsClient d, e, s1(7), s2(7);
  REQUIRE_MESSAGE(d.Open(be.port()), d.error());
  REQUIRE_MESSAGE(e.Open(be.port()), e.error());
  REQUIRE_MESSAGE(s1.Open(be.port()), s1.error());
  REQUIRE_MESSAGE(s2.Open(be.port()), s2.error());
  CHECK(d.key().size() == 24);
  CHECK(d.key().substr(22) == "==");
  CHECK(d.key() != e.key());
  CHECK(s1.key() == s2.key());
  CHECK(be.handshakes() == 5);
  CHECK(be.upgrade_requests()[1].Header("Host").value_or("") ==
        "127.0.0.1:" + std::to_string(be.port()));
}

TEST_CASE("e2e: websocket helpers: a text message is echoed and every byte is counted") {
  WsEchoBackend be;
  REQUIRE(be.Start());
  WsClient c;
  REQUIRE_MESSAGE(c.Open(be.port()), c.error());
  const std::vector<std::string> texts = {"hello", "", "h\xc3\xa9llo \xe2\x82\xac"};
  uint64_t payload_bytes = 0;
  for (const std::string& text : texts) {
    payload_bytes += text.size();
    CAPTURE(Printable(text));
    REQUIRE(c.SendText(text));
    WsMessage m = c.ReceiveMessage(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.opcode == WsOpcode::kText);
    CHECK(m.payload == text);
    CHECK(m.frames == 1);
  }
  CHECK(be.messages_echoed() == 3);
  // Masked frames out (6-byte headers), unmasked echoes back (2-byte headers).
  CHECK(c.bytes_sent() == c.handshake_bytes_sent() + 3 * 6 + payload_bytes);
  CHECK(c.bytes_received() == c.handshake_bytes_received() + 3 * 2 + payload_bytes);
  REQUIRE(c.SendClose(1000));
  WsMessage close = c.ReadClose(kTimeoutMs);
  REQUIRE_MESSAGE(close.ok, close.error);
  REQUIRE(c.WaitForClosed(kTimeoutMs));
  REQUIRE(be.WaitForClosed(1, kTimeoutMs));
  auto s = be.sessions();
  REQUIRE(s.size() == 1);
  CHECK(s[0].bytes_in == c.bytes_sent() - c.handshake_bytes_sent());
  CHECK(s[0].bytes_out == c.bytes_received() - c.handshake_bytes_received());
  CHECK(s[0].frames_in == 4);
  CHECK(s[0].messages_echoed == 3);
  CHECK(be.bytes_received() == c.bytes_sent());
  CHECK(be.bytes_sent() == c.bytes_received());
}

TEST_CASE("e2e: websocket helpers: binary messages up to 4 MiB are echoed intact") {
  WsEchoBackend be;
  REQUIRE(be.Start());
  WsClient c;
  REQUIRE_MESSAGE(c.Open(be.port()), c.error());
  const std::vector<size_t> sizes = {0, 1, 125, 126, 65535, 65536, 1 << 20, 4 << 20};
  for (size_t size : sizes) {
    CAPTURE(size);
    std::string payload = RandomBytes(size, size);
    REQUIRE(c.SendBinary(payload));
    WsMessage m = c.ReceiveMessage(kTimeoutMs * 2);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.opcode == WsOpcode::kBinary);
    CHECK(m.frames == 1);
    CHECK(m.payload.size() == size);
    CHECK(m.payload == payload);
  }
  CHECK(be.messages_echoed() == static_cast<int>(sizes.size()));
}

TEST_CASE("e2e: websocket helpers: a fragmented message is reassembled and echoed as one frame") {
  WsEchoBackend be;
  REQUIRE(be.Start());
  WsClient c;
  REQUIRE_MESSAGE(c.Open(be.port()), c.error());

  std::string text(1000, 'a');
  for (size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>('a' + i % 26);
  REQUIRE(c.SendText(text, 100));  // 10 frames
  WsMessage m = c.ReceiveMessage(kTimeoutMs);
  REQUIRE_MESSAGE(m.ok, m.error);
  CHECK(m.opcode == WsOpcode::kText);
  CHECK(m.frames == 1);
  CHECK(m.payload == text);

  std::string bin = RandomBytes(300000, 3);
  REQUIRE(c.SendBinary(bin, 70000));  // 5 frames, 64-bit lengths
  m = c.ReceiveMessage(kTimeoutMs);
  REQUIRE_MESSAGE(m.ok, m.error);
  CHECK(m.opcode == WsOpcode::kBinary);
  CHECK(m.payload == bin);

  // A ping between fragments is answered at once (RFC 6455 5.4).
  REQUIRE(c.SendFrame(WsOpcode::kText, "Hel", WsFin::kMore));
  REQUIRE(c.SendPing("mid"));
  REQUIRE(c.SendFrame(WsOpcode::kContinuation, "lo", WsFin::kFinal));
  WsMessage pong = c.ReceiveMessage(kTimeoutMs);
  REQUIRE_MESSAGE(pong.ok, pong.error);
  CHECK(pong.opcode == WsOpcode::kPong);
  CHECK(pong.payload == "mid");
  m = c.ReceiveMessage(kTimeoutMs);
  REQUIRE_MESSAGE(m.ok, m.error);
  CHECK(m.payload == "Hello");

  CHECK(be.messages_echoed() == 3);
  auto s = be.sessions();
  REQUIRE(s.size() == 1);
  CHECK(s[0].frames_in == 10 + 5 + 3);
}

TEST_CASE("e2e: websocket helpers: ping is answered with pong") {
  WsEchoBackend be;
  REQUIRE(be.Start());
  WsClient c;
  REQUIRE_MESSAGE(c.Open(be.port()), c.error());
  for (const std::string& payload : {std::string(), std::string("ping-1"), std::string(125, 'p')}) {
    CAPTURE(payload.size());
    REQUIRE(c.SendPing(payload));
    WsMessage m = c.ReceiveMessage(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.opcode == WsOpcode::kPong);
    CHECK(m.payload == payload);
  }
  CHECK(be.messages_echoed() == 0);
}

TEST_CASE("e2e: websocket helpers: close is echoed with its code and the backend hangs up") {
  struct Case {
    const char* what;
    uint16_t send;
    std::string reason;
    uint16_t want;
  };
  const std::vector<Case> cases = {
      {"1000 normal", 1000, "bye", 1000},
      {"1001 going away", 1001, "", 1001},
      {"no code", 0, "", 1005},
  };
  WsEchoBackend be;
  REQUIRE(be.Start());
  int n = 0;
  for (const Case& k : cases) {
    CAPTURE(k.what);
    WsClient c;
    REQUIRE_MESSAGE(c.Open(be.port()), c.error());
    REQUIRE(c.SendText("before"));
    REQUIRE(c.SendClose(k.send, k.reason));
    WsMessage m = c.ReadClose(kTimeoutMs);  // skips the echo of "before"
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.opcode == WsOpcode::kClose);
    CHECK(m.close_code == k.want);
    CHECK(m.payload.empty());  // the backend echoes the code only
    CHECK(c.WaitForClosed(kTimeoutMs));
    CHECK(!c.connected());
    REQUIRE(be.WaitForClosed(++n, kTimeoutMs));
    WsSession s = be.sessions().back();
    CHECK(s.end == WsEnd::kCloseHandshake);
    CHECK(s.received_close == k.want);
    CHECK(s.sent_close == k.want);
  }
  CHECK(be.open_connections() == 0);
  CHECK(be.messages_echoed() == 3);
}

TEST_CASE("e2e: websocket helpers: protocol violations get close 1002") {
  auto masked = [](WsOpcode op, const std::string& p, WsFin fin) {
    return WsEncodeFrame(op, p, fin, 0x11223344u);
  };
  std::string rsv = masked(WsOpcode::kText, "x", WsFin::kFinal);
  rsv[0] = static_cast<char>(rsv[0] | 0x40);
  struct Case {
    const char* what;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"unmasked text frame", WsEncodeFrame(WsOpcode::kText, "x", WsFin::kFinal, std::nullopt)},
      {"RSV1 set without an extension", rsv},
      {"reserved opcode 3", masked(static_cast<WsOpcode>(3), "x", WsFin::kFinal)},
      {"continuation outside a message", masked(WsOpcode::kContinuation, "x", WsFin::kFinal)},
      {"fragmented ping", masked(WsOpcode::kPing, "x", WsFin::kMore)},
      {"ping over 125 bytes", masked(WsOpcode::kPing, std::string(126, 'x'), WsFin::kFinal)},
      {"new message inside a fragmented one",
       masked(WsOpcode::kText, "a", WsFin::kMore) + masked(WsOpcode::kText, "b", WsFin::kFinal)},
  };
  WsEchoBackend be;
  REQUIRE(be.Start());
  int n = 0;
  for (const Case& k : cases) {
    CAPTURE(k.what);
    WsClient c;
    REQUIRE_MESSAGE(c.Open(be.port()), c.error());
    REQUIRE(c.SendRaw(k.bytes));
    WsMessage m = c.ReceiveMessage(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.opcode == WsOpcode::kClose);
    CHECK(m.close_code == 1002);
    CHECK(c.WaitForClosed(kTimeoutMs));
    REQUIRE(be.WaitForClosed(++n, kTimeoutMs));
    WsSession s = be.sessions().back();
    CHECK(s.end == WsEnd::kProtocolError);
    CHECK(s.sent_close == 1002);
    CHECK(s.received_close == 0);
  }
  CHECK(be.messages_echoed() == 0);
}

TEST_CASE("e2e: websocket helpers: refused and invalid upgrades stay HTTP") {
  WsEchoBackend be("gate");
  REQUIRE(be.Start());
  be.set_refuse_upgrades(403);
  WsClient c;
  REQUIRE(c.Connect(be.port()));
  CHECK(!c.Handshake("/ws", {{"X-User-Id", "7"}}, kTimeoutMs));
  CHECK(c.status() == 403);
  CHECK(c.response().ok);
  CHECK(c.response().Header("X-Backend").value_or("") == "gate");
  CHECK(c.response().body == "gate refused the upgrade");
  CHECK(be.handshakes() == 0);
  REQUIRE(be.upgrade_requests().size() == 1);
  CHECK(be.upgrade_requests()[0].Header("X-User-Id").value_or("") == "7");

  // The refusal kept the connection: the same one can upgrade once allowed.
  be.set_refuse_upgrades(0);
  REQUIRE_MESSAGE(c.Handshake("/ws", {}, kTimeoutMs), c.error());
  REQUIRE(c.SendText("now"));
  WsMessage m = c.ReceiveMessage(kTimeoutMs);
  REQUIRE_MESSAGE(m.ok, m.error);
  CHECK(m.payload == "now");
  CHECK(be.connections_accepted() == 1);

  struct Case {
    const char* what;
    Headers headers;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"no upgrade token in Connection", {{"Connection", "keep-alive"}}, "Connection"},
      {"version 8", {{"Sec-WebSocket-Version", "8"}}, "Sec-WebSocket-Version"},
      {"short key", {{"Sec-WebSocket-Key", "c2hvcnQ="}}, "Sec-WebSocket-Key"},
  };
  for (const Case& k : cases) {
    CAPTURE(k.what);
    WsClient bad;
    REQUIRE(bad.Connect(be.port()));
    CHECK(!bad.Handshake("/ws", k.headers, kTimeoutMs));
    CHECK(bad.status() == 400);
    CHECK(bad.response().body.find(k.why) != std::string::npos);
  }
  CHECK(be.handshakes() == 1);
}

TEST_CASE("e2e: websocket helpers: plain HTTP requests get a keep-alive 200") {
  WsEchoBackend be;
  be.set_name("blue");
  REQUIRE(be.Start());
  RawClient c;
  REQUIRE(c.Connect(be.port()));
  HttpResponse r = c.Get("/plain", {}, kTimeoutMs);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "blue");
  CHECK(r.Header("X-Backend").value_or("") == "blue");
  r = c.Request("POST", "/form", {}, "a=1", kTimeoutMs);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  CHECK(be.connections_accepted() == 1);
  auto reqs = be.requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].request_line == "GET /plain HTTP/1.1");
  CHECK(reqs[1].body == "a=1");
  CHECK(be.upgrade_requests().empty());
  CHECK(be.handshakes() == 0);
}

TEST_CASE("e2e: websocket helpers: the client answers pings and checks the server's frames") {
  // A scripted server: the 101, then a ping, a text message and a masked frame.
  RawBackend raw("scripted");
  REQUIRE(raw.Start());
  const std::string head101 =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
  raw.set_response(head101 + "Sec-WebSocket-Accept: " + kRfcAccept + "\r\n\r\n" +
                   WsEncodeFrame(WsOpcode::kPing, "anyone?", WsFin::kFinal, std::nullopt) +
                   WsEncodeFrame(WsOpcode::kText, "after", WsFin::kFinal, std::nullopt) +
                   WsEncodeFrame(WsOpcode::kText, "masked", WsFin::kFinal, 0x01020304u));
  WsClient c;
  REQUIRE_MESSAGE(c.Open(raw.port(), "/", {{"Sec-WebSocket-Key", kRfcKey}}, kTimeoutMs), c.error());
  WsMessage m = c.ReceiveMessage(kTimeoutMs);
  REQUIRE_MESSAGE(m.ok, m.error);
  CHECK(m.payload == "after");
  CHECK(c.pings_answered() == 1);
  CHECK(c.bytes_sent() == c.handshake_bytes_sent() + 6 + 7);  // the masked pong
  m = c.ReceiveMessage(kTimeoutMs);
  CHECK(!m.ok);
  CHECK(m.error.find("masked") != std::string::npos);

  // A 101 with the wrong Sec-WebSocket-Accept is not an upgrade.
  raw.set_response(head101 + "Sec-WebSocket-Accept: " + WsAcceptKey("other") + "\r\n\r\n");
  WsClient d;
  REQUIRE(d.Connect(raw.port()));
  CHECK(!d.Handshake("/", {{"Sec-WebSocket-Key", kRfcKey}}, kTimeoutMs));
  CHECK(d.status() == 101);
  CHECK(!d.accept_ok());
  raw.Stop();
}

TEST_CASE("e2e: websocket helpers: Stop ends open sessions and joins") {
  WsEchoBackend be;
  REQUIRE(be.Start());
  WsClient a, b;
  REQUIRE_MESSAGE(a.Open(be.port()), a.error());
  REQUIRE_MESSAGE(b.Open(be.port()), b.error());
  CHECK(be.open_connections() == 2);
  be.Stop();
  CHECK(a.WaitForClosed(kTimeoutMs));
  CHECK(b.WaitForClosed(kTimeoutMs));
  CHECK(be.open_connections() == 0);
  for (const WsSession& s : be.sessions()) CHECK(s.end == WsEnd::kStopped);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
