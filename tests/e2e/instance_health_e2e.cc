// Instances that fail: passive ejection (--eject-after, --eject-for), panic
// mode when every instance is out, and --fallback going to --else at once
// when the --to backend has none left. Real demo backends killed and
// restarted, a backend that never answers, ports where nothing listens.
#include <atomic>
#include <chrono>
#include <csignal>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "script_backend.h"

namespace strangler {
namespace e2e {
namespace {

// A strangler-demo-backend process on 127.0.0.1:port (answers with
// X-Backend: name), startable again on the same port once stopped.
class DemoProcess {
 public:
  DemoProcess(const TempDir& dir, std::string name, uint16_t port)
      : dir_(dir), name_(std::move(name)), port_(port) {}
  bool Start() {
    ++starts_;
    const std::string tag = name_ + std::to_string(starts_);
    proc_ = std::make_unique<Process>(
        std::vector<std::string>{DEMO_BACKEND_BIN, "--name", name_, "--listen",
                                 "127.0.0.1:" + std::to_string(port_)},
        std::vector<std::string>{}, dir_.File(tag + ".out"), dir_.File(tag + ".err"));
    return proc_->Start() && WaitForPort(port_, kHangGuardMs);
  }
  void Kill() { proc_->Stop(SIGKILL, kHangGuardMs); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string instance() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  const TempDir& dir_;
  std::string name_;
  uint16_t port_;
  int starts_ = 0;
  std::unique_ptr<Process> proc_;
};

bool StderrHas(Fixture& fx, const std::string& text) {
  return fx.serve()->Stderr().find(text) != std::string::npos;
}

// Keep-alive GETs from `clients` threads until stopped; counts answers by
// backend, and anything but a 200.
struct Load {
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0}, from_a{0};
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<std::string> failures;  // the first few, for the message
  Load(uint16_t port, int clients) {
    for (int t = 0; t < clients; ++t) {
      threads.emplace_back([this, port] {
        RawClient c;
        while (!stop.load()) {
          if (!c.connected() && !c.Connect(port)) {
            ++failed;
            continue;
          }
          HttpResponse r = c.Get("/load", {}, kHangGuardMs);
          if (!r.ok || r.status != 200) {
            ++failed;
            {
              std::lock_guard<std::mutex> l(mu);
              if (failures.size() < 5) failures.push_back(r.ok ? r.body : r.error);
            }
            c.Close();
            continue;
          }
          ++ok;
          if (r.Header("X-Backend").value_or("") == "a") ++from_a;
        }
      });
    }
  }
  void Stop() {
    stop = true;
    for (auto& t : threads) t.join();
    threads.clear();
  }
  ~Load() { Stop(); }
};

TEST_CASE("e2e: an instance killed mid-load is ejected (no failed GET), and back once restarted "
          "and its checks pass") {
  TempDir dir;
  DemoProcess a(dir, "a", PickFreePort()), b(dir, "b", PickFreePort());
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  Fixture fx;
  // A long ejection: only passing checks can bring the instance back
  // before the test ends.
  fx.AddBackend("be", a.url(), {});
  fx.MustCli({"backend", "set", "be", a.url(), b.url(), "--eject-after", "3", "--eject-for",
              "5m", "--health-path", "/healthz", "--health-every", "100ms"});
  REQUIRE(fx.StartServe());

  Load load(fx.port(), 4);
  REQUIRE(PollUntil([&] { return load.from_a.load() >= 20 && load.ok.load() >= 100; }));
  const int failed_before_kill = load.failed.load();
  a.Kill();
  // Connects to a are refused and go to b (retried on another instance,
  // whatever the method); after 3 in a row a is out.
  REQUIRE(PollUntil([&] { return StderrHas(fx, "instance " + a.instance() + " ejected"); }));
  const int failed_at_ejection = load.failed.load();
  const int ok_at_ejection = load.ok.load();
  REQUIRE(PollUntil([&] { return load.ok.load() >= ok_at_ejection + 200; }));
  const int failed_while_out = load.failed.load() - failed_at_ejection;
  Json row;
  REQUIRE(PollUntil([&] {
    row = ShownInstance(fx, "be", a.instance());
    return row.is_object() && row["last_failure"].is_string();
  }));
  CHECK((row["last_failure"] == "connection refused" ||
         row["last_failure"] == "connection reset or closed before an answer"));

  // Its checks fail too: down.
  REQUIRE(PollUntil([&] {
    return StderrHas(fx, "instance " + a.instance() + " down: 3 checks failed in a row (last: "
                         "GET /healthz: connection refused)");
  }));
  // Restarted on the same port: back after two passing checks, long before
  // its ejection would run out.
  const int from_a_dead = load.from_a.load();
  REQUIRE(a.Start());
  REQUIRE(PollUntil([&] { return load.from_a.load() >= from_a_dead + 20; }));
  load.Stop();
  CHECK(StderrHas(fx, "instance " + a.instance() + " up: 2 checks passed in a row (GET /healthz: "
                     "200), and its ejection ended"));
  MESSAGE("answered " << load.ok.load() << "; not 200: " << failed_before_kill
                      << " before the kill, " << failed_at_ejection - failed_before_kill
                      << " between the kill and the ejection, " << failed_while_out
                      << " while a was out, " << load.failed.load() - failed_at_ejection
                      << " from the ejection on");
  for (const std::string& f : load.failures) {
    MESSAGE("not 200: " << f);
    auto at = f.find("request_id\":\"");
    if (at != std::string::npos) {
      auto line = fx.LogLineFor(f.substr(at + 13, 32));
      if (line) MESSAGE("  logged: " << line->dump());
    }
  }
  CHECK(failed_before_kill == 0);
  CHECK(load.failed.load() == failed_at_ejection);  // none once it was ejected
  CHECK(fx.serve()->Stderr().find("all instances") == std::string::npos);
  for (const Json& line : fx.StopAndReadLog()) CHECK_FALSE(line.contains("instances"));
}

TEST_CASE("e2e: --health-path: an instance whose checks fail gets no request until two pass") {
  std::atomic<int> a_health{200};
  RawBackend a("a"), b("b");
  a.set_responder([&](const RecordedRequest& req) {
    if (req.target != "/healthz") return a.DefaultResponse(req);
    const int s = a_health.load();
    return "HTTP/1.1 " + std::to_string(s) + (s == 200 ? " OK" : " Service Unavailable") +
           "\r\nContent-Length: 0\r\n\r\n";
  });
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  Fixture fx;
  fx.AddBackend("be", a.url(), {});
  fx.MustCli({"backend", "set", "be", a.url(), b.url(), "--health-path", "/healthz",
              "--health-every", "100ms"});
  REQUIRE(fx.StartServe());
  const std::string ia = "127.0.0.1:" + std::to_string(a.port());
  auto requests_at_a = [&] {
    int n = 0;
    for (const RecordedRequest& r : a.requests()) n += r.target != "/healthz";
    return n;
  };
  auto health_checks_at_a = [&] {
    int n = 0;
    for (const RecordedRequest& r : a.requests()) {
      if (r.target != "/healthz") continue;
      ++n;
      CHECK(r.Header("User-Agent") == "strangler-health-check");
      CHECK(r.Header("Host") == ia);
    }
    return n;
  };
  REQUIRE(PollUntil([&] { return health_checks_at_a() >= 2; }));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (int i = 0; i < 10; ++i) REQUIRE(c.Get("/x", {}, kHangGuardMs).status == 200);
  CHECK(requests_at_a() == 5);  // in turn

  a_health = 503;
  REQUIRE(PollUntil([&] {
    return StderrHas(fx, "instance " + ia + " down: 3 checks failed in a row (last: GET /healthz: "
                         "503)");
  }));
  Json row;
  REQUIRE(PollUntil([&] {
    row = ShownInstance(fx, "be", ia);
    return row.is_object() && row["check_down"] == true;
  }));
  CHECK(row["checked"] == true);
  CHECK(row["last_check"] == "GET /healthz: 503");
  CHECK(fx.MustCli({"backend", "show", "be"}).out.find("down (checks)") != std::string::npos);
  const int before = requests_at_a();
  for (int i = 0; i < 20; ++i) REQUIRE(c.Get("/y", {}, kHangGuardMs).status == 200);
  CHECK(requests_at_a() == before);  // all went to b

  a_health = 200;
  REQUIRE(PollUntil([&] {
    return StderrHas(fx, "instance " + ia + " up: 2 checks passed in a row (GET /healthz: 200)");
  }));
  for (int i = 0; i < 10; ++i) REQUIRE(c.Get("/z", {}, kHangGuardMs).status == 200);
  CHECK(requests_at_a() == before + 5);

  // Checks turned off: the instance is in rotation, whatever it was.
  a_health = 503;
  REQUIRE(PollUntil([&] { return StderrHas(fx, "instance " + ia + " down: 3 checks failed in a row (last: GET /healthz: 503)") &&
                                 fx.serve()->Stderr().rfind("down: 3 checks") >
                                     fx.serve()->Stderr().find("up: 2 checks"); }));
  fx.MustCli({"backend", "set", "be", "--health-path", ""});
  REQUIRE(PollUntil([&] { return StderrHas(fx, "instance " + ia + " back in rotation (no longer checked)"); }));
  const int checks_off = health_checks_at_a();
  for (int i = 0; i < 10; ++i) REQUIRE(c.Get("/w", {}, kHangGuardMs).status == 200);
  CHECK(requests_at_a() == before + 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // room for a wrong check
  CHECK(health_checks_at_a() <= checks_off + 1);  // one may have been under way
}

TEST_CASE("e2e: an instance that hangs is ejected after --eject-after timeouts") {
  RawBackend hang("hang"), fine("fine");
  REQUIRE(hang.Start());
  REQUIRE(fine.Start());
  hang.Hold();  // takes requests, never answers
  Fixture fx;
  fx.AddBackend("be", hang.url(), {});
  fx.MustCli({"backend", "set", "be", hang.url(), fine.url(), "--timeout-ms", "300",
              "--eject-after", "2", "--eject-for", "5m"});
  REQUIRE(fx.StartServe());
  // One client, one request at a time: the instances take turns, so hang
  // gets every other request until it has timed out twice.
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  int timeouts = 0, ok = 0;
  for (int i = 0; i < 40; ++i) {
    if (!c.connected()) REQUIRE(c.Connect(fx.port()));
    HttpResponse r = c.Get("/h/" + std::to_string(i), {}, kHangGuardMs);
    REQUIRE_MESSAGE(r.ok, r.error);
    if (r.status == 504) {
      ++timeouts;
      c.Close();
    } else if (r.status == 200) {
      ++ok;
      CHECK(r.Header("X-Backend") == "fine");
    }
  }
  MESSAGE(timeouts << " timeouts, " << ok << " answered");
  CHECK(timeouts == 2);
  CHECK(ok == 38);
  CHECK(hang.request_count() == 2);
  REQUIRE(PollUntil([&] { return StderrHas(fx, "instance 127.0.0.1:" +
                                                    std::to_string(hang.port()) +
                                                    " ejected for 5m after 2 consecutive "
                                                    "failures (last: no answer in time)"); }));
  Json row;
  REQUIRE(PollUntil([&] {
    row = ShownInstance(fx, "be", "127.0.0.1:" + std::to_string(hang.port()));
    return row.is_object() && row["ejected"] == true;
  }));
  CHECK(row["ejected_until_ms"].is_number_integer());
  RunResult show = fx.MustCli({"backend", "show", "be"});
  CHECK(show.out.find("ejected until ") != std::string::npos);
  hang.Release();
}

TEST_CASE("e2e: all instances down: requests still go to them (logged all_down); a --fallback "
          "route goes to --else at once") {
  ClosedPort p1, p2;
  RawBackend other("other");
  REQUIRE(other.Start());
  Fixture fx;
  fx.AddBackend("other", other.url(), {});  // the default
  fx.AddBackend("gone", p1.url(), {});
  fx.MustCli({"backend", "set", "gone", p1.url(), p2.url(), "--eject-after", "1", "--eject-for",
              "5m"});
  fx.AddRoute("plain", {"--to", "gone", "--path", "/plain"});
  fx.AddRoute("safe", {"--to", "gone", "--else", "other", "--path", "/safe", "--fallback"});
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  // Each connect refused is tried on the other instance: one request
  // ejects both (one failure each is enough here).
  HttpResponse first = c.Get("/plain/1", {{"X-Request-Id", "first"}}, kHangGuardMs);
  REQUIRE(first.ok);
  CHECK(first.status == 502);
  REQUIRE(PollUntil([&] {
    return StderrHas(fx, "instance 127.0.0.1:" + std::to_string(p1.port()) + " ejected") &&
           StderrHas(fx, "instance 127.0.0.1:" + std::to_string(p2.port()) + " ejected");
  }));
  Json before;
  REQUIRE(PollUntil([&] {
    before = ShownInstance(fx, "gone", "127.0.0.1:" + std::to_string(p1.port()));
    return before.is_object() && before["ejected"] == true;
  }));

  // Panic mode: without a fallback the request is tried anyway.
  if (!c.connected()) REQUIRE(c.Connect(fx.port()));
  HttpResponse panic = c.Get("/plain/2", {{"X-Request-Id", "panic"}}, kHangGuardMs);
  REQUIRE(panic.ok);
  CHECK(panic.status == 502);
  // With --fallback, --else at once: gone's instances are not tried.
  if (!c.connected()) REQUIRE(c.Connect(fx.port()));
  HttpResponse safe = c.Get("/safe/1", {{"X-Request-Id", "safe"}}, kHangGuardMs);
  REQUIRE(safe.ok);
  CHECK(safe.status == 200);
  CHECK(safe.Header("X-Backend") == "other");

  auto l_first = fx.LogLineFor("first");
  auto l_panic = fx.LogLineFor("panic");
  auto l_safe = fx.LogLineFor("safe");
  REQUIRE(l_first);
  REQUIRE(l_panic);
  REQUIRE(l_safe);
  CHECK_FALSE(l_first->contains("instances"));  // both were in rotation then
  CHECK((*l_panic)["instances"] == "all_down");
  CHECK((*l_safe)["reason"] == "fallback");
  CHECK((*l_safe)["fallback"] == "all instances down");
  CHECK((*l_safe)["backend"] == "other");
  CHECK_FALSE(l_safe->contains("instances"));  // other's instance is fine
  // Connect failures: the first request's two, the panic request's two;
  // none for the fallback.
  Json after;
  REQUIRE(PollUntil([&] {
    after = ShownInstance(fx, "gone", "127.0.0.1:" + std::to_string(p1.port()));
    Json after2 = ShownInstance(fx, "gone", "127.0.0.1:" + std::to_string(p2.port()));
    return after.is_object() && after2.is_object() &&
           after["connect_failures"].get<int>() + after2["connect_failures"].get<int>() == 4;
  }));
  // (Read again after a moment: a fallback that tried gone would add more.)
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  Json p1_row = ShownInstance(fx, "gone", "127.0.0.1:" + std::to_string(p1.port()));
  Json p2_row = ShownInstance(fx, "gone", "127.0.0.1:" + std::to_string(p2.port()));
  CHECK(p1_row["connect_failures"].get<int>() + p2_row["connect_failures"].get<int>() == 4);
}

TEST_CASE("e2e: host names are looked up off the request path: a name that resolves serves, one "
          "that does not answers 502 saying so, and is retried on another instance") {
  RawBackend be("be");
  REQUIRE(be.Start());
  Fixture fx;
  const std::string by_name = "http://localhost:" + std::to_string(be.port());
  const std::string ghost = "http://nonexistent.invalid:" + std::to_string(be.port());
  fx.AddBackend("named", by_name, {});
  fx.AddBackend("ghost", ghost, {});
  fx.AddBackend("half", ghost, {});
  fx.MustCli({"backend", "set", "half", ghost, by_name});
  fx.AddRoute("g", {"--to", "ghost", "--path", "/g"});
  fx.AddRoute("h", {"--to", "half", "--path", "/h"});
  REQUIRE(fx.StartServe({"--threads", "1"}));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  HttpResponse named = c.Get("/n", {}, kHangGuardMs);
  REQUIRE(named.ok);
  CHECK(named.status == 200);
  HttpResponse g = c.Get("/g", {}, kHangGuardMs);
  REQUIRE(g.ok);
  CHECK(g.status == 502);
  CHECK(g.body.find("backend 'ghost' has no address: cannot resolve 'nonexistent.invalid'") !=
        std::string::npos);
  if (!c.connected()) REQUIRE(c.Connect(fx.port()));
  // An instance without an address is passed over like one that refuses.
  for (int i = 0; i < 4; ++i) {
    HttpResponse h = c.Get("/h/" + std::to_string(i), {}, kHangGuardMs);
    REQUIRE(h.ok);
    CHECK(h.status == 200);
  }
  Json row;
  REQUIRE(PollUntil([&] {
    row = ShownInstance(fx, "half", "nonexistent.invalid:" + std::to_string(be.port()));
    return row.is_object() && row["last_failure"].is_string();
  }));
  CHECK(row["last_failure"] == "name not resolved");
}

TEST_CASE("e2e: the instances left in rotation share an ejected one's turns evenly") {
  RawBackend a("a"), b("b");
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  ClosedPort gone;
  Fixture fx;
  fx.AddBackend("be", a.url(), {});
  fx.MustCli({"backend", "set", "be", a.url(), b.url(), gone.url(), "--eject-after", "1",
              "--eject-for", "5m"});
  REQUIRE(fx.StartServe({"--threads", "1"}));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (int i = 0; i < 300; ++i) REQUIRE(c.Get("/e/" + std::to_string(i), {}, kHangGuardMs).status == 200);
  MESSAGE("a " << a.request_count() << ", b " << b.request_count());
  CHECK(a.request_count() + b.request_count() == 300);
  // (Before: the instance after the ejected one took its turns, 200 to 100.)
  CHECK(a.request_count() >= 148);
  CHECK(b.request_count() >= 148);
}

// GETs of /q/I, each on its own connection in a thread of its own: the
// status (-1: no answer) and the X-Backend that answered, by I, once joined.
class Gets {
 public:
  Gets(uint16_t port, int n) : port_(port), status_(static_cast<size_t>(n)), by_(status_.size()) {}
  ~Gets() { Join(); }
  void Send(int i) {
    threads_.emplace_back([this, i] {
      RawClient c;
      if (!c.Connect(port_)) return;
      HttpResponse r = c.Get("/q/" + std::to_string(i), {}, kHangGuardMs);
      status_[static_cast<size_t>(i)] = r.ok ? r.status : -1;
      by_[static_cast<size_t>(i)] = r.Header("X-Backend").value_or("");
    });
  }
  void Join() {
    for (auto& t : threads_) t.join();
    threads_.clear();
  }
  // Answers with `status` from backend `by` ("" for any).
  int Count(int status, const std::string& by = "") const {
    int n = 0;
    for (size_t i = 0; i < status_.size(); ++i) {
      n += status_[i] == status && (by.empty() || by_[i] == by);
    }
    return n;
  }

 private:
  uint16_t port_;
  std::vector<int> status_;
  std::vector<std::string> by_;
  std::vector<std::thread> threads_;
};

TEST_CASE("e2e: requests queued at an instance that is ejected go to one still in rotation") {
  // Both instances capped at 1 connection and both busy (one hangs, one
  // takes 300 ms an answer): requests wait in their queues. When the
  // instance that hangs is ejected (its request timed out), its waiters
  // move to the other one instead of taking the hanging instance's freed
  // connection and timing out there too.
  RawBackend hang("hang"), fine("fine");
  REQUIRE(hang.Start());
  REQUIRE(fine.Start());
  hang.Hold();
  fine.set_delay_ms(300);
  Fixture fx;
  fx.AddBackend("be", hang.url(), {});
  fx.MustCli({"backend", "set", "be", hang.url(), fine.url(), "--max-conns", "1", "--timeout-ms",
              "3000", "--queue-timeout", "1m", "--eject-after", "1", "--eject-for", "5m"});
  REQUIRE(fx.StartServe({"--threads", "1"}));
  Gets gets(fx.port(), 6);
  gets.Send(0);
  gets.Send(1);
  REQUIRE(PollUntil([&] { return hang.request_count() == 1 && fine.request_count() == 1; }));
  for (int i = 2; i < 6; ++i) gets.Send(i);
  gets.Join();
  hang.Release();
  const int to_fine = gets.Count(200, "fine"), timed_out = gets.Count(504);
  MESSAGE(to_fine << " answered by fine, " << timed_out << " timed out; hang got "
                  << hang.request_count());
  CHECK(timed_out == 1);  // the one that hung
  CHECK(to_fine == 5);
  CHECK(hang.request_count() == 1);
}

TEST_CASE("e2e: a GET whose fresh connection is dropped before an answer goes to another "
          "instance; a POST does not") {
  // An instance that reads each request and closes without answering.
  ScriptBackend dropper([](ScriptConn& conn) {
    RecordedRequest req;
    conn.ReadRequest(&req);
  });
  REQUIRE(dropper.Start());
  RawBackend fine("fine");
  REQUIRE(fine.Start());
  Fixture fx;
  fx.AddBackend("be", dropper.url(), {});
  fx.MustCli({"backend", "set", "be", dropper.url(), fine.url(), "--eject-after", "0"});
  REQUIRE(fx.StartServe({"--threads", "1"}));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  int ok = 0;
  for (int i = 0; i < 10; ++i) {
    HttpResponse r = c.Get("/g/" + std::to_string(i), {}, kHangGuardMs);
    REQUIRE(r.ok);
    ok += r.status == 200;
  }
  CHECK(ok == 10);
  CHECK(fine.request_count() == 10);
  CHECK(dropper.connections_accepted() == 5);  // every other turn was its
  // A POST is not sent twice: 502 when its turn is the dropper's.
  int bad_gateway = 0;
  for (int i = 0; i < 4; ++i) {
    if (!c.connected()) REQUIRE(c.Connect(fx.port()));
    HttpResponse r = c.Request("POST", "/p/" + std::to_string(i), {}, "hi",
                               kHangGuardMs);
    REQUIRE(r.ok);
    bad_gateway += r.status == 502;
  }
  CHECK(bad_gateway == 2);
  CHECK(fine.request_count() == 12);
}

TEST_CASE("e2e: requests queued at an instance its checks take down go to one still in "
          "rotation") {
  // As with an ejection, but the instance leaves rotation by its checks
  // (which time out: it answers nothing) while a request holds its only
  // connection; no passive ejection here.
  RawBackend hang("hang"), fine("fine");
  REQUIRE(hang.Start());
  REQUIRE(fine.Start());
  hang.Hold();
  fine.set_delay_ms(300);
  Fixture fx;
  fx.AddBackend("be", hang.url(), {});
  fx.MustCli({"backend", "set", "be", hang.url(), fine.url(), "--max-conns", "1", "--timeout-ms",
              "5000", "--queue-timeout", "1m", "--eject-after", "0", "--health-path", "/healthz",
              "--health-every", "500ms"});  // fine answers its checks in 300 ms
  REQUIRE(fx.StartServe({"--threads", "1"}));
  auto is_check = [](const RecordedRequest& r) { return r.target == "/healthz"; };
  auto requests_at = [&](RawBackend& be) {
    int n = 0;
    for (const RecordedRequest& r : be.requests()) n += !is_check(r);
    return n;
  };
  Gets gets(fx.port(), 6);
  gets.Send(0);
  gets.Send(1);
  REQUIRE(PollUntil([&] { return requests_at(hang) == 1 && requests_at(fine) >= 1; }));
  for (int i = 2; i < 6; ++i) gets.Send(i);
  gets.Join();
  hang.Release();
  const int to_fine = gets.Count(200, "fine");
  MESSAGE(to_fine << " answered by fine; hang got " << requests_at(hang) << " requests");
  CHECK(StderrHas(fx, "instance 127.0.0.1:" + std::to_string(hang.port()) + " down: 3 checks"));
  CHECK(gets.Count(504) == 1);  // the request that hang held
  CHECK(to_fine == 5);
  CHECK(requests_at(hang) == 1);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
