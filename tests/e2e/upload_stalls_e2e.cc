// A request body on its way to a backend that stops reading it, answers in
// the middle of it, or goes away before it is all sent. Each must end in one
// honest answer to the client (the backend's own, a 502 or a 504), the
// connection closed after it, and a decision-log line; never a hang.
#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "script_backend.h"

namespace strangler {
namespace e2e {
namespace {

// Polls until the bytes the backend leaves unread stop growing: the
// router's sends to it are blocked on a full connection. False on a hang
// (the cap is a hang guard) or when the backend stops.
bool WaitUntilRouterBlocked(ScriptConn& conn) {
  const int64_t deadline = NowMs() + kHangGuardMs;
  size_t last = 0;
  int same = 0;
  while (NowMs() < deadline && !conn.stopping()) {
    const size_t n = conn.Unread();
    same = n > 0 && n == last ? same + 1 : 0;
    if (same >= 10) return true;
    last = n;
    conn.Sleep(20);
  }
  return false;
}

// Sends a POST head and `size` bytes of body on `c` from its own thread,
// stopping when the router no longer takes them.
std::thread SendUpload(RawClient* c, const std::string& target, size_t size) {
  return std::thread([c, target, size] {
    if (!c->Send("POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                 std::to_string(size) + "\r\n\r\n")) {
      return;
    }
    const std::string chunk(64 * 1024, 'u');
    for (size_t sent = 0; sent < size; sent += chunk.size()) {
      if (!c->Send(chunk)) break;
    }
  });
}

constexpr size_t kUpload = 64u << 20;  // far more than the sockets between hold

TEST_CASE("e2e: upload to a backend that stops reading: 504 after its --timeout-ms, or its late 100 or early answer") {
  std::atomic<bool> blocked{false}, release{false};
  // Reads the head, then none of the body. /early answers 413 once the
  // router's sends are blocked; /stall never answers.
  auto script = [&](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req, /*head_only=*/true)) return;
    if (!WaitUntilRouterBlocked(conn)) return;
    blocked = true;
    if (req.target == "/early" || req.target == "/early-reset") {
      conn.Send("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\n"
                "too large");
      if (req.target == "/early-reset") {
        conn.Reset();  // its answer is in the router's socket before the reset
        return;
      }
    } else if (req.target == "/continue") {
      // Late, but a 100: the router relays it and goes on sending the body.
      conn.Send("HTTP/1.1 100 Continue\r\n\r\n");
      std::string body;
      if (!conn.ReadBody(kUpload, &body, kHangGuardMs)) return;
      const std::string said = "got " + std::to_string(body.size()) + " bytes";
      conn.Send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(said.size()) + "\r\n\r\n" +
                said);
    } else {
      // /half-close: closes its side without an answer, still not reading.
      if (req.target == "/half-close") conn.ShutdownWrite();
      while (!release && !conn.stopping()) conn.Sleep(10);
    }
    conn.CloseGracefully();
  };
  ScriptBackend stalls(script), early(script);
  REQUIRE(stalls.Start());
  REQUIRE(early.Start());
  Fixture fx;
  fx.AddBackend("early", early.url(), {"--default"});
  fx.AddBackend("stalls", stalls.url(), {"--timeout-ms", "1000"});
  fx.AddRoute("stall", {"--to", "stalls", "--path", "/stall"});
  REQUIRE(fx.StartServe());

