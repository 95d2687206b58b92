// Shutdown: SIGTERM stops accepting, finishes requests in flight, flushes the decision log
// (one complete line per request) and exits 0.
#include <unistd.h>

#include <csignal>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "wire.h"

namespace strangler {
namespace e2e {
namespace {

struct Sent {
  std::string rid;
  std::string method;
  std::string path;
  std::string backend;
  std::string reason;
  size_t body_in = 0;
  size_t body_out = 0;
};

// RFC 3339 UTC with milliseconds: "2026-11-28T04:13:55.123Z".
bool IsRfc3339Ms(const std::string& ts) {
  const std::string shape = "dddd-dd-ddTdd:dd:dd.dddZ";
  if (ts.size() != shape.size()) return false;
  for (size_t i = 0; i < shape.size(); ++i) {
    bool ok = shape[i] == 'd' ? isdigit(static_cast<unsigned char>(ts[i])) != 0 : ts[i] == shape[i];
    if (!ok) return false;
  }
  return true;
}

void CheckLogLine(const Json& j, const Sent& s) {
  INFO("log line: " << j.dump());
  for (const char* f :
       {"ts", "request_id", "method", "path", "route", "backend", "reason", "bucket", "status",
        "upstream_ms", "total_ms", "bytes_in", "bytes_out", "client", "ruleset"}) {
    INFO("field " << f);
    CHECK(j.contains(f));
  }
  REQUIRE(j.contains("ts"));
  REQUIRE(j["ts"].is_string());
  CHECK(IsRfc3339Ms(j["ts"].get<std::string>()));
  CHECK(j["request_id"] == s.rid);
  CHECK(j["method"] == s.method);
  CHECK(j["path"] == s.path);
  CHECK(j["backend"] == s.backend);
  CHECK(j["reason"] == s.reason);
  if (s.reason == "default") {
    CHECK(j["route"].is_null());
  } else {
    CHECK(j["route"].is_string());
  }
  if (s.reason == "split") {
    CHECK(j["bucket"].is_number_integer());
    if (j["bucket"].is_number_integer()) {
      CHECK(j["bucket"].get<int>() >= 0);
      CHECK(j["bucket"].get<int>() < 10000);
    }
  } else {
    CHECK(j["bucket"].is_null());
  }
  CHECK(j["status"] == 200);
  for (const char* f : {"upstream_ms", "total_ms"}) {
    INFO("field " << f);
    CHECK(j[f].is_number());
    if (j[f].is_number()) CHECK(j[f].get<double>() >= 0);
  }
  CHECK(j["bytes_in"].is_number_integer());
  CHECK(j["bytes_out"].is_number_integer());
  if (j["bytes_in"].is_number_integer())
    CHECK(j["bytes_in"].get<int64_t>() >= static_cast<int64_t>(s.body_in));
  if (j["bytes_out"].is_number_integer())
    CHECK(j["bytes_out"].get<int64_t>() >= static_cast<int64_t>(s.body_out));
  CHECK(j["client"] == "127.0.0.1");
  CHECK(j["ruleset"].is_number_integer());
}

TEST_CASE("e2e: SIGTERM exits 0 with one complete decision log line per request") {
  Fixture fx;
  RawBackend mono("mono"), svc("svc");
  REQUIRE(mono.Start());
  REQUIRE(svc.Start());
  fx.AddBackend("mono", mono.url());
  fx.AddBackend("svc", svc.url());
  fx.AddRoute("orders", {"--to", "svc", "--path", "/orders"});
  fx.AddRoute("cart",
              {"--to", "svc", "--path", "/cart", "--percent", "50", "--sticky", "header:X-User"});
  REQUIRE(fx.StartServe());

  std::vector<Sent> sent;
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (int i = 0; i < 30; ++i) {
    Sent s;
    s.rid = "term-" + std::to_string(i);
    Headers h = {{"X-Request-Id", s.rid}};
    std::string body;
    switch (i % 3) {
      case 0:
        s.method = "GET";
        s.path = "/legacy/" + std::to_string(i);
        s.reason = "default";
        break;
      case 1:
        s.method = "POST";
        s.path = "/orders/" + std::to_string(i);
        s.reason = "route";
        body = "{\"n\":" + std::to_string(i) + "}";
        break;
      default:
        s.method = "GET";
        s.path = "/cart";
        s.reason = "split";
        h.emplace_back("X-User", "u" + std::to_string(i));
        break;
    }
    HttpResponse r = c.Request(s.method, s.path, h, body);
    REQUIRE_MESSAGE(r.ok, s.rid << ": " << r.error);
    REQUIRE(r.status == 200);
    s.backend = r.Header("X-Backend").value_or("");
    s.body_in = body.size();
    s.body_out = r.body.size();
    sent.push_back(s);
  }
  c.Close();

  int st = fx.StopServe(SIGTERM, 10000);
  CHECK(st == 0);
  // Read right after exit: everything must be flushed already.
  std::vector<Json> lines = fx.LogLines();
  CHECK(lines.size() == sent.size());
  std::set<std::string> seen;
  for (const auto& s : sent) {
    INFO("request " << s.rid << " " << s.method << " " << s.path);
    const Json* found = nullptr;
    for (const auto& j : lines) {
      if (j.contains("request_id") && j["request_id"] == s.rid) {
        CHECK_MESSAGE(found == nullptr, "two log lines for " << s.rid);
        found = &j;
      }
    }
    REQUIRE_MESSAGE(found != nullptr, "no log line for " << s.rid);
    CheckLogLine(*found, s);
  }
}

TEST_CASE("e2e: SIGTERM stops accepting, finishes a request in flight, then exits 0") {
  Fixture fx;
  RawBackend slow("slow");
  REQUIRE(slow.Start());
  slow.Hold();  // the request stays in flight until released
  fx.AddBackend("slow", slow.url());
  REQUIRE(fx.StartServe());

  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  REQUIRE(c.Send("GET /inflight HTTP/1.1\r\nHost: h\r\nX-Request-Id: in-flight-1\r\n\r\n"));
  REQUIRE(slow.WaitForRequests(1, kHangGuardMs));
  int64_t t0 = NowMs();
  kill(fx.serve()->pid(), SIGTERM);
  // During the drain (the request is still held at the backend): no longer
  // accepting. A connect made before the listener closed is still accepted,
  // so poll until one is refused.
  CHECK(PollUntil([&] {
    int fd = ConnectLoopback(fx.port());  // one attempt
    if (fd < 0) return true;
    close(fd);
    return false;
  }));
  CHECK(fx.serve()->Running());
  MESSAGE("new connections refused " << NowMs() - t0 << " ms after SIGTERM");
  slow.Release();
  HttpResponse r = c.ReadFinal(false, kHangGuardMs);
  REQUIRE_MESSAGE(r.ok, "the request in flight was not answered after SIGTERM: " << r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "slow");
  auto st = fx.serve()->Wait(kHangGuardMs);
  REQUIRE_MESSAGE(st.has_value(), "serve still running long after SIGTERM");
  CHECK(*st == 0);
  MESSAGE("serve exited " << NowMs() - t0 << " ms after SIGTERM");
  auto lines = fx.LogLines();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0]["request_id"] == "in-flight-1");
  CHECK(lines[0]["status"] == 200);
}

// `tail -f decisions.log` and `strangler audit` on a live log must see a
// request soon after it was answered, not when a buffer happens to fill or
// serve exits.
TEST_CASE("e2e: decision log lines reach the file while serving, before any buffer fills") {
  Fixture fx;
  RawBackend be("be");
  REQUIRE(be.Start());
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = c.Get("/live/" + std::to_string(i));
    REQUIRE_MESSAGE(r.ok, r.error);
  }
  int64_t t0 = NowMs();
  // Three short lines fill no buffer: they come by the flusher's clock (every
  // 20 ms), which this waits for with a hang guard only.
  auto lines = fx.WaitForLogLines(3, kHangGuardMs);
  MESSAGE(lines.size() << " of 3 log lines visible after " << NowMs() - t0 << " ms");
  CHECK(lines.size() == 3);
  CHECK(fx.serve()->Running());  // written by the running serve, not at exit
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
