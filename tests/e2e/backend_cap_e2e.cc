// Protecting a fragile backend (PRODUCT.md "Backends in production"):
// --max-conns caps the router's connections to each instance, requests over
// the cap wait in a FIFO queue (--queue-timeout, --max-queue) and get 503
// (reason "queue", queue_ms in the log) when the wait ends or the queue is
// full; --connect-timeout-ms bounds a connect apart from --timeout-ms.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "black_hole.h"
#include "harness.h"
#include "script_backend.h"

namespace strangler {
namespace e2e {
namespace {

// A legacy monolith in miniature: K worker threads, each serving one
// keep-alive connection until the client closes it, behind a listen backlog
// of 1 and an acceptor that takes at most K + kSpare connections (the rest
// wait in the kernel, or are dropped, as SYNs to a full backlog are). It
// counts the connections it holds at once: with the router's cap at K, that
// never passes K.
class Monolith {
 public:
  static constexpr int kSpare = 2;
  Monolith(int workers, int delay_ms) : workers_(workers), delay_ms_(delay_ms) {}
  ~Monolith() { Stop(); }

  bool Start() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) return false;
    if (listen(listen_fd_, 1) != 0) return false;
    socklen_t len = sizeof(a);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    threads_.emplace_back([this] { Accept(); });
    for (int i = 0; i < workers_; ++i) threads_.emplace_back([this] { Work(); });
    return true;
  }
  void Stop() {
    stop_ = true;
    cv_.notify_all();
    for (auto& t : threads_) t.join();
    threads_.clear();
    for (int fd : pending_) close(fd);
    pending_.clear();
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int max_open() const { return max_open_.load(); }
  int answered() const { return answered_.load(); }

 private:
  void Accept() {
    while (!stop_) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait_for(lock, std::chrono::milliseconds(20),
                     [&] { return stop_ || open_ < workers_ + kSpare; });
        if (stop_) return;
        if (open_ >= workers_ + kSpare) continue;
      }
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      std::lock_guard<std::mutex> lock(mu_);
      ++open_;
      max_open_ = std::max(max_open_.load(), open_);
      pending_.push_back(fd);
      cv_.notify_all();
    }
  }
  void Work() {
    while (true) {
      int fd;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_ || !pending_.empty(); });
        if (stop_) return;
        fd = pending_.front();
        pending_.pop_front();
      }
      Serve(fd);
      close(fd);
      std::lock_guard<std::mutex> lock(mu_);
      --open_;
      cv_.notify_all();
    }
  }
  // GET requests without a body, answered in order, keep-alive.
  void Serve(int fd) {
    std::string buf;
    char chunk[4096];
    while (!stop_) {
      size_t end = buf.find("\r\n\r\n");
      if (end != std::string::npos) {
        buf.erase(0, end + 4);
        std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms_));
        static const std::string kAnswer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if (send(fd, kAnswer.data(), kAnswer.size(), MSG_NOSIGNAL) != (ssize_t)kAnswer.size()) {
          return;
        }
        ++answered_;
        continue;
      }
      pollfd p{fd, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      ssize_t n = recv(fd, chunk, sizeof(chunk), 0);
      if (n <= 0) return;
      buf.append(chunk, static_cast<size_t>(n));
    }
  }

  const int workers_;
  const int delay_ms_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int> pending_;  // accepted, waiting for a worker
  int open_ = 0;             // guarded by mu_
  std::atomic<int> max_open_{0};
  std::atomic<int> answered_{0};
  std::vector<std::thread> threads_;
};

struct Burst {
  int ok = 0;
  std::vector<int> other;  // statuses of the rest (0: no answer)
};

// n clients at once, one GET each on its own connection.
Burst SendBurst(uint16_t port, int n, const std::string& path) {
  std::vector<int> status(static_cast<size_t>(n), 0);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      RawClient c;
      bool connected = c.Connect(port);
      ++ready;
      while (!go) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      if (!connected) return;
      HttpResponse r = c.Get(path + "?i=" + std::to_string(i), {}, kHangGuardMs);
      status[static_cast<size_t>(i)] = r.ok ? r.status : 0;
    });
  }
  while (ready < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  go = true;
  for (auto& t : threads) t.join();
  Burst b;
  for (int s : status) {
    if (s == 200) {
      ++b.ok;
    } else {
      b.other.push_back(s);
    }
  }
  return b;
}