  SUBCASE("the backend never answers: 504, naming its timeout") {
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    std::thread sender = SendUpload(&c, "/stall", kUpload);
    HttpResponse r = c.ReadFinal(false, kHangGuardMs);
    release = true;
    sender.join();
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 504);
    CHECK(r.body.find("backend 'stalls' did not answer within 1000 ms") != std::string::npos);
    CHECK(r.Header("Connection") == std::optional<std::string>("close"));
    auto lines = fx.StopAndReadLog();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["status"] == 504);
    CHECK(lines[0]["backend"] == "stalls");
    CHECK(lines[0]["path"] == "/stall");
  }
  SUBCASE("the backend closes its side without answering while the router waits to send: 502") {
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    std::thread sender = SendUpload(&c, "/half-close", kUpload);
    HttpResponse r = c.ReadFinal(false, kHangGuardMs);
    release = true;
    sender.join();
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 502);
    CHECK(r.body.find("backend 'early' failed before answering") != std::string::npos);
    CHECK(r.Header("Connection") == std::optional<std::string>("close"));
    auto lines = fx.StopAndReadLog();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["status"] == 502);
  }
  SUBCASE("a 100 Continue while the router waits to send: relayed, and the body goes on") {
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    std::thread sender = SendUpload(&c, "/continue", kUpload);
    HttpResponse interim = c.ReadResponse(false, kHangGuardMs);
    HttpResponse r = c.ReadFinal(false, kHangGuardMs);
    sender.join();
    REQUIRE_MESSAGE(interim.ok, interim.error);
    CHECK(interim.status == 100);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(blocked);
    CHECK(r.status == 200);
    CHECK(r.body == "got " + std::to_string(kUpload) + " bytes");
    auto lines = fx.StopAndReadLog();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["status"] == 200);
    CHECK(lines[0]["bytes_in"].get<uint64_t>() > kUpload);
  }
  SUBCASE("the backend answers while the router waits to send: its answer is relayed") {
    std::string early = "/early";
    SUBCASE("then closes") {}
    SUBCASE("then resets") { early = "/early-reset"; }
    INFO("target " << early);
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    std::thread sender = SendUpload(&c, early, kUpload);
    HttpResponse r = c.ReadFinal(false, kHangGuardMs);
    sender.join();
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(blocked);
    CHECK(r.status == 413);
    CHECK(r.body == "too large");
    CHECK(r.Header("Connection") == std::optional<std::string>("close"));
    auto lines = fx.StopAndReadLog();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0]["status"] == 413);
    CHECK(lines[0]["backend"] == "early");
  }
}

TEST_CASE("e2e: a backend that answers or leaves before the rest of the body comes") {
  // Each acts on the head alone; the client holds back the rest of its body
  // until it has the router's answer.
  ScriptBackend be([](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req, /*head_only=*/true)) return;
    if (req.target == "/eof") {
      conn.Send("HTTP/1.1 200 OK\r\n\r\nearly");  // ends where the connection does
    } else if (req.target == "/cut" || req.target == "/reset") {
      conn.Send("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nabc");
      if (req.target == "/reset") {
        conn.Reset();
        return;
      }
    } else if (req.target == "/big-head") {
      conn.Send("HTTP/1.1 200 OK\r\nX-Big: " + std::string(100 * 1024, 'h') + "\r\n");
      conn.WaitForPeerClose(kHangGuardMs);
      return;
    }  // "/gone": no answer at all
    conn.CloseGracefully();
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  // Answer heads are bounded by 4 x --max-header-kb (the buffer starts at 64 KiB).
  REQUIRE(fx.StartServe({"--max-header-kb", "1"}));

  struct Case {
    std::string target;
    int status;         // what the client gets; 0: a cut answer
    std::string body;   // in the answer (a substring for the router's own)
  };
  for (const Case& k : std::vector<Case>{
           {"/eof", 200, "early"},
           {"/gone", 502, "backend 'be' failed before answering"},
           {"/big-head", 502, "backend 'be' failed before answering"},
           {"/cut", 0, ""},
           {"/reset", 0, ""},
       }) {
    INFO("target " << k.target);
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    REQUIRE(c.Send("POST " + k.target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc"));
    HttpResponse r = c.ReadFinal(false, kHangGuardMs);
    if (k.status == 0) {
      // Part of the answer went out, then the backend left: the only honest
      // signal is the connection closing before the answer is whole.
      CHECK_FALSE(r.ok);
      CHECK(r.status == 200);
      CHECK(c.WaitForClose(kCloseWaitMs));
      continue;
    }
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == k.status);
    if (k.status == 200) {
      CHECK(r.body == k.body);
    } else {
      CHECK_MESSAGE(r.body.find(k.body) != std::string::npos, r.body);
    }
    CHECK(r.Header("Connection") == std::optional<std::string>("close"));
    CHECK(c.WaitForClose(kCloseWaitMs));
  }
  auto by_path = std::map<std::string, Json>();
  for (const Json& line : fx.StopAndReadLog()) by_path[line["path"].get<std::string>()] = line;
  REQUIRE(by_path.size() == 5);
  CHECK(by_path["/eof"]["status"] == 200);
  CHECK(by_path["/gone"]["status"] == 502);
  CHECK(by_path["/big-head"]["status"] == 502);
  for (const auto& [path, line] : by_path) CHECK(line["backend"] == "be");
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
