// Ramps as values: what a ramp is asked to do, its state, the counts of one
// window and what a tick did; and JudgeRamp, the policy that decides what a
// due ramp does next. Stored by the store, counted by the proxy. Plain values
// and pure functions: safe to use from any thread.
#pragma once

#include <climits>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace strangler {

using Json = nlohmann::json;

// --- Ramps (PRODUCT.md "Migrating safely") ----------------------------------
// A ramp raises a route's percent by step_bp every every_ms until target_bp,
// judging the 5xx rate of the route's --to traffic in each window first.
//
// Life of a ramp (one per route; RampTick, called by every serve, drives it):
// - Start: state running, step 0, next_at_ms = now, so the first step is taken
//   at serve's next tick without judging (there is no window yet).
// - When due (next_at_ms <= now), a running ramp with step > 0 judges the
//   window counted under its step:
//   * fewer than min_requests --to requests: it waits, next_at_ms = now + every_ms,
//     and the window goes on counting;
//   * breach: max_error_rate is set, to_n > 0, to_5xx/to_n > max_error_rate and
//     > the --else rate (else_5xx/else_n, 0 without else requests). rollback
//     sets the percent to 0 (a route.set change) and ends the ramp rolled_back;
//     freeze leaves the percent and ends it frozen. Both record ramp.breach
//     with the numbers;
//   * otherwise, at or above target_bp: done (ramp.done). Below it: a step,
//     percent = min(percent + step_bp, target_bp) as a route.set change, step+1,
//     next_at_ms = now + every_ms, and a fresh window.
//   Reaching the target takes a step; "done" comes one window later, once that
//   last window was judged fine, so a breach right after the last step still
//   rolls back.
// - A ramp whose route was removed is aborted at its next judgement.
// - Pause (running -> paused), resume (paused -> running with a fresh window
//   that ends every_ms later), abort (running or paused -> aborted).
// The ramp's own changes (route.set steps and rollbacks, ramp.done,
// ramp.breach, the abort of a removed route's ramp) are recorded with actor
// "ramp".

// What a breach does: rollback sets the percent to 0, freeze keeps it.
enum class OnBreach { kRollback, kFreeze };

// Where a ramp is in its life: running and paused ramps go on; the others
// have ended.
enum class RampState { kRunning, kPaused, kDone, kRolledBack, kFrozen, kAborted };

// The text the store keeps and the CLI and history rows print: rollback,
// freeze; running, paused, done, rolled_back, frozen, aborted.
std::string ToString(OnBreach b);
std::string ToString(RampState s);
// The value ToString names `text` by; nullopt for any other text.
std::optional<OnBreach> ParseOnBreach(std::string_view text);
std::optional<RampState> ParseRampState(std::string_view text);

struct RampSpec {
  std::string route;
  int target_bp = 0;
  int step_bp = 0;
  int64_t every_ms = 0;
  std::optional<double> max_error_rate;  // 0..1; none = no error budget
  int64_t min_requests = 0;              // fewer --to requests: the window waits
  OnBreach on_breach = OnBreach::kRollback;
};

// A percent as `ramp --to/--step` take it: "30", "12.5", "30%" -> basis
// points. Usage error otherwise.
Result<int> ParsePercentArg(std::string_view text);
// An error budget: a rate "0.05" (0 to 1) or a percent "5%". Usage error
// otherwise.
Result<double> ParseErrorRate(std::string_view text);

// A ramp's options as given, as text (`strangler ramp NAME --to ...` and
// POST /api/v1/ramps/NAME); nullopt when not given.
struct RampFields {
  std::string route;
  std::optional<std::string> to, step, every, max_error_rate, on_breach;
  int64_t min_requests = 0;
};
// Validates every field, with messages naming the CLI's options.
Result<RampSpec> ParseRampSpec(const RampFields& f);

