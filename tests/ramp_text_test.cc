// How a ramp's plan and its history rows read in `strangler history` and
// `ramp show`: percents as written, the error budget as a 5xx rate, the
// breach action only when there is a budget, state moves as from→to.
#include "cli/cli.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "base/time.h"
#include "safety/ramp.h"

namespace strangler {
namespace {

TEST_CASE("RampPlanSummary: percents, interval, budget, minimum and breach action") {
  struct Case {
    Json plan;
    std::string want;
  };
  const std::string minute = FormatDurationMs(60000), five = FormatDurationMs(300000);
  const std::vector<Case> cases = {
      {Json{{"target", 100}, {"step", 10}, {"every_ms", 60000}},
       "to 100% by 10% every " + minute + ", no error budget"},
      {Json{{"target", 50},
            {"step", 12.5},
            {"every_ms", 300000},
            {"max_error_rate", 0.02},
            {"min_requests", 200},
            {"on_breach", "freeze"}},
       "to 50% by 12.5% every " + five + ", error budget 2.00% 5xx, min 200 requests, on breach freeze"},
      // A budget without a breach action: the default one is named.
      {Json{{"target", 30}, {"step", 5}, {"every_ms", 60000}, {"max_error_rate", 0.105}},
       "to 30% by 5% every " + minute + ", error budget 10.50% 5xx, on breach " +
           ToString(OnBreach::kRollback)},
      {Json(), "-"},
      {Json::array(), "-"},
  };
  for (const Case& c : cases) {
    INFO(c.plan.dump());
    CHECK(RampPlanSummary(c.plan) == c.want);
  }
}

TEST_CASE("HistoryTable: a ramp's start shows its plan, its other rows the state it moved to") {
  auto row = [](const std::string& action, Json before, Json after) {
    ChangeRow c;
    c.id = 3;
    c.ts = "2026-12-02T10:00:00.000Z";
    c.actor = "ramp";
    c.action = action;
    c.object = "ramp/api";
    c.before = std::move(before);
    c.after = std::move(after);
    return c;
  };
  const Json plan = {{"target", 100}, {"step", 10}, {"every_ms", 60000}, {"state", "running"}};
  struct Case {
    ChangeRow row;
    std::string want;
  };
  const std::vector<Case> cases = {
      {row("ramp.start", Json(), plan), "start: " + RampPlanSummary(plan)},
      {row("ramp.pause", Json{{"state", "running"}}, Json{{"state", "paused"}}),
       "state running→paused"},
      {row("ramp.done", Json{{"state", "running"}}, Json()), "state running→-"},
      {row("ramp.breach", Json{{"state", "frozen"}}, Json{{"state", "frozen"}}), "no change"},
  };
  for (const Case& c : cases) {
    INFO(c.row.action);
    const std::string table = HistoryTable({c.row});
    CHECK_MESSAGE(table.find(c.want) != std::string::npos, table);
  }
}

}  // namespace
}  // namespace strangler
