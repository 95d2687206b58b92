// Chaos: steady load from keep-alive clients while the rules change again and
// again (no request may fail, and every change is taken by the router and
// used), and a backend dying mid-load (only the requests routed to it fail,
// with 502). Counts of events, never a number of changes in a given time:
// the rates are printed.
#include <atomic>
#include <csignal>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

// Under ASan/TSan each `strangler route` run (a sanitized process start and
// SQLite write) takes 100-400 ms: fewer changes there, still many snapshot
// swaps under load.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr int kFlips = 20;
#else
constexpr int kFlips = 100;
#endif

struct Tally {
  std::atomic<int> ok{0}, failed{0}, bad_gateway{0};
  std::atomic<int> answered{0};  // complete answers, whatever their status
  std::mutex mu;
  std::map<std::string, int> by_backend;
  std::vector<std::string> failures;
  void Fail(const std::string& what) {
    ++failed;
    std::lock_guard<std::mutex> l(mu);
    if (failures.size() < 10) failures.push_back(what);
  }
};

// `clients` keep-alive clients send GETs on `paths` in turn until `stop`.
void Load(uint16_t port, int clients, const std::vector<std::string>& paths,
          std::atomic<bool>* stop, Tally* tally, std::vector<std::thread>* threads) {
  for (int t = 0; t < clients; ++t) {
    threads->emplace_back([=] {
      RawClient c;
      size_t i = static_cast<size_t>(t);
      while (!stop->load()) {
        if (!c.connected() && !c.Connect(port)) {
          tally->Fail("connect failed");
          continue;
        }
        const std::string& path = paths[i++ % paths.size()];
        HttpResponse r = c.Get(path, {{"X-User-Id", std::to_string(i % 997)}});
        if (!r.ok) {
          tally->Fail(path + ": " + r.error);
          c.Close();
          continue;
        }
        ++tally->answered;
        if (r.status == 502) {
          ++tally->bad_gateway;
          std::lock_guard<std::mutex> l(tally->mu);
          ++tally->by_backend["502 " + path];
          continue;
        }
        if (r.status != 200) {
          tally->Fail(path + ": status " + std::to_string(r.status));
          continue;
        }
        ++tally->ok;
        auto be = r.Header("X-Backend");
        std::lock_guard<std::mutex> l(tally->mu);
        ++tally->by_backend[be ? *be : "?"];
      }
    });
  }
}

// The ruleset version in the store now (what `explain` reports).
int64_t RulesetNow(Fixture& fx) {
  RunResult r = fx.MustCli({"explain", "/", "--json"});
  Json j = Json::parse(r.out, nullptr, false);
  REQUIRE_MESSAGE((!j.is_discarded() && j["ruleset"].is_number_integer()), r.out);
  return j["ruleset"].get<int64_t>();
}