// The load the running serve last reported for `backend`'s first instance
// (`backend show --json`); null until it has reported.
Json ShownLoad(Fixture& fx, const std::string& backend) {
  RunResult r = fx.Cli({"backend", "show", backend, "--json"});
  if (r.exit_code != 0) return nullptr;
  Json j = Json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.contains("load") || j["load"].empty()) return nullptr;
  return j["load"][0];
}

// n GETs of `path` at once, each on its own connection, in threads; their
// statuses (0: no answer) once joined.
class Concurrent {
 public:
  Concurrent(uint16_t port, int n, const std::string& path) : status_(static_cast<size_t>(n)) {
    for (int i = 0; i < n; ++i) {
      threads_.emplace_back([this, port, path, i] {
        RawClient c;
        if (!c.Connect(port)) return;
        HttpResponse r = c.Get(path + "?i=" + std::to_string(i), {}, kHangGuardMs);
        status_[static_cast<size_t>(i)] = r.ok ? r.status : 0;
      });
    }
  }
  std::vector<int> Join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
    return status_;
  }
  ~Concurrent() {
    for (auto& t : threads_) t.join();
  }

 private:
  std::vector<int> status_;
  std::vector<std::thread> threads_;
};

int Count(const std::vector<Json>& lines, int status, const std::string& reason) {
  return static_cast<int>(std::count_if(lines.begin(), lines.end(), [&](const Json& l) {
    return l["status"] == status && l["reason"] == reason;
  }));
}

TEST_CASE("e2e: a burst of 20xK clients through --max-conns K is all answered; without the cap "
          "it fails as the monolith cannot take it") {
  constexpr int kWorkers = 4;  // K
  constexpr int kClients = 20 * kWorkers;
  Monolith legacy(kWorkers, 20);
  REQUIRE(legacy.Start());

  SUBCASE("with --max-conns K") {
    Fixture fx;
    fx.AddBackend("legacy", legacy.url(),
                  {"--max-conns", std::to_string(kWorkers), "--timeout-ms", "3000"});
    REQUIRE(fx.StartServe());
    Burst b = SendBurst(fx.port(), kClients, "/orders");
    MESSAGE("capped: " << b.ok << "/" << kClients << " answered 200; the monolith held at most "
                       << legacy.max_open() << " connections at once (K = " << kWorkers << ")");
    CHECK(b.ok == kClients);
    CHECK(b.other.empty());
    CHECK(legacy.max_open() <= kWorkers);
    std::vector<Json> lines = fx.StopAndReadLog();
    REQUIRE(lines.size() == static_cast<size_t>(kClients));
    int waited = 0;
    double max_wait = 0;
    for (const Json& l : lines) {
      CHECK(l["status"] == 200);
      if (l.contains("queue_ms")) {
        ++waited;
        max_wait = std::max(max_wait, l["queue_ms"].get<double>());
      }
    }
    MESSAGE(waited << " requests waited in the queue, the longest " << max_wait << " ms");
    CHECK(waited >= kClients - 2 * kWorkers);  // all but those that found room at once
  }

  SUBCASE("without a cap: the same burst reproduces the failure") {
    Fixture fx;
    fx.AddBackend("legacy", legacy.url(), {"--timeout-ms", "3000"});
    REQUIRE(fx.StartServe());
    Burst b = SendBurst(fx.port(), kClients, "/orders");
    std::sort(b.other.begin(), b.other.end());
    int n502 = static_cast<int>(std::count(b.other.begin(), b.other.end(), 502));
    int n504 = static_cast<int>(std::count(b.other.begin(), b.other.end(), 504));
    MESSAGE("uncapped: " << b.ok << "/" << kClients << " answered 200, " << n504 << " got 504, "
                         << n502 << " got 502; the monolith held " << legacy.max_open()
                         << " connections at once");
    CHECK(b.ok < kClients);
    CHECK(b.ok + n502 + n504 == kClients);
    CHECK(legacy.max_open() > kWorkers);
  }
}

