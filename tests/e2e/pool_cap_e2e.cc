// The pool of idle backend connections is bounded: one worker keeps at most
// 256 per backend instance; an answered connection beyond that is closed
// instead of kept (a burst cannot leave thousands of idle sockets behind).
#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "script_backend.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: one worker keeps at most 256 idle connections to a backend") {
  constexpr int kClients = 260;
  std::atomic<bool> release{false};
  // Every connection answers its requests only once released, keep-alive.
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    while (conn.ReadRequest(&req, /*head_only=*/false, kHangGuardMs)) {
      while (!release && !conn.stopping()) conn.Sleep(5);
      if (!conn.Send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) return;
    }
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe({"--threads", "1"}));

  std::vector<std::unique_ptr<RawClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<RawClient>());
    REQUIRE(clients.back()->Connect(fx.port()));
    REQUIRE(clients.back()->Send("GET /" + std::to_string(i) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  // All requests in flight at once: one backend connection each.
  REQUIRE(PollUntil([&] { return be.request_count() == static_cast<size_t>(kClients); }));
  CHECK(be.open_connections() == kClients);
  release = true;
  for (auto& c : clients) {
    HttpResponse r = c->ReadFinal(false, kHangGuardMs);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.body == "ok");
  }
  // The router closes those it cannot keep.
  CHECK(PollUntil([&] { return be.open_connections() == 256; }));
  // The kept ones serve the next requests.
  HttpResponse again = clients.front()->Get("/again");
  REQUIRE_MESSAGE(again.ok, again.error);
  CHECK(again.body == "ok");
  CHECK(be.connections_accepted() == kClients);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
