// Concurrency and connection reuse: many keep-alive clients while the rules
// change, and upstream keep-alive.
#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

// Counts, not time: every client sends its requests and goes on until the
// percent has changed kMinFlips times; the rate is printed. A stuck router
// ends a client through its read timeouts, a stuck CLI the flipper through
// Run's.
TEST_CASE("e2e: 32 keep-alive clients x 200 requests while the percent flips") {
  Fixture fx;
  RawBackend a("a"), b("b");
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  fx.AddBackend("a", a.url());
  fx.AddBackend("b", b.url());
  fx.AddRoute("flip", {"--to", "b", "--path", "/f", "--percent", "50"});
  REQUIRE(fx.StartServe());

  const int kClients = 32;
  const int kRequests = 200;
  const int kMinFlips = 10;
  std::atomic<int> done_clients{0};
  std::atomic<int> sent{0}, ok{0}, failed{0}, not_sent{0}, reconnects{0};
  std::mutex mu;
  std::vector<std::string> failures;
  auto fail = [&](const std::string& what) {
    ++failed;
    std::lock_guard<std::mutex> l(mu);
    if (failures.size() < 10) failures.push_back(what);
  };

  std::atomic<bool> stop_flipping{false};
  std::atomic<int> flips{0}, flip_errors{0};  // declared before the clients use them
  std::thread flipper([&] {
    const char* kPercents[] = {"0", "30", "70", "100", "12.5"};
    int k = 0;
    while (!stop_flipping) {
      RunResult r = fx.Cli({"route", "set", "flip", "--percent", kPercents[k++ % 5]});
      if (r.exit_code == 0) {
        ++flips;
      } else {
        ++flip_errors;
      }
      for (int i = 0; i < 10 && !stop_flipping; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  });

  int64_t start = NowMs();
  std::vector<std::thread> clients;
  for (int t = 0; t < kClients; ++t) {
    clients.emplace_back([&, t] {
      RawClient c;
      int consecutive_failures = 0;
      // At least kRequests each, and on until the percent has flipped
      // kMinFlips times (or a change failed), so requests overlap many
      // reloads.
      for (int i = 0; i < kRequests || (flips.load() < kMinFlips && flip_errors.load() == 0);
           ++i) {
        if (consecutive_failures > 3) {
          if (i < kRequests) not_sent += kRequests - i;
          break;
        }
        ++sent;
        if (!c.connected()) {
          if (!c.Connect(fx.port())) {
            fail("client " + std::to_string(t) + ": connect failed");
            ++consecutive_failures;
            continue;
          }
          if (i > 0) ++reconnects;
        }
        std::string target = "/f/" + std::to_string(t) + "/" + std::to_string(i);
        HttpResponse r = c.Get(target);
        std::string backend = r.Header("X-Backend").value_or("");
        if (!r.ok) {
          fail("client " + std::to_string(t) + " GET " + target + ": " + r.error);
          ++consecutive_failures;
          c.Close();
        } else if (r.status != 200 || (backend != "a" && backend != "b")) {
          fail("client " + std::to_string(t) + " GET " + target + ": status " +
               std::to_string(r.status) + " backend '" + backend + "' body " + Printable(r.body));
          ++consecutive_failures;
        } else {
          ++ok;
          consecutive_failures = 0;
        }
        // Paced so that the run spans the reloads (~1.5 s) without
        // flooding the log: ~8k requests in all.
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (r.Header("Connection").value_or("").find("close") != std::string::npos) c.Close();
      }
      ++done_clients;
    });
  }
  for (auto& th : clients) th.join();
  int64_t elapsed = NowMs() - start;
  stop_flipping = true;
  flipper.join();

  MESSAGE(sent.load() << " sent, " << ok.load() << " ok, " << failed.load() << " failed, "
                      << not_sent.load() << " not sent, in " << elapsed << " ms ("
                      << (ok.load() * 1000 / (elapsed + 1)) << " req/s); " << flips.load()
                      << " percent flips (" << flip_errors.load() << " failed); client reconnects "
                      << reconnects.load() << "; backend a " << a.request_count() << ", b "
                      << b.request_count());
  for (const auto& f : failures) MESSAGE("failure: " << f);
  CHECK(failed.load() == 0);
  CHECK(not_sent.load() == 0);
  CHECK(ok.load() == sent.load());
  CHECK(ok.load() >= kClients * kRequests);
  CHECK(flip_errors.load() == 0);
  CHECK(flips.load() >= kMinFlips);
  CHECK(a.request_count() > 0);
  CHECK(b.request_count() > 0);
  // Every request has its decision line (none dropped under load).
  auto lines = fx.StopAndReadLog();
  CHECK(lines.size() == static_cast<size_t>(sent.load()));
}

TEST_CASE("e2e: upstream keep-alive: 50 sequential requests use at most 2 backend connections") {
  Fixture fx;
  RawBackend be("be");
  REQUIRE(be.Start());
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  // A pooled connection is reused once it has been quiet for 1 ms after its
  // answer (README, "Bytes in flight"): a client that pauses longer than
  // that between requests finds it every time.
  for (int i = 0; i < 50; ++i) {
    HttpResponse r = c.Get("/ka/" + std::to_string(i));
    REQUIRE_MESSAGE(r.ok, "request " << i << ": " << r.error);
    CHECK(r.status == 200);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
  }
  CHECK(be.request_count() == 50);
  MESSAGE("backend connections opened for 50 requests 3 ms apart: " << be.connections_accepted());
  CHECK(be.connections_accepted() <= 2);
  // Back to back, each request comes before the connection the one before
  // used has settled: others are opened until the first ones have (about
  // as many as requests come in 1 ms), then reused.
  const size_t before = be.connections_accepted();
  for (int i = 0; i < 200; ++i) {
    HttpResponse r = c.Get("/kb/" + std::to_string(i));
    REQUIRE_MESSAGE(r.ok, "request " << i << ": " << r.error);
    CHECK(r.status == 200);
  }
  MESSAGE("backend connections opened for 200 requests back to back: "
          << be.connections_accepted() - before);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