TEST_CASE("e2e: over --max-queue, 503 at once; other backends are served meanwhile; a wait "
          "ends at --queue-timeout") {
  TwoBackends t;
  t.fx.MustCli({"backend", "set", "new", "--max-conns", "2", "--max-queue", "4",
                "--queue-timeout", "30s"});
  t.fx.StopServe(SIGTERM);  // started again with the settings in force
  REQUIRE(t.fx.StartServe());

  t.fresh.Hold();  // every answer of "new" waits until Release
  constexpr int kClients = 20;
  std::vector<int> status(kClients, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      RawClient c;
      if (!c.Connect(t.fx.port())) return;
      HttpResponse r = c.Get("/new/x?i=" + std::to_string(i), {}, kHangGuardMs);
      status[static_cast<size_t>(i)] = r.ok ? r.status : 0;
    });
  }
  // 2 requests at the backend, 4 queued, 14 refused: the refusals are
  // logged while the backend still holds every answer.
  REQUIRE(PollUntil([&] { return Count(t.fx.LogLines(), 503, "queue") == 14; }));
  CHECK(t.fresh.request_count() == 2);
  // Meanwhile another backend answers as usual.
  RawClient other;
  REQUIRE(other.Connect(t.fx.port()));
  HttpResponse r = other.Get("/elsewhere");
  CHECK(r.status == 200);
  CHECK(r.body == "legacy");
  t.fresh.Release();
  for (auto& th : threads) th.join();
  CHECK(std::count(status.begin(), status.end(), 200) == 6);
  CHECK(std::count(status.begin(), status.end(), 503) == 14);
  CHECK(t.fresh.request_count() == 6);
  std::vector<Json> lines = t.fx.StopAndReadLog();
  for (const Json& l : lines) {
    if (l["status"] != 503) continue;
    CHECK(l["reason"] == "queue");
    CHECK(l["backend"] == "new");
    CHECK(l["queue_ms"] == 0);
  }

  SUBCASE("a wait ends at --queue-timeout with 503 and what was waited") {
    t.fx.MustCli({"backend", "set", "new", "--max-conns", "1", "--queue-timeout", "300ms"});
    REQUIRE(t.fx.StartServe());
    t.ClearRequests();
    t.fresh.Hold();
    std::thread first([&] {
      RawClient c;
      if (c.Connect(t.fx.port())) c.Get("/new/first", {}, kHangGuardMs);
    });
    REQUIRE(PollUntil([&] { return t.fresh.request_count() == 1; }));
    RawClient second;
    REQUIRE(second.Connect(t.fx.port()));
    HttpResponse late = second.Get("/new/second", {{"X-Request-Id", "waited"}});
    CHECK(late.status == 503);
    CHECK(late.body.find("saturated") != std::string::npos);
    CHECK(late.body.find("waited 300 ms") != std::string::npos);
    t.fresh.Release();
    first.join();
    auto line = t.fx.LogLineFor("waited");
    REQUIRE(line);
    CHECK((*line)["reason"] == "queue");
    CHECK((*line)["queue_ms"].get<double>() > 0);  // it waited (how long is the 503's text)
  }
}

TEST_CASE("e2e: --connect-timeout-ms: an instance that does not accept in time is passed over "
          "for the next one; alone it gives 504 well before --timeout-ms") {
  BlackHole hole;
  REQUIRE_MESSAGE(hole.full(), "could not fill the listen queue of the black hole");
  const std::string hole_url = "http://127.0.0.1:" + std::to_string(hole.port());
  RawBackend live("live");
  REQUIRE(live.Start());
  Fixture fx;
  fx.AddBackend("pair", hole_url, {live.url(), "--connect-timeout-ms", "200", "--default"});
  fx.AddBackend("solo", hole_url, {"--connect-timeout-ms", "200"});
  fx.AddRoute("solo", {"--to", "solo", "--path", "/solo"});
  REQUIRE(fx.StartServe());
  // Instances in turn: every other request tries the hole first.
  for (int i = 0; i < 4; ++i) {
    RawClient c;
    REQUIRE(c.Connect(fx.port()));
    HttpResponse r = c.Get("/pair/" + std::to_string(i), {}, kHangGuardMs);
    CHECK(r.status == 200);
    CHECK(r.body == "live");
  }
  CHECK(live.request_count() == 4);
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  HttpResponse r = c.Get("/solo/x", {}, kHangGuardMs);
  CHECK(r.status == 504);
  CHECK(r.body.find("backend 'solo' did not accept a connection within 200 ms") !=
        std::string::npos);
}

