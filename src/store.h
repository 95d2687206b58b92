// Store: the SQLite rule store. Owns one sqlite3 connection; a Store object is
// not thread-safe (use one per thread). Every write runs in one transaction
// that also appends its row(s) to the change history and bumps the ruleset
// version when it changed a rule; on any error nothing is written. Ramp
// bookkeeping and mirror results change no rule and leave the version alone.
#pragma once

#include <cstdint>
#include <climits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "rule_file.h"
#include "rules.h"
#include "status.h"

struct sqlite3;

namespace strangler {

// Who made a change and why; recorded with every write.
struct ChangeContext {
  std::string actor;   // --actor, else $STRANGLER_ACTOR, else $USER
  std::string reason;  // -m/--reason, may be empty
};

struct ChangeRow {
  int64_t id = 0;
  std::string ts;      // RFC 3339 UTC with ms
  std::string actor;
  std::string action;  // backend.add, backend.set, backend.rm, route.add, route.set,
                       // route.rm, route.enable, route.disable; ramp.start, ramp.pause,
                       // ramp.resume, ramp.abort, ramp.done, ramp.breach
  std::string object;  // "backend/NAME", "route/NAME" or "ramp/ROUTE"
  Json before;         // null when the object did not exist
  Json after;          // null when the object was removed
  std::string reason;
  // The ruleset version the write produced (a ramp row: the one in effect),
  // as the decision log's `ruleset` field names it.
  int64_t ruleset = 0;
};

// What ApplyRuleFile did: the plan it ran (computed inside its transaction)
// and the history rows it recorded, oldest first.
struct ApplyResult {
  ApplyPlan plan;
  std::vector<ChangeRow> recorded;
};

// --- Ramps (PRODUCT.md "Migrating safely") ----------------------------------
// A ramp raises a route's percent by step_bp every every_ms until target_bp,
// judging the 5xx rate of the route's --to traffic in each window first.
//
// Life of a ramp (one per route; RampTick, called by every serve, drives it):
// - Start: state running, step 0, next_at_ms = now, so the first step is taken
//   at serve's next tick without judging (there is no window yet).
// - When due (next_at_ms <= now), a running ramp with step > 0 judges the
//   window counted under its step:
//   * fewer than min_requests --to requests: it waits, next_at_ms += every_ms,
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

struct RampSpec {
  std::string route;
  int target_bp = 0;
  int step_bp = 0;
  int64_t every_ms = 0;
  std::optional<double> max_error_rate;  // 0..1; none = no error budget
  int64_t min_requests = 0;              // fewer --to requests: the window waits
  std::string on_breach = "rollback";    // rollback | freeze
};

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
  std::string state;  // running, paused, done, rolled_back, frozen, aborted
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

// {"to_n", "to_5xx", "else_n", "else_5xx"}.
Json ToJson(const RampCounts& c);
// The ramp as history rows record it: {"route", "state", "target" and "step"
// (percents, as rule files write them), "every_ms", "max_error_rate" (0..1 or
// null), "min_requests", "on_breach", "steps" (taken), "next_at_ms",
// "started_at", "updated_at", "last" (counts), "note"}. Leaves out the views
// `current` and `percent_bp`.
Json ToJson(const Ramp& r);

// --- Mirror comparisons --------------------------------------------------------

// Running totals per route since the first result.
struct MirrorTally {
  int64_t compared = 0, equal = 0;
  int64_t dropped = 0;  // copies not sent: the mirror queue was full
  int64_t failed = 0;   // the mirror refused, timed out or broke
};

struct DiffStats {
  std::string route;
  MirrorTally tally;
  std::string since, last_at;  // RFC 3339 UTC
};

// A mismatch (or a failed copy) as stored. `result` is ToJson(Comparison)
// (compare.h) or {"error": "..."} for a copy that got no answer.
struct DiffRecord {
  int64_t id = 0;  // assigned by the store
  std::string route, ts, request_id, method, target, primary_backend, mirror_backend;
  Json result;
};

class Store {
 public:
  // Opens (creating if needed) the file, sets WAL and a busy timeout, applies
  // pending migrations. Refuses a DB whose schema is newer than this binary
  // knows, without touching it.
  static Result<std::unique_ptr<Store>> Open(const std::string& path);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  // Schema version recorded in the DB after Open().
  int schema_version() const;
  // Monotonic counter bumped by every write; a snapshot's `ruleset`.
  Result<int64_t> RulesetVersion();
  // Cheap change detector (PRAGMA data_version): differs after another
  // connection committed.
  Result<int64_t> DataVersion();

  // Whole rule set and version, read in one transaction.
  Result<RuleSet> Load();

  Result<std::vector<Backend>> ListBackends();
  Result<Backend> GetBackend(const std::string& name);
  Result<std::vector<Route>> ListRoutes();  // by name
  Result<Route> GetRoute(const std::string& name);

