// Tests of a route's last minute (metrics/live_window.h): slots that age
// out by period without a sweep, latency buckets and the quantiles read
// from them, and the shards summed by (route, side).
#include "metrics/live_window.h"

#include <doctest/doctest.h>

#include <cmath>
#include <thread>

#include "metrics/request_metrics.h"

namespace strangler {
namespace {

TEST_SUITE_BEGIN("metrics");

LiveSample Sample(bool error, double seconds) {
  LiveSample s;
  s.error = error;
  s.seconds = seconds;
  return s;
}

TEST_CASE("latency buckets grow by a fourth of a doubling and hold every value") {
  CHECK(LatencyBucket(0) == 0);
  CHECK(LatencyBucket(-1) == 0);
  CHECK(LatencyBucket(0.00005) == 0);  // 50 µs: the first bound
  for (double s : {0.0001, 0.001, 0.0123, 0.5, 3.0, 40.0}) {
    int b = LatencyBucket(s);
    INFO(s);
    CHECK(LatencyBucketUpperMs(b) >= s * 1000 * 0.9999);
    CHECK(LatencyBucketUpperMs(b - 1) < s * 1000);
    CHECK(LatencyBucketUpperMs(b) / LatencyBucketUpperMs(b - 1) ==
          doctest::Approx(1.1892).epsilon(0.001));
  }
  CHECK(LatencyBucket(1e6) == kLatencyBuckets - 1);  // beyond the last bound: the last bucket
  CHECK(LatencyBucket(std::nan("")) == 0);
}

TEST_CASE("quantiles are the bound of the bucket they fall in; none timed is negative") {
  LiveTotals t;
  CHECK(t.QuantileMs(0.5) < 0);
  // 98 requests at 1 ms, 2 at 100 ms: p50 is 1 ms's bucket, p99 100 ms's.
  for (int i = 0; i < 98; ++i) ++t.latency[static_cast<size_t>(LatencyBucket(0.001))];
  for (int i = 0; i < 2; ++i) ++t.latency[static_cast<size_t>(LatencyBucket(0.1))];
  t.timed = 100;
  CHECK(t.QuantileMs(0.5) == LatencyBucketUpperMs(LatencyBucket(0.001)));
  CHECK(t.QuantileMs(0.98) == LatencyBucketUpperMs(LatencyBucket(0.001)));
  CHECK(t.QuantileMs(0.99) == LatencyBucketUpperMs(LatencyBucket(0.1)));
  CHECK(t.QuantileMs(0.99) == doctest::Approx(100).epsilon(0.19));
}

TEST_CASE("a cell counts into the slot of its period and forgets periods past the window") {
  LiveCell cell;
  const int64_t p = 1000;
  cell.Add(p, Sample(false, 0.002));
  cell.Add(p, Sample(true, 0.004));
  cell.Add(p + 1, Sample(false, -1));  // reached no backend: not timed
  LiveTotals now;
  cell.AddTo(p + 1, &now);
  CHECK(now.requests == 3);
  CHECK(now.errors == 1);
  CHECK(now.timed == 2);
  // Still inside the window kLiveSlots - 1 periods on; gone one after.
  LiveTotals late, later;
  cell.AddTo(p + kLiveSlots - 1, &late);
  CHECK(late.requests == 3);
  cell.AddTo(p + kLiveSlots, &later);
  CHECK(later.requests == 1);  // only p + 1's
  // A period that reuses p's slot starts it from zero.
  cell.Add(p + kLiveSlots, Sample(false, 0.001));
  LiveTotals reused;
  cell.AddTo(p + kLiveSlots, &reused);
  CHECK(reused.requests == 2);
  CHECK(reused.errors == 0);
  // A reader behind the writer (a period in its future) counts nothing of it.
  LiveTotals past;
  cell.AddTo(p, &past);
  CHECK(past.requests == 0);
}

TEST_CASE("recent slots under a lock keep the same window") {
  RecentSlots<LiveTotals> slots;
  LiveTotals one;
  one.requests = 1;
  CHECK(slots.Sum(5).requests == 0);  // nothing yet, even at small periods
  slots.Add(5, one);
  slots.Add(5, one);
  slots.Add(6, one);
  CHECK(slots.Sum(6).requests == 3);
  CHECK(slots.Sum(5 + kLiveSlots).requests == 1);
  CHECK(slots.Sum(6 + kLiveSlots).requests == 0);
}

TEST_CASE(
    "each thread counts its last minute into its own shard; collection sums by route and backend") {
  RequestMetrics metrics(2);
  const uint32_t orders = metrics.routes().Id("orders");
  const uint32_t fresh = metrics.backends().Id("new"), legacy = metrics.backends().Id("legacy");
  const int64_t p = 77;
  std::thread a([&] {
    for (int i = 0; i < 1000; ++i)
      metrics.shard(0).CountLive(orders, fresh, Sample(i % 10 == 0, 0.001), p);
  });
  std::thread b([&] {
    for (int i = 0; i < 500; ++i)
      metrics.shard(1).CountLive(orders, legacy, Sample(false, 0.002), p);
    LiveSample fell = Sample(true, 0.003);
    fell.fell_back = true;
    metrics.shard(1).CountLive(orders, fresh, fell, p);
  });
  a.join();
  b.join();
  auto live = metrics.CollectLive(p);
  const LiveTotals& to = live[{orders, fresh}];
  const LiveTotals& other = live[{orders, legacy}];
  CHECK(to.requests == 1001);
  CHECK(to.errors == 101);
  CHECK(to.fallbacks == 1);
  CHECK(other.requests == 500);
  CHECK(other.timed == 500);
  CHECK(other.QuantileMs(0.5) == LatencyBucketUpperMs(LatencyBucket(0.002)));
  CHECK(metrics.CollectLive(p + kLiveSlots)[{orders, fresh}].requests == 0);
}

TEST_CASE("a shard drops cells with nothing left in the window, once a period") {
  RequestMetrics metrics(1);
  MetricShard& shard = metrics.shard(0);
  const uint32_t backend = metrics.backends().Id("b");
  // 100 routes counted once (a churn of renamed routes, say), then quiet.
  for (uint32_t route = 1; route <= 100; ++route)
    shard.CountLive(route, backend, Sample(false, 0.001), 10);
  CHECK(shard.live_cells() == 100);
  shard.CountLive(1, backend, Sample(false, 0.001), 10 + kLiveSlots - 1);  // still in the window
  CHECK(shard.live_cells() == 100);
  shard.CountLive(1, backend, Sample(false, 0.001), 10 + kLiveSlots);  // their minute is over
  CHECK(shard.live_cells() == 1);
  CHECK(metrics.CollectLive(10 + kLiveSlots)[{1, backend}].requests == 2);
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