TEST_CASE("e2e: a lowered --max-conns bites at once: idle connections over it are closed") {
  TwoBackends t;
  t.fx.MustCli({"backend", "set", "legacy", "--max-conns", "4"});
  t.fx.StopServe(SIGTERM);
  REQUIRE(t.fx.StartServe());
  // Four connections, pooled once answered.
  t.legacy.Hold();
  {
    Concurrent four(t.fx.port(), 4, "/a");
    REQUIRE(PollUntil([&] { return t.legacy.request_count() == 4; }));
    t.legacy.Release();
    for (int s : four.Join()) CHECK(s == 200);
  }
  REQUIRE(PollUntil([&] {
    Json l = ShownLoad(t.fx, "legacy");
    return l.is_object() && l["idle"] == 4;
  }));
  t.fx.MustCli({"backend", "set", "legacy", "--max-conns", "1"});
  REQUIRE(PollUntil([&] {
    Json l = ShownLoad(t.fx, "legacy");
    return l.is_object() && l["max_conns"] == 1;
  }));
  // The next burst meets the new cap: one request at the backend at a time.
  t.ClearRequests();
  t.legacy.Hold();
  Concurrent burst(t.fx.port(), 4, "/b");
  REQUIRE(PollUntil([&] { return t.legacy.request_count() >= 1; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // room for a wrong second one
  CHECK(t.legacy.request_count() == 1);
  t.legacy.Release();
  for (int s : burst.Join()) CHECK(s == 200);
  CHECK(t.legacy.request_count() == 4);
}

TEST_CASE("e2e: an instance whose connect timed out is not tried again: the request waits for "
          "the backend's other instance") {
  BlackHole hole;
  REQUIRE_MESSAGE(hole.full(), "could not fill the listen queue of the black hole");
  RawBackend live("live");
  REQUIRE(live.Start());
  Fixture fx;
  fx.AddBackend("be", "http://127.0.0.1:" + std::to_string(hole.port()),
                {live.url(), "--default", "--max-conns", "1", "--connect-timeout-ms", "300"});
  REQUIRE(fx.StartServe());
  live.Hold();
  Concurrent first(fx.port(), 1, "/first");
  REQUIRE(PollUntil([&] { return live.request_count() == 1; }));
  // Whichever instance is their turn, both end up waiting for "live": the
  // black hole's slot is free, but its connect just failed.
  Concurrent more(fx.port(), 2, "/more");
  REQUIRE(PollUntil([&] {
    RunResult r = fx.Cli({"backend", "show", "be", "--json"});
    Json j = Json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.contains("load")) return false;
    int64_t queued = 0;
    for (const Json& row : j["load"]) queued += row["queued"].get<int64_t>();
    return queued == 2;
  }));
  live.Release();
  for (int s : first.Join()) CHECK(s == 200);
  for (int s : more.Join()) CHECK(s == 200);
  CHECK(live.request_count() == 3);
}

TEST_CASE("e2e: pooled connections the backend closed are let go within seconds, not at the "
          "idle expiry: they no longer count against the cap") {
  std::atomic<int> arrived{0};
  // Each connection answers once three requests are in, then closes 50 ms
  // later without saying so (no Connection: close).
  ScriptBackend be([&](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req, false, kHangGuardMs)) return;
    ++arrived;
    while (arrived < 3 && !conn.stopping()) conn.Sleep(5);
    conn.Send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    conn.Sleep(50);
  });
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url(), {"--default", "--max-conns", "3"});
  REQUIRE(fx.StartServe());
  {
    Concurrent three(fx.port(), 3, "/x");
    for (int s : three.Join()) CHECK(s == 200);
  }
  REQUIRE(PollUntil([&] { return be.open_connections() == 0; }));
  // The router notices at its next housekeeping (each second) and reports
  // within a few more: before, they stayed "open" until --upstream-idle-s.
  CHECK(PollUntil([&] {
    Json l = ShownLoad(fx, "be");
    return l.is_object() && l["open"] == 0;
  }, 10000));
}

