// Tests of the data plane's counters for GET /metrics: a shard per counting
// thread, summed on collection; status classes, reasons and durations in
// their cells; names as ids that stay; and the text exposition's escaping
// and numbers.
#include "metrics/request_metrics.h"

#include <doctest/doctest.h>

#include <string>
#include <thread>
#include <vector>

#include "metrics/exposition.h"

namespace strangler {
namespace {

TEST_SUITE_BEGIN("metrics");

TEST_CASE("names become ids once and keep them; id 0 is the empty name") {
  MetricNames names;
  CHECK(names.Id("") == 0);
  uint32_t a = names.Id("orders");
  uint32_t b = names.Id("users");
  CHECK(a != 0);
  CHECK(b != a);
  CHECK(names.Id("orders") == a);
  std::vector<std::string> all = names.All();
  REQUIRE(all.size() == 3);
  CHECK(all[a] == "orders");
  CHECK(all[b] == "users");
}

TEST_CASE(
    "requests are counted by reason and status class, with durations in cumulative "
    "buckets") {
  RequestMetrics m(2);
  uint32_t route = m.routes().Id("orders");
  uint32_t backend = m.backends().Id("new");
  m.shard(0).CountRequest(route, backend, "split", 200, 0.0004);
  m.shard(0).CountRequest(route, backend, "split", 204, 0.003);
  m.shard(1).CountRequest(route, backend, "split", 503, 20.0);  // beyond the last bound
  m.shard(1).CountRequest(route, backend, "fallback", 302, 0.001);
  m.shard(1).CountRequest(0, 0, "refused", 405, -1);              // the router's own: no duration
  m.shard(1).CountRequest(route, backend, "nonsense", 200, 0.1);  // not a reason: not counted
  m.shard(1).CountRequest(route, backend, "split", 0, 0.1);       // no status: not counted
  MetricTotals t = m.Collect();
  REQUIRE(t.requests.size() == 2);
  const RequestTotals& r = t.requests.at({route, backend});
  CHECK(r.n[2][1] == 2);  // split, 2xx
  CHECK(r.n[2][4] == 1);  // split, 5xx
  CHECK(r.n[3][2] == 1);  // fallback, 3xx
  CHECK(r.timed == 4);
  CHECK(r.seconds == doctest::Approx(20.0044));
  CHECK(r.bucket[0] == 1);      // <= 0.0005
  CHECK(r.bucket[1] == 2);      // <= 0.001 (the bound itself is in)
  CHECK(r.bucket[3] == 3);      // <= 0.005
  CHECK(r.bucket.back() == 3);  // 20 s: only in +Inf (timed)
  const RequestTotals& own = t.requests.at({0, 0});
  CHECK(own.n[7][3] == 1);  // refused, 4xx
  CHECK(own.timed == 0);
}

TEST_CASE("fallbacks and upstream errors sum over shards") {
  RequestMetrics m(3);
  uint32_t route = m.routes().Id("fb"), backend = m.backends().Id("gone");
  for (int i = 0; i < 3; ++i) {
    m.shard(i).CountFallback(route);
    m.shard(i).CountUpstreamError(backend, UpstreamError::kRefused);
  }
  m.shard(2).CountUpstreamError(backend, UpstreamError::kBadResponse);
  MetricTotals t = m.Collect();
  CHECK(t.fallbacks.at(route) == 3);
  const auto& e = t.upstream_errors.at(backend);
  CHECK(e[static_cast<size_t>(UpstreamError::kRefused)] == 3);
  CHECK(e[static_cast<size_t>(UpstreamError::kReset)] == 0);
  CHECK(e[static_cast<size_t>(UpstreamError::kBadResponse)] == 1);
}

// Each thread counts into its own shard while another collects: every count
// arrives, and (under TSan) nothing races.
TEST_CASE("threads count into their shards while a scrape collects") {
  constexpr int kThreads = 2, kEach = 20000;
  RequestMetrics m(kThreads);
  std::vector<uint32_t> routes;
  for (int i = 0; i < 50; ++i) routes.push_back(m.routes().Id("r" + std::to_string(i)));
  uint32_t backend = m.backends().Id("b");
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        // New label sets keep appearing while the scrape walks the cells.
        m.shard(t).CountRequest(routes[static_cast<size_t>(i % 50)], backend, "route", 200, 0.001);
      }
    });
  }
  uint64_t last = 0;
  for (int i = 0; i < 50; ++i) {
    uint64_t n = 0;
    for (const auto& [key, r] : m.Collect().requests) n += r.n[1][1];
    CHECK(n >= last);  // a counter never goes back
    last = n;
  }
  for (auto& t : threads) t.join();
  uint64_t n = 0;
  for (const auto& [key, r] : m.Collect().requests) n += r.timed;
  CHECK(n == static_cast<uint64_t>(kThreads) * kEach);
}

TEST_CASE("the exposition escapes label values and writes numbers that read back the same") {
  Exposition out;
  out.Family("x_total", Exposition::Type::kCounter, "Things.");
  out.Sample("", {{"route", "a\"b\\c\nd"}}, 3);
  out.Sample(0.25);
  CHECK(out.text() ==
        "# HELP x_total Things.\n# TYPE x_total counter\n"
        "x_total{route=\"a\\\"b\\\\c\\nd\"} 3\nx_total 0.25\n");
  CHECK(FormatMetricValue(0.0005) == "0.0005");
  CHECK(FormatMetricValue(2.5) == "2.5");
  CHECK(FormatMetricValue(1e6) == "1000000");
  CHECK(FormatMetricValue(0.1 + 0.2) == "0.30000000000000004");
  CHECK(FormatMetricValue(1.0 / 0.0) == "+Inf");
  CHECK(FormatMetricValue(-1.0 / 0.0) == "-Inf");
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