// Requests of a route in one window, split by where they went.
struct RampCounts {
  int64_t to_n = 0, to_5xx = 0;      // sent to --to (a fallback counts as a --to 5xx)
  int64_t else_n = 0, else_5xx = 0;  // sent to --else by the percent split
  // All four: a take can hold a 5xx whose request went with the take before.
  bool empty() const { return to_n == 0 && to_5xx == 0 && else_n == 0 && else_5xx == 0; }
};

// A ramp as stored, with two views filled by ListRamps/GetRamp: `current`
// and `percent_bp`.
struct Ramp {
  RampSpec spec;
  RampState state = RampState::kRunning;
  int64_t step = 0;   // steps taken so far
  int64_t next_at_ms = 0;  // Unix ms when the running ramp is next judged
  std::string started_at, updated_at;
  RampCounts last;     // the last window judged
  RampCounts current;  // counted so far in the window in progress
  std::string note;    // why it ended or what it waits for
  int percent_bp = 0;  // the route's percent now (-1 if the route is gone)
};

// What RampTick did to one ramp; `message` is one line for serve's log.
struct RampEvent {
  std::string route;
  std::string what;  // step, waiting, done, rolled_back, frozen, aborted
  std::string message;
};

struct RampTickResult {
  std::vector<RampEvent> events;
  std::vector<std::string> running;  // routes whose ramp is running after the tick
  int64_t next_due_ms = INT64_MAX;   // earliest next_at_ms among them
};

// What JudgeRamp needs to know of a running ramp that is due and of its
// route, as the store read them in the tick's transaction.
struct RampFacts {
  int64_t step = 0;          // steps taken so far (0: no window to judge yet)
  int64_t next_at_ms = 0;    // when the ramp was due; kept by an ending verdict
  int64_t now_ms = 0;        // the tick's time, >= next_at_ms
  bool route_exists = true;  // false: the route was removed
  int percent_bp = 0;        // the route's percent now
  std::string to_backend;    // the route's --to backend, for the messages
  std::string else_backend;  // its --else backend, else the default backend
  RampCounts window;         // counted under `step`; judged only when step > 0
};

// What a due ramp does next (see "Life of a ramp"), with every value the
// store writes: the ramp's fields afterwards, the route's percent and the
// text of the history rows and of serve's log line.
struct RampVerdict {
  enum class Kind {
    kWait,            // fewer than min_requests --to requests: the window goes on
    kBreachRollback,  // over the error budget: percent to 0, ended rolled_back
    kBreachFreeze,    // over the error budget: percent kept, ended frozen
    kDone,            // at the target after a window judged fine
    kStep,            // percent raised to percent_bp, a fresh window
    kAbortRouteGone,  // the route was removed: ended aborted
  };
  Kind kind = Kind::kWait;
  RampState state = RampState::kRunning;  // the ramp's state afterwards
  int percent_bp = 0;                     // the route's percent afterwards
  int64_t step = 0;                       // steps taken afterwards
  int64_t next_at_ms = 0;                 // when the ramp is next judged
  std::optional<RampCounts> last;         // the window judged, the ramp's new `last`
  std::string note;                       // the ramp's note afterwards
  // kStep and kBreachRollback: the reason of the route.set change.
  std::string route_reason;
  // One line for serve's log; for an ending verdict also the reason of its
  // ramp.abort, ramp.breach or ramp.done history row.
  std::string message;
};

// The ramp policy, without I/O: judges the window of a running ramp that is
// due (facts.now_ms >= facts.next_at_ms) and says what it does next.
RampVerdict JudgeRamp(const RampSpec& spec, const RampFacts& facts);

// {"to_n", "to_5xx", "else_n", "else_5xx"}.
Json ToJson(const RampCounts& c);
// The ramp as history rows record it: {"route", "state", "target" and "step"
// (percents, as rule files write them), "every_ms", "max_error_rate" (0..1 or
// null), "min_requests", "on_breach", "steps" (taken), "next_at_ms",
// "started_at", "updated_at", "last" (counts), "note"}. Leaves out the views
// `current` and `percent_bp`.
Json ToJson(const Ramp& r);

}  // namespace strangler