TEST_CASE("e2e: the mirror's pooled connections the backend closed are let go too") {
  // Answers, then closes 50 ms later without saying so.
  ScriptBackend copies([&](ScriptConn& conn) {
    RecordedRequest req;
    if (!conn.ReadRequest(&req, false, kHangGuardMs)) return;
    conn.Send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
    conn.Sleep(50);
  });
  REQUIRE(copies.Start());
  RawBackend legacy("legacy");
  REQUIRE(legacy.Start());
  Fixture fx;
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("copies", copies.url(), {"--max-conns", "2"});
  fx.AddRoute("r", {"--to", "legacy", "--path", "/r", "--mirror", "copies"});
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  CHECK(c.Get("/r/1").status == 200);
  REQUIRE(PollUntil([&] { return copies.request_count() == 1; }));
  REQUIRE(PollUntil([&] { return copies.open_connections() == 0; }));
  CHECK(PollUntil([&] {
    Json l = ShownLoad(fx, "copies");
    return l.is_object() && l["open"] == 0;
  }, 10000));
}

TEST_CASE("e2e: requests queued for an instance its backend no longer lists keep its cap") {
  RawBackend old_be("old"), new_be("new");
  REQUIRE(old_be.Start());
  REQUIRE(new_be.Start());
  Fixture fx;
  fx.AddBackend("be", old_be.url(), {"--default", "--max-conns", "1", "--queue-timeout", "30s"});
  REQUIRE(fx.StartServe());
  old_be.Hold();
  Concurrent three(fx.port(), 3, "/x");
  REQUIRE(PollUntil([&] { return old_be.request_count() == 1; }));
  fx.MustCli({"backend", "set", "be", new_be.url()});
  // Reloaded: serve reports the new instance (a request sent before would
  // queue behind the others).
  const std::string new_instance = "127.0.0.1:" + std::to_string(new_be.port());
  REQUIRE(PollUntil([&] {
    Json l = ShownLoad(fx, "be");
    return l.is_object() && l["instance"] == new_instance;
  }));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  CHECK(c.Get("/probe").body == "new");  // new requests go to the new URL
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // room for a wrong release
  CHECK(old_be.request_count() == 1);  // the two queued for it still wait their turn
  old_be.Release();
  for (int s : three.Join()) CHECK(s == 200);
  CHECK(old_be.request_count() == 3);
}

TEST_CASE("e2e: at --max-conns, keep-alive clients on both workers reuse the capped connections "
          "instead of closing and opening new ones") {
  // A request on one worker that finds the cap taken by a connection idle
  // in the other worker's pool moves it over; it used to close it and
  // connect anew, and a fragile backend pays for every connect.
  RawBackend be("be");
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url(), {"--max-conns", "2"});
  REQUIRE(fx.StartServe({"--threads", "2"}));
  constexpr int kClients = 4, kRequests = 50;
  std::atomic<int> ok{0};
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      RawClient c;  // connections go to the workers in turn: two on each
      if (!c.Connect(fx.port())) return;
      for (int i = 0; i < kRequests; ++i) {
        HttpResponse r = c.Get("/c" + std::to_string(t) + "/" + std::to_string(i), {}, kHangGuardMs);
        if (r.ok && r.status == 200) ++ok;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  }
  for (auto& c : clients) c.join();
  MESSAGE(ok.load() << " of " << kClients * kRequests << " answered; backend connections opened: "
                    << be.connections_accepted());
  CHECK(ok.load() == kClients * kRequests);
  CHECK(be.connections_accepted() <= 2);
}

TEST_CASE("e2e: --reuse-quiet-ms 0: a keep-alive client's back-to-back requests ride one "
          "backend connection") {
  // By default a pooled connection waits 1 ms after its answer before it
  // carries another request, and a request that comes sooner without a
  // cap connects anew. A backend trusted never to write past an answer can
  // be given 0: the connection is reused at once, whatever the timing.
  RawBackend be("be");
  REQUIRE(be.Start());
  Fixture fx;
  fx.AddBackend("be", be.url(), {"--reuse-quiet-ms", "0"});
  REQUIRE(fx.StartServe({"--threads", "1"}));
  constexpr int kRequests = 50;
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  int ok = 0;
  for (int i = 0; i < kRequests; ++i) {
    HttpResponse r = c.Get("/seq/" + std::to_string(i), {}, kHangGuardMs);
    if (r.ok && r.status == 200) ++ok;
  }
  MESSAGE(ok << " of " << kRequests << " answered; backend connections opened: "
             << be.connections_accepted());
  CHECK(ok == kRequests);
  CHECK(be.connections_accepted() == 1);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
