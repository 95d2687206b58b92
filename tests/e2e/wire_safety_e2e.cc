// Wire safety (issue 12, PRODUCT.md "What the proxy promises about bytes in
// flight"): no request smuggled past the router's framing, no answer ever
// handed to the wrong client, no route skipped by spelling its path
// differently. Each case was found by a raw-bytes differential test beside
// nginx and HAProxy; each test here failed before its fix.
#include <atomic>
#include <cstdio>
#include <cstdlib>
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

std::string Answer(const std::string& id, const std::string& status = "200 OK") {
  return "HTTP/1.1 " + status + "\r\nX-Id: " + id + "\r\nContent-Length: " +
         std::to_string(id.size()) + "\r\n\r\n" + id;
}

// The last path segment of a target: the id a test client put there.
std::string IdOf(const std::string& target) { return target.substr(target.rfind('/') + 1); }

// A pooled connection is reused once it has been quiet for 1 ms after its
// answer (README, "Bytes in flight"); a test that needs the next request to
// take the pooled one lets that pass first.
void SettlePool() { std::this_thread::sleep_for(std::chrono::milliseconds(20)); }

TEST_CASE("e2e: wire safety: Connection cannot take Host or the framing away (400, nothing forwarded)") {
  TwoBackends t;
  const std::vector<Refusal> cases = {
      {"Connection names Content-Length (the body would be a second request)",
       "POST / HTTP/1.1\r\nHost: x\r\nConnection: Content-Length\r\nContent-Length: 39\r\n\r\n"
       "GET /new/smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
       400},
      {"Connection names Host", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Host\r\n\r\n", 400},
      {"Connection names Transfer-Encoding",
       "POST / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, transfer-encoding\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 400},
      {"Host of spaces only", "GET / HTTP/1.1\r\nHost:   \r\n\r\n", 400},
      {"two Hosts, one empty", "GET / HTTP/1.1\r\nHost: x\r\nHost:\r\n\r\n", 400},
      {"Host that is a list", "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400},
      {"Host with a path", "GET / HTTP/1.1\r\nHost: x/admin\r\n\r\n", 400},
      {"Host with userinfo", "GET / HTTP/1.1\r\nHost: user@x\r\n\r\n", 400},
      {"Host with a port that is not a number", "GET / HTTP/1.1\r\nHost: x:8o\r\n\r\n", 400},
      {"Host with an unclosed IPv6 literal", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400},
      // Chunk framing (llhttp strict mode): the CRLF after chunk data is
      // checked, and a bare LF does not end a chunk line.
      {"chunk data not followed by CRLF",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400},
      {"bare LF chunk lines",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n", 400},
      {"chunk size no signed 64-bit length holds",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "ffffffffffffffff\r\nx\r\n0\r\n\r\n",
       400},
      {"chunk size over 64 bits",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
       "10000000000000000\r\nx\r\n0\r\n\r\n",
       400},
      {"fragment in the target", "GET /admin#x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"control byte in the target", "GET /a\x01z HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      // A backend that decodes the path may end it at the NUL: /admin there.
      {"encoded NUL in the path", "GET /admin%00/x HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      // ... or trim a trailing control byte after decoding.
      {"encoded LF in the path", "GET /admin%0a HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"encoded TAB in the path", "GET /admin%09 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"encoded DEL in the path", "GET /admin%7F HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      // Codings the router would drop when it re-chunks the body (nginx:
      // 501; HAProxy: 422 or 400).
      {"identity before chunked",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
       501},
      {"gzip before chunked",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
       501},
      {"chunked twice (llhttp refuses it)",
       "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked"
       "\r\n\r\n0\r\n\r\n",
       400},
      {"HTTP/1.0 with Transfer-Encoding (RFC 9112 6.1: faulty framing)",
       "POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
  };
  ExpectRefused(t, cases);  // each logged as refused, with no backend
  // Every line is a refusal, and every refusal is one line.
  auto lines = t.fx.StopAndReadLog();
  CHECK(lines.size() == cases.size());
  for (const Json& line : lines) CHECK(line["reason"] == "refused");
}

TEST_CASE("e2e: wire safety: every valid form of Host passes unchanged") {
  TwoBackends t;
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  int n = 0;
  for (const std::string host : {"example.com", "Example.COM:8080", "127.0.0.1:80", "[::1]:8443",
                                 "[2001:db8::1]", "xn--bcher-kva.example", "a_b.internal:"}) {
    RawBackend& be = n++ % 2 ? t.fresh : t.legacy;  // the Host does not change the route
    INFO("Host: " << host << " to " << be.name());
    t.ClearRequests();
    HttpResponse r = c.Get(&be == &t.fresh ? "/new/h" : "/h", {{"Host", host}});
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
    t.ExpectOnly(r, be);
    auto got = be.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].Header("Host") == std::optional<std::string>(host));
  }
}

TEST_CASE("e2e: wire safety: an answer whose Connection names Content-Length still reaches the client framed") {
  TwoBackends t;
  t.fresh.set_response(
      "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nX-Backend: new\r\nContent-Length: 5\r\n\r\n"
      "hello");
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = c.Get("/new/x" + std::to_string(i));
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
    CHECK(r.body == "hello");
    CHECK(r.Header("Content-Length") == std::optional<std::string>("5"));
    t.ExpectOnly(r, t.fresh, static_cast<size_t>(i + 1));
  }
}

TEST_CASE("e2e: wire safety: bytes a backend sends while its connection idles never reach another client") {
  // Each misbehaviour: the answer, then (as a separate write, once the
  // answer is complete) bytes that belong to no request.
  struct Case {
    std::string name, method, path;
    std::string answer;  // for the request carrying id "A"
    std::string late;
  };
  const std::vector<Case> cases = {
      {"a late second answer", "GET", "/late/A", Answer("A"), Answer("EVIL")},
      {"body bytes after a HEAD answer", "HEAD", "/head/A",
       "HTTP/1.1 200 OK\r\nX-Id: A\r\nContent-Length: 4\r\n\r\n", "EVIL"},
      {"bytes after a 204", "GET", "/204/A", "HTTP/1.1 204 No Content\r\nX-Id: A\r\n\r\n",
       Answer("EVIL")},
      {"a late chunk after a complete answer", "GET", "/chunk/A", Answer("A"),
       "4\r\nEVIL\r\n0\r\n\r\n"},
  };
  for (const Case& c : cases) {
    INFO("case: " << c.name);
    std::atomic<int> late_sent{0};
    ScriptBackend be([&](ScriptConn& conn) {
      RecordedRequest req;
      while (conn.ReadRequest(&req)) {
        if (IdOf(req.target) == "A") {
          conn.Send(c.answer);
          conn.Sleep(30);  // the answer is complete and the connection pooled by now
          conn.Send(c.late);
          ++late_sent;
        } else {
          conn.Send(Answer(IdOf(req.target)));
        }
      }
    });
    REQUIRE(be.Start());
    Fixture fx;
    fx.AddBackend("be", be.url());
    REQUIRE(fx.StartServe({"--threads", "1"}));  // one worker: one pool for both clients
    RawClient a;
    REQUIRE(a.Connect(fx.port()));
    REQUIRE(a.Send(c.method + " " + c.path + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    HttpResponse ra = a.ReadFinal(c.method == "HEAD");
    REQUIRE_MESSAGE(ra.ok, ra.error);
    CHECK(ra.Header("X-Id") == std::optional<std::string>("A"));
    // Wait until the late bytes were written (loopback: they are in the
    // router's socket by the time send() returned).
    int64_t deadline = NowMs() + 5000;  // guards a hang only
    while (late_sent.load() == 0 && NowMs() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    REQUIRE(late_sent.load() >= 1);
    for (const std::string id : {"B", "C"}) {
      RawClient b;
      REQUIRE(b.Connect(fx.port()));
      HttpResponse rb = b.Get("/id/" + id);
      REQUIRE_MESSAGE(rb.ok, rb.error);
      CHECK(rb.status == 200);
      CHECK(rb.Header("X-Id") == std::optional<std::string>(id));
      CHECK(rb.body == id);
    }
    // The same client connection goes on too, with its own answers.
    HttpResponse again = a.Get("/id/A2");
    REQUIRE_MESSAGE(again.ok, again.error);
    CHECK(again.body == "A2");
  }
}

TEST_CASE("e2e: wire safety: a second answer written right after the first never reaches the "
          "next client, queued at --max-conns or right behind without a cap") {
  // A backend that writes a second answer a moment after the first (a
  // separate write, when the first is relayed already) must not have it
  // taken as the answer of the request the connection carries next: one
  // waiting for it in the queue (a capped instance hands a released
  // connection straight on), or one that comes right behind. The backend
  // writes it when the next request comes within 1 ms of the answer: from
  // the router's side the same bytes as a late write that crossed that
  // request, without depending on how this machine schedules a sleep.
  std::atomic<bool> answer_a{true};
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    std::string owed;  // the second answer of the last "A" request, if any
    int64_t answered_us = 0;
    auto now_us = [] {
      return std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::steady_clock::now().time_since_epoch())
          .count();
    };
    while (conn.ReadRequest(&req)) {
      if (!owed.empty() && now_us() - answered_us < 1000 && !conn.Send(owed)) return;
      owed.clear();
      const std::string id = IdOf(req.target);
      if (id.rfind("A", 0) == 0) {
        while (!answer_a.load() && !conn.stopping()) conn.Sleep(5);
        owed = Answer("EVIL-" + id);
      }
      // Timed before the answer is written: the router cannot have had it
      // sooner, so a gap under 1 ms here is one under 1 ms there.
      answered_us = now_us();
      if (!conn.Send(Answer(id))) return;
    }
  });
  REQUIRE(be.Start());
  Fixture fx;
  int wrong = 0;
  auto expect = [&](const std::string& want, const std::string& got) {
    if (got == want) return;
    ++wrong;
    MESSAGE(want << " got '" << got << "'");
  };
  auto get = [&](RawClient& c, const std::string& id) {
    HttpResponse r = c.Get("/id/" + id, {}, kHangGuardMs);
    return r.ok ? r.body : "(no answer: " + r.error + ")";
  };

  SUBCASE("queued at --max-conns 1") {
    fx.AddBackend("be", be.url(), {"--max-conns", "1"});
    REQUIRE(fx.StartServe());
    constexpr int kRounds = 4, kWaiting = 4;
    for (int round = 0; round < kRounds; ++round) {
      answer_a = false;
      const std::string a_id = "A" + std::to_string(round);
      std::string got_a;
      std::thread a([&] {
        RawClient c;
        if (c.Connect(fx.port())) got_a = get(c, a_id);
      });
      std::vector<std::string> got(kWaiting);
      std::vector<std::thread> waiting;
      for (int i = 0; i < kWaiting; ++i) {
        waiting.emplace_back([&, i] {
          RawClient c;
          if (c.Connect(fx.port())) {
            got[static_cast<size_t>(i)] = get(c, "r" + std::to_string(round) + "w" + std::to_string(i));
          }
        });
      }
      // The waiting requests are in the queue by now (the cap of 1 is A's);
      // one that is not yet takes the connection later: the same case.
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      answer_a = true;
      a.join();
      for (auto& t : waiting) t.join();
      expect(a_id, got_a);
      for (int i = 0; i < kWaiting; ++i) {
        expect("r" + std::to_string(round) + "w" + std::to_string(i), got[static_cast<size_t>(i)]);
      }
    }
  }

  SUBCASE("without a cap, the next client right behind (one worker: one pool)") {
    fx.AddBackend("be", be.url());
    REQUIRE(fx.StartServe({"--threads", "1"}));
    constexpr int kRounds = 8;
    for (int round = 0; round < kRounds; ++round) {
      RawClient a, b;
      REQUIRE(a.Connect(fx.port()));
      REQUIRE(b.Connect(fx.port()));
      const std::string a_id = "A" + std::to_string(round), b_id = "B" + std::to_string(round);
      expect(a_id, get(a, a_id));
      expect(b_id, get(b, b_id));  // sent as soon as A's answer is in
      expect(a_id + "n", get(a, a_id + "n"));
    }
  }
  CHECK(wrong == 0);
}

TEST_CASE("e2e: wire safety: bodiless answers that carry a length do not stall or desync the client") {
  // 304/204/1xx/HEAD answers end at their head whatever Content-Length says
  // (RFC 9112 6.3); bytes that follow are the backend's error, never the
  // next answer.
  ScriptBackend be([](ScriptConn& conn) {
    RecordedRequest req;
    while (conn.ReadRequest(&req)) {
      const std::string id = IdOf(req.target);
      if (req.target.rfind("/304/", 0) == 0) {
        conn.Send("HTTP/1.1 304 Not Modified\r\nX-Id: " + id + "\r\nContent-Length: 1234\r\n\r\n");
      } else if (req.target.rfind("/304body/", 0) == 0) {
        conn.Send("HTTP/1.1 304 Not Modified\r\nX-Id: " + id + "\r\nContent-Length: 5\r\n\r\nhello");
      } else if (req.target.rfind("/204/", 0) == 0) {
        conn.Send("HTTP/1.1 204 No Content\r\nX-Id: " + id + "\r\nContent-Length: 5\r\n\r\nhello");
      } else if (req.target.rfind("/100/", 0) == 0) {
        conn.Send("HTTP/1.1 100 Continue\r\nContent-Length: 3\r\n\r\n" + Answer(id));
      } else {
        conn.Send(Answer(id));
      }
    }
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe({"--threads", "1"}));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  int n = 0;
  for (const std::string prefix : {"/304/", "/304body/", "/204/", "/100/"}) {
    const std::string id = "r" + std::to_string(++n);
    INFO("target " << prefix << id);
    REQUIRE(c.Send("GET " + prefix + id + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    HttpResponse r = c.ReadFinal(false, 5000);  // the backend's timeout is 30 s: a stall fails here
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.Header("X-Id") == std::optional<std::string>(id));
    CHECK(r.body == (prefix == "/100/" ? id : ""));
    if (prefix == "/204/") CHECK(r.HeaderCount("Content-Length") == 0);
    // The next request on the same client connection gets its own answer.
    HttpResponse next = c.Get("/id/n" + id);
    REQUIRE_MESSAGE(next.ok, next.error);
    CHECK(next.body == "n" + id);
  }
}

TEST_CASE("e2e: wire safety: an answer's transfer codings other than chunked stay named") {
  // The router re-chunks what it relays; a coding the backend applied
  // before chunked is still on those bytes, so the client must be told.
  ScriptBackend be([](ScriptConn& conn) {
    RecordedRequest req;
    while (conn.ReadRequest(&req)) {
      const std::string te = req.target == "/gzip" ? "gzip, chunked"
                             : req.target == "/two" ? "gzip\r\nTransfer-Encoding: chunked"
                                                    : "chunked";
      if (!conn.Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: " + te +
                     "\r\n\r\n5\r\nbytes\r\n0\r\n\r\n")) {
        return;
      }
    }
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (const auto& want : std::vector<std::pair<std::string, std::string>>{
           {"/gzip", "gzip, chunked"}, {"/two", "gzip, chunked"}, {"/plain", "chunked"}}) {
    INFO("target " << want.first);
    HttpResponse r = c.Get(want.first);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
    CHECK(r.HeaderCount("Transfer-Encoding") == 1);
    CHECK(r.Header("Transfer-Encoding") == std::optional<std::string>(want.second));
    CHECK(r.body == "bytes");
  }
}

TEST_CASE("e2e: wire safety: no cross-talk between keep-alive clients behind a misbehaving backend") {
  // Every answer of the backend carries the id the client put in its path.
  // Some answers bring bytes no request asked for (in the same write, so
  // they are in the router's socket when it looks): a second answer, a body
  // after HEAD or 204, a 304 with a length. Every client must get exactly
  // its own answers.
  ScriptBackend be([](ScriptConn& conn) {
    RecordedRequest req;
    while (conn.ReadRequest(&req)) {
      const std::string id = IdOf(req.target);
      const std::string mode = req.target.substr(1, req.target.find('/', 1) - 1);
      std::string out;
      if (mode == "late") {
        out = Answer(id) + Answer("EVIL-" + id);
      } else if (mode == "head") {
        out = "HTTP/1.1 200 OK\r\nX-Id: " + id + "\r\nContent-Length: 9\r\n\r\nEVIL-body";
      } else if (mode == "204") {
        out = "HTTP/1.1 204 No Content\r\nX-Id: " + id + "\r\nContent-Length: 4\r\n\r\nEVIL";
      } else if (mode == "304") {
        out = "HTTP/1.1 304 Not Modified\r\nX-Id: " + id + "\r\nContent-Length: 1234\r\n\r\n";
      } else if (mode == "close") {
        out = Answer(id);
        conn.Send(out);
        return;  // closes after the answer without saying so
      } else {
        out = Answer(id);
      }
      if (!conn.Send(out)) return;
    }
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  const std::vector<std::string> modes = {"ok", "late", "head", "ok", "204", "304", "close", "ok"};
  constexpr int kClients = 8, kRequests = 40;
  std::atomic<int> answered{0}, wrong{0}, failed{0};
  std::vector<std::string> problems[kClients];
  std::vector<std::thread> threads;
  for (int t = 0; t < kClients; ++t) {
    threads.emplace_back([&, t] {
      RawClient c;
      for (int i = 0; i < kRequests; ++i) {
        if (!c.connected() && !c.Connect(fx.port())) {
          ++failed;
          continue;
        }
        const std::string& mode = modes[static_cast<size_t>(i + t) % modes.size()];
        const std::string id = "c" + std::to_string(t) + "n" + std::to_string(i);
        const bool head = mode == "head";
        c.Send(std::string(head ? "HEAD" : "GET") + " /" + mode + "/" + id +
               " HTTP/1.1\r\nHost: x\r\n\r\n");
        HttpResponse r = c.ReadFinal(head, 10000);
        if (!r.ok) {
          ++failed;
          problems[t].push_back(id + ": " + r.error);
          c.Close();
          continue;
        }
        ++answered;
        bool body_ok = (head || mode == "204" || mode == "304") ? r.body.empty() : r.body == id;
        if (r.Header("X-Id") != std::optional<std::string>(id) || !body_ok) {
          ++wrong;
          problems[t].push_back(id + " got X-Id " + r.Header("X-Id").value_or("-") + " body '" +
                                Printable(r.body) + "'");
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  MESSAGE("answered " << answered.load() << ", wrong " << wrong.load() << ", failed "
                      << failed.load() << "; backend connections " << be.connections_accepted());
  for (int t = 0; t < kClients; ++t) {
    for (const auto& p : problems[t]) MESSAGE(p);
  }
  CHECK(wrong.load() == 0);
  CHECK(failed.load() == 0);
  CHECK(answered.load() == kClients * kRequests);
}

TEST_CASE("e2e: wire safety: a POST on a pooled connection the backend dropped is sent again, not failed") {
  // The backend answers one request per connection, then closes as the next
  // one arrives (a keep-alive timeout racing the request): the head went out
  // on a dead connection while the body was still coming from the client.
  std::atomic<int> dropped{0};
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req)) return;
    conn.Send(Answer(req.body.empty() ? IdOf(req.target) : req.body));
    if (conn.ReadRequest(&req, /*head_only=*/true)) ++dropped;  // and close
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe({"--threads", "1"}));
  RawClient warm;
  REQUIRE(warm.Connect(fx.port()));
  REQUIRE(warm.Get("/warm/w").ok);
  SettlePool();
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  REQUIRE(c.Send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n"));
  // The head reached the pooled connection, which the backend then shut:
  // the router, still waiting for the body, sees that and sends the head
  // again on a new connection.
  int64_t deadline = NowMs() + 5000;  // guards a hang only
  while (be.connections_accepted() < 2 && NowMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(dropped.load() == 1);
  REQUIRE(be.connections_accepted() == 2);
  REQUIRE(c.Send("hello-world"));
  HttpResponse r = c.ReadFinal(false, 5000);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "hello-world");
  CHECK(be.connections_accepted() == 2);
}

TEST_CASE("e2e: wire safety: a request the backend took whole and dropped is sent again only when idempotent") {
  // Each connection: the first request is answered, the second read whole
  // and dropped without an answer (the backend may have acted on it).
  ScriptBackend be([](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req)) return;
    conn.Send(Answer(IdOf(req.target)));
    conn.ReadRequest(&req);
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe({"--threads", "1"}));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  struct Step {
    std::string method, target;
    Headers headers;
    int status;  // what the client gets
    int sent;    // how often the backend got the request
  };
  const std::vector<Step> steps = {
      {"POST", "/once/post", {}, 502, 1},
      {"PATCH", "/once/patch", {}, 502, 1},
      {"PUT", "/once/put", {}, 200, 2},
      {"GET", "/once/get", {}, 200, 2},
      {"POST", "/once/keyed", {{"Idempotency-Key", "k-1"}}, 200, 2},
  };
  int n = 0;
  for (const Step& step : steps) {
    INFO(step.method << " " << step.target);
    HttpResponse warm = c.Get("/warm/" + std::to_string(++n));  // a pooled connection to reuse
    REQUIRE_MESSAGE(warm.ok, warm.error);
    SettlePool();
    HttpResponse r = c.Request(step.method, step.target, step.headers, "body");
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == step.status);
    int sent = 0;
    for (const auto& req : be.requests()) sent += req.target == step.target;
    CHECK(sent == step.sent);
    if (!c.connected()) REQUIRE(c.Connect(fx.port()));
  }
}

TEST_CASE("e2e: wire safety: pooled connections a backend closed while idle are not used") {
  std::atomic<int> idle_closed{0};
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req)) return;
    conn.Send(Answer(req.body.empty() ? IdOf(req.target) : req.body));
    conn.Sleep(50);
    ++idle_closed;  // closes the idle connection, as a keep-alive timeout does
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe({"--threads", "1"}));
  RawClient warm;
  REQUIRE(warm.Connect(fx.port()));
  REQUIRE(warm.Get("/warm/w").ok);
  // Once the backend has shut the connection, its FIN is in the router's
  // socket (loopback delivers it within the call).
  int64_t deadline = NowMs() + 5000;  // guards a hang only
  while ((idle_closed.load() == 0 || be.open_connections() > 0) && NowMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  REQUIRE(be.open_connections() == 0);
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  REQUIRE(c.Send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the body comes later
  REQUIRE(c.Send("hello"));
  HttpResponse r = c.ReadFinal(false, 5000);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  CHECK(r.body == "hello");
}

TEST_CASE("e2e: wire safety: --upstream-idle-s closes pooled connections nobody uses") {
  std::atomic<int> closed_by_router{0};
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    while (conn.ReadRequest(&req, false, 60000)) conn.Send(Answer(IdOf(req.target)));
    if (!conn.stopping()) ++closed_by_router;
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe({"--upstream-idle-s", "1"}));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  REQUIRE(c.Get("/id/x").ok);
  const int64_t t0 = NowMs();
  const int64_t deadline = t0 + 15000;  // guards a hang only (the limit is 1 s)
  while (closed_by_router.load() == 0 && NowMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(closed_by_router.load() == 1);
  MESSAGE("idle pooled connection closed " << NowMs() - t0 << " ms after its answer");
  // The client's own connection is not affected, and a new backend
  // connection is made for its next request.
  HttpResponse r = c.Get("/id/y");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.body == "y");
  CHECK(be.connections_accepted() == 2);
}

TEST_CASE("e2e: wire safety: a route cannot be skipped by spelling its path differently") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("admin", {"--to", "new", "--path", "/admin"});
  REQUIRE(fx.StartServe());
  const std::vector<std::string> targets = {
      "//admin",       "/%2fadmin",         "/admin%2f",      "/admin%2Fsecret", "/x/..%2fadmin",
      "/%61dmin",      "/./admin",          "/x/../admin",    "/%2e%2e/admin",   "/admin%5csecret",
      "/admin\\secret", "/admin;jsessionid=1", "///admin//x",     "/admin/./y/..",
      "/%2e%2e%2fadmin",
  };
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (const std::string& t : targets) {
    INFO("target " << t);
    fresh.ClearRequests();
    HttpResponse r = c.Get(t);
    REQUIRE_MESSAGE(r.ok, r.error);
    ExpectOnly(r, fresh, 1, legacy);
    auto got = fresh.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].target == t);  // forwarded as the client sent it
  }
  // Look-alikes that are other paths stay with the default.
  fresh.ClearRequests();
  size_t n = 0;
  for (const std::string t : {"/adminx", "/%2561dmin", "/ADMIN", "/a/admin"}) {
    INFO("target " << t);
    HttpResponse r = c.Get(t);
    REQUIRE_MESSAGE(r.ok, r.error);
    ExpectOnly(r, legacy, ++n, fresh);
  }
  // A dot segment beside ';' or a backslash names different paths to
  // different backends ("/admin/..;/x" is /x to Tomcat, under /admin to
  // most others): refused, whichever way it would be routed.
  for (const std::string t : {"/x/..;/admin", "/admin/..;/public", "/admin/x\\..\\..\\public",
                              "/admin/x%5c..%5c..%5cpublic", "/admin;%2f..%2f..%2fpublic"}) {
    INFO("target " << t);
    RawClient r;
    REQUIRE(r.Connect(fx.port()));
    HttpResponse a = r.Get(t);
    REQUIRE_MESSAGE(a.ok, a.error);
    CHECK(a.status == 400);
  }
  CHECK(legacy.request_count() == 4);
  CHECK(fresh.request_count() == 0);
  // The decision log shows the path the decision was made on.
  auto lines = fx.StopAndReadLog();
  std::map<std::string, int> paths;
  for (const Json& l : lines) paths[l.value("path", "")]++;
  CHECK(paths["/admin"] >= 5);
  CHECK(paths["/admin/secret"] == 3);
  CHECK(paths["/%2561dmin"] == 1);
}

TEST_CASE("e2e: wire safety: --encoded-slash reject answers 400 to %2F and %5C in the path") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("admin", {"--to", "new", "--path", "/admin"});
  REQUIRE(fx.StartServe({"--encoded-slash", "reject"}));
  for (const std::string t : {"/%2fadmin", "/admin%2Fsecret", "/x/..%2fadmin", "/admin%5Cx"}) {
    INFO("target " << t);
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    HttpResponse r = c.Get(t);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 400);
    CHECK(r.body.find("encoded") != std::string::npos);
  }
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  HttpResponse ok = c.Get("/admin/x?next=%2F");  // the query is not the path
  REQUIRE_MESSAGE(ok.ok, ok.error);
  CHECK(ok.Header("X-Backend") == std::optional<std::string>("new"));
  CHECK(legacy.request_count() + fresh.request_count() == 1);
  RunResult bad = Run({STRANGLER_BIN, "--db", fx.db(), "serve", "--encoded-slash", "keep"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--encoded-slash") != std::string::npos);
}

TEST_CASE("e2e: wire safety: a backend's early answer to an upload reaches the client") {
  // The backend reads the head of a 16 MiB upload, answers 413 and closes
  // a second later, without reading the body.
  ScriptBackend be([](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req, /*head_only=*/true)) return;
    const std::string status = req.target == "/auth" ? "401 Unauthorized" : "413 Payload Too Large";
    const std::string body = req.target == "/auth" ? "who are you" : "too large";
    conn.Send("HTTP/1.1 " + status + "\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\nConnection: close\r\n\r\n" + body);
    conn.Sleep(1000);  // not reading: the router's sends of the body block
    conn.CloseGracefully();
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());

  SUBCASE("413 while the client is still sending") {
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    const size_t size = 16 << 20;
    std::thread sender([&] {
      c.Send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(size) +
             "\r\n\r\n");
      std::string chunk(64 * 1024, 'u');
      for (size_t sent = 0; sent < size; sent += chunk.size()) {
        if (!c.Send(chunk)) break;  // the router may stop reading once it answered
      }
    });
    HttpResponse r = c.ReadFinal(false, 10000);
    sender.join();
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 413);
    CHECK(r.body == "too large");
    CHECK_MESSAGE(r.Header("Connection") == std::optional<std::string>("close"), r.raw_head);
  }
  SUBCASE("401 before the client sent any of its body") {
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    REQUIRE(c.Send("POST /auth HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"));
    HttpResponse r = c.ReadFinal(false, 5000);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 401);
    CHECK(r.body == "who are you");
    CHECK(c.WaitForClose(5000));
  }
  auto lines = fx.StopAndReadLog();
  REQUIRE(lines.size() == 1);
  CHECK((lines[0]["status"] == 413 || lines[0]["status"] == 401));
}

TEST_CASE("e2e: wire safety: an absolute-form target's authority is the Host the backend gets") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("admin", {"--to", "new", "--path", "/admin"});
  REQUIRE(fx.StartServe());
  struct Case {
    std::string target, want_backend, want_target, want_host;
  };
  const std::vector<Case> cases = {
      // RFC 9112 3.2.2: the authority wins over the Host header.
      {"http://x/id/ah", "legacy", "/id/ah", "x"},
      {"http://shop.example:8080/admin/a?b=1", "new", "/admin/a?b=1", "shop.example:8080"},
      // A query right after the authority is no path: "/" and the query.
      {"http://x?next=/admin/delete", "legacy", "/?next=/admin/delete", "x"},
      {"HTTP://x", "legacy", "/", "x"},
  };
  for (const Case& c : cases) {
    INFO("target " << c.target);
    legacy.ClearRequests();
    fresh.ClearRequests();
    RawClient cl;
    REQUIRE(cl.Connect(fx.port()));
    REQUIRE(cl.Send("GET " + c.target + " HTTP/1.1\r\nHost: evil\r\n\r\n"));
    HttpResponse r = cl.ReadFinal();
    REQUIRE_MESSAGE(r.ok, r.error);
    RawBackend& want = c.want_backend == "new" ? fresh : legacy;
    ExpectOnly(r, want, 1, &want == &fresh ? legacy : fresh);
    auto got = want.requests();
    REQUIRE(got.size() == 1);
    CHECK(got[0].target == c.want_target);
    CHECK(got[0].HeaderCount("Host") == 1);
    CHECK(got[0].Header("Host") == std::optional<std::string>(c.want_host));
    CHECK(got[0].Header("X-Forwarded-Host") == std::optional<std::string>(c.want_host));
  }
  // Other schemes and hosts that are not host[:port] are refused.
  for (const std::string t : {"ftp://x/a", "http://user@evil/a", "http://a b/", "x/a"}) {
    INFO("target " << t);
    RawClient cl;
    REQUIRE(cl.Connect(fx.port()));
    REQUIRE(cl.Send("GET " + t + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    HttpResponse r = cl.ReadFinal();
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 400);
  }
  // Only the last forwarded case's request: the refused ones reached neither.
  CHECK(legacy.request_count() + fresh.request_count() == 1);
}

TEST_CASE("e2e: wire safety: an X-Request-Id that Connection names is replaced, not lost") {
  TwoBackends t;
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  HttpResponse r = c.Get("/new/x", {{"X-Request-Id", "mine"}, {"Connection", "X-Request-Id"}});
  REQUIRE_MESSAGE(r.ok, r.error);
  t.ExpectOnly(r, t.fresh);
  auto got = t.fresh.requests();
  REQUIRE(got.size() == 1);
  REQUIRE(got[0].HeaderCount("X-Request-Id") == 1);
  CHECK(got[0].Header("X-Request-Id") != std::optional<std::string>("mine"));
  CHECK(r.Header("X-Request-Id") == got[0].Header("X-Request-Id"));
  std::optional<Json> line = t.fx.LogLineFor(got[0].Header("X-Request-Id").value_or("?"));
  REQUIRE_MESSAGE(line.has_value(), "no log line under the id the backend got");
  t.ExpectLogged(*line, t.fresh);
}

TEST_CASE("e2e: wire safety: pipelined requests with large heads do not grow the buffer without bound") {
  TwoBackends t;
  auto rss_kb = [&] {
    std::string status = ReadFile("/proc/" + std::to_string(t.fx.serve()->pid()) + "/status");
    size_t at = status.find("VmRSS:");
    return at == std::string::npos ? 0L : std::strtol(status.c_str() + at + 6, nullptr, 10);
  };
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  REQUIRE(c.Get("/warm").ok);
  t.ClearRequests();
  const long before = rss_kb();
  // Every other request names the route "new": each answer must come from
  // the backend its own request names.
  auto head = [](int i) {
    return std::string(i % 2 ? "GET /new/p" : "GET /p") + " HTTP/1.1\r\nHost: x\r\nX-A: " +
           std::string(6500, 'a') + "\r\nX-B: " + std::string(6500, 'b') + "\r\n\r\n";
  };
  constexpr int kRequests = 400;  // 5.2 MB in one go
  std::thread sender([&] {
    std::string all;
    for (int i = 0; i < kRequests; ++i) all += head(i);
    c.Send(all);
  });
  int answered = 0;
  for (int i = 0; i < kRequests; ++i) {
    HttpResponse r = c.ReadResponse(false, 10000);
    if (!r.ok) break;
    answered += r.status == 200 && r.Header("X-Backend") == std::optional<std::string>(
                                                                 i % 2 ? "new" : "legacy");
  }
  sender.join();
  CHECK(answered == kRequests);
  CHECK(t.legacy.request_count() == kRequests / 2);
  CHECK(t.fresh.request_count() == kRequests / 2);
  MESSAGE("serve RSS " << before << " KiB before, " << rss_kb() << " KiB after " << kRequests
                       << " pipelined 13 KB heads");
}

TEST_CASE("e2e: wire safety: an answer that begins before the body is sent still gets the body") {
  // The backend answers as soon as it has the head (a 100, a 103, or the
  // start of a streamed 200), then reads the body and ends its answer.
  ScriptBackend be([](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req, /*head_only=*/true)) return;
    if (req.target == "/stream") {
      conn.Send("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nstart\n\r\n");
    } else if (req.target == "/continue") {
      conn.Send("HTTP/1.1 100 Continue\r\n\r\n");
    } else {
      conn.Send("HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n");
    }
    std::string body;
    if (!conn.ReadBody(5, &body)) return;
    std::string end = "got " + body + "\n";
    if (req.target == "/stream") {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "%zx", end.size());
      conn.Send(std::string(hex) + "\r\n" + end + "\r\n0\r\n\r\n");
    } else {
      conn.Send("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(end.size()) + "\r\n\r\n" + end);
    }
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  for (const std::string target : {"/stream", "/continue", "/hints"}) {
    INFO("target " << target);
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    REQUIRE(c.Send("POST " + target + " HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n"));
    // The body comes once the backend has begun to answer (as a client that
    // waits for a 100 does).
    const int64_t deadline = NowMs() + 5000;  // guards a hang only
    while (be.request_count() == 0 && NowMs() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the answer's start crosses
    REQUIRE(c.Send("hello"));
    HttpResponse r = c.ReadFinal(false, 10000);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
    CHECK(r.body == (target == "/stream" ? "start\ngot hello\n" : "got hello\n"));
  }
}

TEST_CASE("e2e: wire safety: Upgrade: h2c is not forwarded; the request is served as plain HTTP/1.1") {
  TwoBackends t;
  RawClient c;
  REQUIRE(c.Connect(t.fx.port()));
  REQUIRE(c.Send("GET /new/x HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                 "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"));
  HttpResponse r = c.ReadFinal(false, 5000);
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  t.ExpectOnly(r, t.fresh);
  auto got = t.fresh.requests();
  REQUIRE(got.size() == 1);
  CHECK(got[0].HeaderCount("Upgrade") == 0);
  CHECK(got[0].HeaderCount("HTTP2-Settings") == 0);
  CHECK(got[0].HeaderCount("Connection") == 0);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
