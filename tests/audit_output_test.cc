// Tests of how `strangler audit` prints: group tables, their JSON, and a
// matched line for humans.
#include "cli/audit_output.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace strangler {
namespace {

TEST_SUITE_BEGIN("audit");

std::vector<GroupRow> Rows() {
  GroupRow orders;
  orders.key = "orders";
  orders.count = 3;
  orders.share = 0.75;
  orders.error_rate = 1.0 / 3;
  orders.p50_ms = 2;
  orders.p99_ms = 3;
  GroupRow dflt;
  dflt.key = kDefaultGroup;
  dflt.count = 1;
  dflt.share = 0.25;
  dflt.p50_ms = dflt.p99_ms = 10.0004;
  return {orders, dflt};
}

TEST_CASE("SummaryTable: the group left-aligned, numbers right-aligned") {
  std::string table = SummaryTable(GroupBy::kRoute, Rows());
  INFO(table);
  CHECK(table ==
        "ROUTE      COUNT  SHARE  ERRORS  P50_MS  P99_MS\n"
        "orders         3  75.0%  33.33%   2.000   3.000\n"
        "(default)      1  25.0%   0.00%  10.000  10.000\n");
  // Widths count code points, not bytes.
  GroupRow cafe;
  cafe.key = "/caf\xc3\xa9";
  cafe.count = 1;
  CHECK(SummaryTable(GroupBy::kPath, {cafe}).rfind("PATH   COUNT", 0) == 0);
}

TEST_CASE("SummaryJson: the group's field, null for the default route, numbers for status") {
  Json j = SummaryJson(GroupBy::kRoute, Rows());
  CHECK(j[0]["route"] == "orders");
  CHECK(j[1]["route"].is_null());
  CHECK(j[0]["count"] == 3);
  CHECK(j[0]["share"] == 0.75);
  CHECK(j[0]["error_rate"] == 0.333333);
  CHECK(j[1]["p50_ms"] == 10.0);
  GroupRow ok;
  ok.key = "200";
  GroupRow other;
  other.key = kOtherGroup;
  Json js = SummaryJson(GroupBy::kStatus, {ok, other});
  CHECK(js[0]["status"] == 200);
  CHECK(js[1]["status"] == kOtherGroup);
  GroupRow router;
  router.key = kRouterGroup;
  CHECK(SummaryJson(GroupBy::kBackend, {router})[0]["backend"].is_null());
}

TEST_CASE("HumanLine: time as logged, status, request, backend, reason, route, latency, id") {
  DecisionLine d;
  d.ts_text = "2026-11-28T04:13:55.123Z";
  DecisionRecord& r = d.record;
  r.ts_ms = 1;
  r.status = 200;
  r.method = "GET";
  r.path = "/api/orders/7";
  r.backend = "new";
  r.reason = "split";
  r.route = "orders";
  r.total_ms = 1.2344;
  r.request_id = "r1";
  CHECK(
      HumanLine(d) ==
      "2026-11-28T04:13:55.123Z 200 GET /api/orders/7 -> new (split, route orders) 1.234ms id=r1");
  // No valid time, method, reason, route or id.
  DecisionLine bare;
  bare.ts_text = "yesterday";
  bare.record.ts_ms = -1;
  bare.record.status = 502;
  bare.record.path = "/";
  bare.record.backend = "legacy";
  CHECK(HumanLine(bare) == "- 502 - / -> legacy (-) 0.000ms");
  // The router's own answer names no backend.
  DecisionLine refused = bare;
  refused.record.status = 405;
  refused.record.method = "CONNECT";
  refused.record.path = "x:443";
  refused.record.backend = {};
  refused.record.reason = "refused";
  CHECK(HumanLine(refused) == "- 405 CONNECT x:443 -> (router) (refused) 0.000ms");
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