TEST_CASE("e2e: chaos: rule changes under load are each taken and used, and fail no request") {
  Fixture fx;
  RawBackend a("a"), b("b");
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  fx.AddBackend("a", a.url());
  fx.AddBackend("b", b.url());
  fx.AddRoute("split", {"--to", "b", "--path", "/s", "--percent", "50", "--sticky",
                        "header:X-User-Id"});
  fx.AddRoute("moved", {"--to", "b", "--path", "/m"});
  REQUIRE(fx.StartServe());
  const int64_t first = RulesetNow(fx);

  constexpr int kClients = 8;
  std::atomic<bool> stop{false};
  Tally tally;
  std::vector<std::thread> threads;
  Load(fx.port(), kClients, {"/s/1", "/m/2", "/other"}, &stop, &tally, &threads);

  // Each change is one write (one new ruleset version); the next one is made
  // once the router has reloaded this one and answered requests with it, so
  // that every version serves traffic. No pause of a set length: the router
  // reloads every 50 ms (--reload-ms), so this is also about the cadence the
  // old test forced.
  int flips = 0, flip_errors = 0, not_taken = 0;
  int64_t version = first;
  bool moved_enabled = true;
  const char* kPercents[] = {"0", "25", "100", "12.5", "99.99"};
  const int64_t t0 = NowMs();
  for (int k = 0; k < kFlips && not_taken == 0; ++k) {
    RunResult r;
    if (k % 3 == 2) {
      r = fx.Cli({"route", moved_enabled ? "disable" : "enable", "moved"});
      if (r.exit_code == 0) moved_enabled = !moved_enabled;
    } else {
      r = fx.Cli({"route", "set", "split", "--percent", kPercents[k % 5]});
    }
    if (r.exit_code != 0) {
      ++flip_errors;
      MESSAGE("change " << k << " failed: " << r.err);
      continue;
    }
    ++flips;
    ++version;
    // The router reloads exactly this change...
    const std::string reloaded = "reloaded rules: ruleset " + std::to_string(version - 1) + " -> " +
                                 std::to_string(version) + "\n";
    if (!PollUntil([&] { return fx.serve()->Stderr().find(reloaded) != std::string::npos; })) {
      ++not_taken;
      MESSAGE("ruleset " << version << " was not reloaded; stderr:\n" << fx.serve()->Stderr());
      break;
    }
    // ...and decides requests with it: of the next kClients + 1 answers at
    // least one is to a request sent after the reload was seen (each client
    // has at most one request in flight).
    const int seen = tally.answered.load();
    if (!PollUntil([&] { return tally.answered.load() > seen + kClients; })) {
      ++not_taken;
      MESSAGE("no request answered with ruleset " << version);
    }
  }
  const int64_t took = NowMs() - t0;
  stop = true;
  for (auto& t : threads) t.join();
  MESSAGE(tally.ok.load() << " requests answered during " << flips << " rule changes in " << took
                          << " ms (" << flips * 1000 / (took + 1) << " changes/s, "
                          << static_cast<int64_t>(tally.ok.load()) * 1000 / (took + 1)
                          << " requests/s); " << tally.failed.load() << " failed");
  for (const auto& f : tally.failures) MESSAGE("failure: " << f);
  CHECK(flips == kFlips);
  CHECK(flip_errors == 0);
  CHECK(not_taken == 0);
  CHECK(tally.failed.load() == 0);
  CHECK(tally.bad_gateway.load() == 0);

  // The decision log holds requests decided with every version, in order.
  std::vector<Json> lines = fx.StopAndReadLog();
  std::map<int64_t, int> per_version;
  for (const Json& j : lines) {
    if (j.contains("ruleset") && j["ruleset"].is_number_integer()) {
      ++per_version[j["ruleset"].get<int64_t>()];
    }
  }
  CHECK(lines.size() == static_cast<size_t>(tally.answered.load()));
  int missing = 0;
  for (int64_t v = first; v <= first + flips; ++v) {
    if (per_version[v] == 0) {
      ++missing;
      MESSAGE("no request in the decision log was decided with ruleset " << v);
    }
  }
  CHECK(missing == 0);
  CHECK(per_version.rbegin()->first == first + flips);
}

TEST_CASE("e2e: chaos: a backend killed mid-load fails only its own requests, with 502") {
  Fixture fx;
  RawBackend a("a"), b("b");
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  fx.AddBackend("a", a.url());
  fx.AddBackend("b", b.url());
  fx.AddRoute("to-b", {"--to", "b", "--path", "/b"});
  REQUIRE(fx.StartServe());

  std::atomic<bool> stop{false};
  Tally tally;
  std::vector<std::thread> threads;
  Load(fx.port(), 8, {"/a/1", "/b/1"}, &stop, &tally, &threads);
  auto count = [&](const std::string& key) {
    std::lock_guard<std::mutex> l(tally.mu);
    return tally.by_backend[key];
  };
  // Load on both backends first.
  CHECK(PollUntil([&] { return count("a") >= 100 && count("b") >= 100; }));
  const int ok_before = tally.ok.load();
  const int b_before = count("b");
  b.Stop();  // b dies: its listener and its connections go away
  // Its requests get 502 from now on...
  CHECK(PollUntil([&] { return tally.bad_gateway.load() >= 50; }));
  // ...while a's go on being answered.
  const int a_after_502 = count("a");
  CHECK(PollUntil([&] { return count("a") >= a_after_502 + 100; }));
  stop = true;
  for (auto& t : threads) t.join();
  std::lock_guard<std::mutex> l(tally.mu);
  for (const auto& [k, v] : tally.by_backend) MESSAGE(k << ": " << v);
  for (const auto& f : tally.failures) MESSAGE("failure: " << f);
  MESSAGE(ok_before << " answered before b died, b " << b_before);
  CHECK(ok_before >= 200);
  CHECK(tally.failed.load() == 0);                    // nothing but 200 or 502
  CHECK(tally.bad_gateway.load() >= 50);              // b's requests after it died
  CHECK(tally.by_backend.count("502 /a/1") == 0);     // a's never fail
  CHECK(tally.by_backend["a"] >= a_after_502 + 100);  // a kept being served
  CHECK(fx.serve()->Running());
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
