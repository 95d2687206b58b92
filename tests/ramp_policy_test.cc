// Unit tests for the ramp policy (src/safety/ramp.h, JudgeRamp), written from
// "Life of a ramp": what a due ramp does with the window it judges, and the
// exact text users read in history and serve's log. Pure: no store, no clock.
// Table rows print their input.
#include "safety/ramp.h"

#include <doctest/doctest.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace strangler {
namespace {

using Kind = RampVerdict::Kind;

constexpr int64_t kEvery = 60000;
constexpr int64_t kDueAt = 1000000;
constexpr int64_t kNow = 1000500;  // a tick a little after the ramp was due

// Route "api" from 30% to 50% by 10% every minute, no error budget, rollback.
RampSpec Spec() {
  RampSpec s;
  s.route = "api";
  s.target_bp = 5000;
  s.step_bp = 1000;
  s.every_ms = kEvery;
  return s;
}

// Three steps taken, at 30%, --to new, --else legacy; a quiet window.
RampFacts Facts() {
  RampFacts f;
  f.step = 3;
  f.next_at_ms = kDueAt;
  f.now_ms = kNow;
  f.percent_bp = 3000;
  f.to_backend = "new";
  f.else_backend = "legacy";
  f.window = RampCounts{100, 0, 100, 0};
  return f;
}

std::string Describe(const RampSpec& s, const RampFacts& f) {
  const RampCounts& c = f.window;
  return "target " + std::to_string(s.target_bp) + " step " + std::to_string(s.step_bp) +
         " budget " + (s.max_error_rate ? std::to_string(*s.max_error_rate) : "none") + " min " +
         std::to_string(s.min_requests) + " on_breach " + ToString(s.on_breach) + " | steps " +
         std::to_string(f.step) + " route " + (f.route_exists ? "exists" : "gone") + " at " +
         std::to_string(f.percent_bp) + " window to " + std::to_string(c.to_5xx) + "/" +
         std::to_string(c.to_n) + " else " + std::to_string(c.else_5xx) + "/" +
         std::to_string(c.else_n);
}

struct Case {
  std::string what;
  RampSpec spec = Spec();
  RampFacts facts = Facts();
  // Expected.
  struct Want {
    Kind kind = Kind::kWait;
    RampState state = RampState::kRunning;
    int percent_bp = 0;
    int64_t step = 0;
    int64_t next_at_ms = 0;
    bool judged = false;  // the window becomes the ramp's `last`
  } want;
  std::string note;
  std::string message;
  std::string route_reason;
};

Case Row(const char* what) {
  Case c;
  c.what = what;
  return c;
}

TEST_CASE("ramp policy: JudgeRamp waits, breaches, steps and ends as 'Life of a ramp' says") {
  std::vector<Case> cases;

  {
    Case c = Row("min_requests not reached: the window waits");
    c.spec.max_error_rate = 0.05;
    c.spec.min_requests = 20;
    c.facts.window = RampCounts{5, 5, 50, 0};
    c.want = {Kind::kWait, RampState::kRunning, 3000, 3, kNow + kEvery, false};
    c.note = "waiting for 20 requests to new in this window (have 5)";
    c.message = c.note;
    cases.push_back(c);
  }
  // A window over the budget and worse than --else ends the ramp. `why` has
  // the numbers; `ending` what became of the percent.
  auto breach = [&](const char* what, OnBreach on_breach, double budget, int percent_bp,
                    RampCounts window, const std::string& why, const std::string& ending) {
    Case c = Row(what);
    c.spec.target_bp = 10000;
    c.spec.max_error_rate = budget;
    c.spec.on_breach = on_breach;
    c.facts.percent_bp = percent_bp;
    c.facts.window = window;
    const bool rollback = on_breach == OnBreach::kRollback;
    c.want = rollback
                 ? Case::Want{Kind::kBreachRollback, RampState::kRolledBack, 0, 3, kDueAt, true}
                 : Case::Want{Kind::kBreachFreeze, RampState::kFrozen, percent_bp, 3, kDueAt, true};
    c.note = why + ending;
    c.message = c.note;
    if (rollback) c.route_reason = why + "; rolled back to 0%";
    return c;
  };
  cases.push_back(
      breach("breach with rollback", OnBreach::kRollback, 0.1, 5000, {92, 90, 103, 0},
             "error budget breached: new 5xx 90/92 = 97.83% > 10.00% (legacy 5xx 0/103 = 0.00%)",
             "; rolled back from 50% to 0%"));
  cases.push_back(
      breach("breach with freeze", OnBreach::kFreeze, 0.1, 5000, {92, 90, 103, 0},
             "error budget breached: new 5xx 90/92 = 97.83% > 10.00% (legacy 5xx 0/103 = 0.00%)",
             "; frozen at 50%"));
  cases.push_back(
      breach("no --else traffic: the --to rate alone is judged", OnBreach::kRollback, 0.1, 3000,
             {10, 2, 0, 0},
             "error budget breached: new 5xx 2/10 = 20.00% > 10.00% (legacy 5xx 0/0 = 0.00%)",
             "; rolled back from 30% to 0%"));
  {
    Case c =
        breach("the window after reaching the target can still breach", OnBreach::kRollback, 0.05,
               5000, {10, 9, 10, 0},
               "error budget breached: new 5xx 9/10 = 90.00% > 5.00% (legacy 5xx 0/10 = 0.00%)",
               "; rolled back from 50% to 0%");
    c.spec.target_bp = 5000;
    cases.push_back(c);
  }
  // A window judged fine takes the next step: 30% -> 40%.
  auto step = [&](const char* what, RampCounts window, const std::string& last_window) {
    Case c = Row(what);
    c.facts.window = window;
    c.want = {Kind::kStep, RampState::kRunning, 4000, 4, kNow + kEvery, true};
    c.message = "step 4: 30% -> 40% (last window: " + last_window + ")";
    c.route_reason = "ramp " + c.message;
    return c;
  };
  {
    Case c = step("5xx rate above the budget but not above the --else rate: no breach",
                  RampCounts{40, 10, 100, 30}, "new 5xx 10/40, legacy 5xx 30/100");
    c.spec.max_error_rate = 0.05;
    cases.push_back(c);
  }
  {
    Case c = step("5xx rate above the budget and as bad as --else: no breach",
                  RampCounts{40, 10, 40, 10}, "new 5xx 10/40, legacy 5xx 10/40");
    c.spec.max_error_rate = 0.05;
    cases.push_back(c);
  }
  {
    Case c = step("5xx rate at the budget, not above it: no breach", RampCounts{100, 5, 100, 0},
                  "new 5xx 5/100, legacy 5xx 0/100");
    c.spec.max_error_rate = 0.05;
    cases.push_back(c);
  }
  cases.push_back(step("no budget set: every request failing is no breach",
                       RampCounts{10, 10, 10, 0}, "new 5xx 10/10, legacy 5xx 0/10"));
  {
    Case c = step("zero --to requests: no breach", RampCounts{0, 0, 100, 50},
                  "new 5xx 0/0, legacy 5xx 50/100");
    c.spec.max_error_rate = 0.05;
    cases.push_back(c);
  }
  {
    Case c = step("step capped at the target", RampCounts{100, 0, 100, 0},
                  "new 5xx 0/100, legacy 5xx 0/100");
    c.facts.percent_bp = 4500;
    c.want.percent_bp = 5000;
    c.message = "step 4: 45% -> 50% (last window: new 5xx 0/100, legacy 5xx 0/100)";
    c.route_reason = "ramp " + c.message;
    cases.push_back(c);
  }
  {
    Case c = Row("done one window after reaching the target");
    c.spec.max_error_rate = 0.05;
    c.facts.percent_bp = 5000;
    c.want = {Kind::kDone, RampState::kDone, 5000, 3, kDueAt, true};
    c.note = "reached 50%";
    c.message = "reached 50% (last window: new 5xx 0/100, legacy 5xx 0/100)";
    cases.push_back(c);
  }
  {
    Case c = Row("the first step is taken without judging");
    c.spec.max_error_rate = 0.01;
    c.spec.min_requests = 100;
    c.facts.step = 0;
    c.facts.percent_bp = 0;
    c.facts.window = RampCounts{10, 10, 0, 0};
    c.want = {Kind::kStep, RampState::kRunning, 1000, 1, kNow + kEvery, false};
    c.message = "step 1: 0% -> 10%";
    c.route_reason = "ramp step 1: 0% -> 10%";
    cases.push_back(c);
  }
  {
    Case c = Row("the route was removed: aborted");
    c.spec.max_error_rate = 0.01;
    c.facts.route_exists = false;
    c.facts.window = RampCounts{10, 10, 0, 0};
    c.want = {Kind::kAbortRouteGone, RampState::kAborted, 3000, 3, kDueAt, false};
    c.note = "route removed";
    c.message = "route 'api' was removed";
    cases.push_back(c);
  }

  for (const Case& c : cases) {
    CAPTURE(c.what);
    INFO(Describe(c.spec, c.facts));
    const RampVerdict v = JudgeRamp(c.spec, c.facts);
    CHECK(v.kind == c.want.kind);
    CHECK(ToString(v.state) == ToString(c.want.state));
    CHECK(v.percent_bp == c.want.percent_bp);
    CHECK(v.step == c.want.step);
    CHECK(v.next_at_ms == c.want.next_at_ms);
    CHECK(v.last.has_value() == c.want.judged);
    if (c.want.judged && v.last) {
      CHECK(v.last->to_n == c.facts.window.to_n);
      CHECK(v.last->to_5xx == c.facts.window.to_5xx);
      CHECK(v.last->else_n == c.facts.window.else_n);
      CHECK(v.last->else_5xx == c.facts.window.else_5xx);
    }
    CHECK(v.note == c.note);
    CHECK(v.message == c.message);
    CHECK(v.route_reason == c.route_reason);
  }
}

// ToString names each value by its text, and `parse` gives the value back.
template <typename E, size_t N>
void CheckNames(const std::pair<E, const char*> (&names)[N],
                std::optional<E> (*parse)(std::string_view)) {
  for (const auto& [value, text] : names) {
    INFO(text);
    CHECK(ToString(value) == text);
    std::optional<E> back = parse(text);
    REQUIRE(back.has_value());
    CHECK(*back == value);
  }
}

TEST_CASE("ramp state and on_breach: each value's text, and back") {
  const std::pair<RampState, const char*> states[] = {
      {RampState::kRunning, "running"}, {RampState::kPaused, "paused"},
      {RampState::kDone, "done"},       {RampState::kRolledBack, "rolled_back"},
      {RampState::kFrozen, "frozen"},   {RampState::kAborted, "aborted"}};
  CheckNames(states, &ParseRampState);
  const std::pair<OnBreach, const char*> breaches[] = {{OnBreach::kRollback, "rollback"},
                                                       {OnBreach::kFreeze, "freeze"}};
  CheckNames(breaches, &ParseOnBreach);
  for (const char* text : {"", "panic", "Running", "rolled-back", "roll back"}) {
    INFO(text);
    CHECK_FALSE(ParseRampState(text).has_value());
    CHECK_FALSE(ParseOnBreach(text).has_value());
  }
}

}  // namespace
}  // namespace strangler
