// Micro-benchmarks of the request-path pieces that do not touch the network:
// Decide() over route tables of growing size, and the decision-log line.
// Run: build/strangler_bench [--benchmark_repetitions=5 --benchmark_report_aggregates_only=true]
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "decisions/decision_line.h"
#include "rules/route_table.h"

namespace strangler {
namespace {

// n routes: mostly segment prefixes, some globs and header matches, a few
// regexes; with `split`, every route sends 30% sticky on X-User-Id.
std::shared_ptr<const RouteTable> MakeTable(int n, bool split) {
  RuleSet rules;
  rules.version = 1;
  rules.backends.push_back({"legacy", {"http://127.0.0.1:9001"}, true, 30000});
  rules.backends.push_back({"new", {"http://127.0.0.1:9002"}, false, 30000});
  for (int i = 0; i < n; ++i) {
    Route r;
    r.name = "r" + std::to_string(i);
    r.to = "new";
    switch (i % 10) {
      case 7: r.path = "/svc" + std::to_string(i) + "/*/items"; break;
      case 8:
        r.path = "/svc" + std::to_string(i);
        r.headers.push_back("X-Beta=1");
        break;
      default: r.path = "/svc" + std::to_string(i) + "/v1"; break;
    }
    if (i < 4) r.path = "~^/re" + std::to_string(i) + "/[0-9]+$";
    if (split) {
      r.percent_bp = 3000;
      r.sticky = "header:X-User-Id";
    }
    rules.routes.push_back(std::move(r));
  }
  auto t = RouteTable::Compile(rules);
  if (!t.ok()) std::abort();
  return t.value();
}

struct Req {
  std::string path;
  std::vector<HeaderView> headers;
  RequestView view() const {
    RequestView v;
    v.method = "GET";
    v.path = path;
    v.headers = headers.data();
    v.header_count = headers.size();
    v.client_ip = "127.0.0.1";
    return v;
  }
};

std::vector<Req> MakeRequests(int n) {
  std::vector<Req> reqs;
  std::vector<HeaderView> h = {{"Host", "example.com"},
                               {"User-Agent", "wrk"},
                               {"Accept", "*/*"},
                               {"X-User-Id", "user-12345"}};
  for (int i = 0; i < 64; ++i) {
    int k = (i * 7919) % n;
    Req r;
    switch (i % 4) {
      case 0: r.path = "/svc" + std::to_string(k) + "/v1/orders/42"; break;
      case 1: r.path = "/svc" + std::to_string(k) + "/x/items"; break;
      case 2: r.path = "/legacy/page/" + std::to_string(i); break;  // no route: default
      case 3: r.path = "/svc" + std::to_string(k); break;
    }
    r.headers = h;
    reqs.push_back(std::move(r));
  }
  return reqs;
}

void BM_Decide(benchmark::State& state) {
  auto table = MakeTable(static_cast<int>(state.range(0)), state.range(1) != 0);
  auto reqs = MakeRequests(static_cast<int>(state.range(0)));
  size_t i = 0;
  uint64_t rnd = 1;
  for (auto _ : state) {
    RequestView v = reqs[i++ & 63].view();
    Decision d = table->Decide(v, rnd++);
    benchmark::DoNotOptimize(d);
  }
}
BENCHMARK(BM_Decide)
    ->ArgNames({"routes", "split"})
    ->Args({10, 0})->Args({1000, 0})->Args({10000, 0})
    ->Args({10, 1})->Args({1000, 1})->Args({10000, 1});

// Time grows with the path's length, not with the number of routes.
void BM_DecideLongPath(benchmark::State& state) {
  auto table = MakeTable(1000, false);
  Req r;
  r.path = "/svc3/v1";
  for (int s = 0; s < state.range(0); ++s) r.path += "/segment" + std::to_string(s);
  RequestView v = r.view();
  for (auto _ : state) benchmark::DoNotOptimize(table->Decide(v, 7));
}
BENCHMARK(BM_DecideLongPath)->ArgName("segments")->Arg(2)->Arg(8)->Arg(32);

void BM_FormatDecision(benchmark::State& state) {
  DecisionRecord r;
  r.ts_ms = 1796000000123;
  r.request_id = "3daaaa551d4b624519d2e3cd369f6b7f";
  r.method = "GET";
  r.path = "/api/orders/12345";
  r.route = "orders-v2";
  r.backend = "orders";
  r.reason = "split";
  r.bucket = 1234;
  r.status = 200;
  r.upstream_ms = 0.512;
  r.total_ms = 0.601;
  r.bytes_in = 180;
  r.bytes_out = 420;
  r.client = "127.0.0.1";
  r.ruleset = 42;
  std::string line;
  for (auto _ : state) {
    line.clear();
    FormatDecision(r, &line);
    benchmark::DoNotOptimize(line.data());
  }
}
BENCHMARK(BM_FormatDecision);

}  // namespace
}  // namespace strangler

BENCHMARK_MAIN();