  // Validated writes. AddBackend makes the first backend the default; a
  // backend written with is_default=true takes the default from the others
  // (recorded as a change of each). RemoveBackend refuses while a route
  // points at it (to or else) and refuses the default while others exist.
  Status AddBackend(const Backend& b, const ChangeContext& ctx);
  Status SetBackend(const Backend& b, const ChangeContext& ctx);
  Status RemoveBackend(const std::string& name, const ChangeContext& ctx);
  Status AddRoute(const Route& r, const ChangeContext& ctx);
  Status SetRoute(const Route& r, const ChangeContext& ctx);
  Status RemoveRoute(const std::string& name, const ChangeContext& ctx);
  Status SetRouteEnabled(const std::string& name, bool enabled, const ChangeContext& ctx);

  // Makes the store match `file` (see PlanApply) in one transaction: every
  // step or none. Each object written records its own history row (action
  // backend.add|set|rm, route.add|set|rm|enable|disable). A file the store
  // already matches writes nothing and leaves the ruleset version alone.
  Result<ApplyResult> ApplyRuleFile(const RuleFile& file, Prune prune, const ChangeContext& ctx);

  // Restores the object of change `change_id` to its state before that
  // change, as a new change: an add is undone by removing the object, a
  // removal by adding it back, anything else by writing `before` back. The
  // rows use the plain actions (route.rm, backend.add, ...) with the reason
  // "revert of change N" (": " + ctx.reason when given). Refuses (nothing
  // written) when it cannot be done: the object is gone (or its name taken
  // again), a backend it needs was removed, routes still use a backend it
  // would remove. Returns the rows recorded; empty when the object already
  // is as it was before the change.
  // With kDryRun, the rows it would record are returned and nothing is
  // written (the transaction is rolled back).
  enum class Mode { kWrite, kDryRun };
  Result<std::vector<ChangeRow>> Revert(int64_t change_id, const ChangeContext& ctx,
                                        Mode mode = Mode::kWrite);

  // One change by id (NotFound when there is none).
  Result<ChangeRow> GetChange(int64_t change_id);

  // Newest first; `object_name` filters by backend or route name ("" = all).
  Result<std::vector<ChangeRow>> History(const std::string& object_name, int limit);

  // Ramps (see "Life of a ramp" above). Start refuses a bad spec (usage:
  // target 1..100 %, step above 0 and at most 100 %, every_ms >= 1000,
  // max_error_rate in [0, 1], min_requests >= 0, on_breach rollback|freeze),
  // an unknown route (not found), a target not above the route's percent and
  // a route whose ramp is running or paused (conflict); an ended ramp is
  // replaced and the route's window counts are cleared. Pause, Resume and
  // Abort refuse a ramp in the wrong state (conflict) or a route without one
  // (not found). Each records a history row (object kind "ramp": ramp.start,
  // ramp.pause, ramp.resume, ramp.abort; before/after as ToJson(Ramp)) without
  // bumping the ruleset version; the row's `ruleset` is the current version.
  Status StartRamp(const RampSpec& spec, const ChangeContext& ctx);
  Status PauseRamp(const std::string& route, const ChangeContext& ctx);
  Status ResumeRamp(const std::string& route, const ChangeContext& ctx);
  Status AbortRamp(const std::string& route, const ChangeContext& ctx);
  Result<std::vector<Ramp>> ListRamps();  // every ramp, by route
  Result<Ramp> GetRamp(const std::string& route);

  // Called by serve on its tick: adds `counted` to the windows in progress of
  // running ramps (counts of other routes are dropped), then judges and
  // advances every running ramp whose next_at_ms <= now_ms, all in one
  // BEGIN IMMEDIATE transaction that re-reads the ramps, so several serve
  // processes take each step once. Steps and rollbacks are route.set changes
  // by actor "ramp" (they bump the ruleset version); the end of a ramp is a
  // ramp.done / ramp.breach row. Reads only (no transaction) when no running
  // ramp has anything counted and none is due.
  Result<RampTickResult> RampTick(int64_t now_ms,
                                  const std::vector<std::pair<std::string, RampCounts>>& counted);

  // Called by serve: adds `tallies` to diff_stats (since = first result,
  // last_at = now) and stores `records`, then keeps the newest keep_diffs
  // records of each route touched (the route's option; kDefaultKeepDiffs when
  // unset or the route is gone). One transaction; no history row, no ruleset
  // bump.
  Status RecordMirrorResults(const std::vector<std::pair<std::string, MirrorTally>>& tallies,
                             const std::vector<DiffRecord>& records);
  // Totals for one route ("" = all routes that have any), by route.
  // Forgets a route's mirror comparisons (a history row 'diff.reset' keeps
  // what they were). They are also forgotten when the route's mirror
  // options change, so parity counts what the current options compared.
  Status ResetDiffs(const std::string& route, const ChangeContext& ctx);
  Result<std::vector<DiffStats>> ListDiffStats(const std::string& route);
  // Newest first, at most `limit` (<= 0: all); `route` "" = all routes.
  Result<std::vector<DiffRecord>> LatestDiffs(const std::string& route, int limit);

 private:
  explicit Store(sqlite3* db);
  sqlite3* db_;
  int schema_version_ = 0;
};

}  // namespace strangler
