// Store: the SQLite rule store. Owns one sqlite3 connection; a Store object is
// not thread-safe (use one per thread). Every write runs in one transaction
// that also appends its row(s) to the change history and bumps the ruleset
// version when it changed a rule; on any error nothing is written. Ramp
// bookkeeping, mirror results and instance load change no rule and leave the
// version alone.
#pragma once

#include <cstdint>
#include <climits>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "base/status.h"
#include "rules/rule_file.h"
#include "rules/rules.h"
#include "safety/backend_load.h"
#include "safety/mirror_results.h"
#include "safety/ramp.h"

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
// A ramp as `ramp list` shows it: with the route's backends by name ("" when
// the route is gone; else_backend names the default backend when the route
// has no --else).
struct RampView {
  Ramp ramp;
  std::string to;
  std::string else_backend;
};
class Store;
// Every ramp with its route's backends.
Result<std::vector<RampView>> RampViews(Store& store);
// As `ramp list --json` and GET /api/v1/ramps show them: ToJson(Ramp) plus
// "percent" (null when the route is gone), "current", "every", "next_at"
// (RFC 3339, null unless running), "to_backend", "else_backend".
Json RampsJson(const std::vector<RampView>& ramps);

// History rows as `history --json` and the control API show them: an array
// of {id, ts, actor, action, object, before, after, reason, ruleset}.
Json ChangeRowsJson(const std::vector<ChangeRow>& rows);

// What ApplyRuleFile did: the plan it ran (computed inside its transaction)
// and the history rows it recorded, oldest first.
struct ApplyResult {
  ApplyPlan plan;
  std::vector<ChangeRow> recorded;
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

  // Newest first; `object_name` filters by backend or route name ("" = all),
  // `object_kind` by kind ("backend", "route", "ramp", "mirror"; "" = all).
  Result<std::vector<ChangeRow>> History(const std::string& object_name, int limit,
                                         const std::string& object_kind = "");

  // Ramps (see "Life of a ramp" above). Start refuses a bad spec (usage:
  // target 1..100 %, step above 0 and at most 100 %, every_ms >= 1000,
  // max_error_rate in [0, 1], min_requests >= 0),
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

  // Live load of backend instances, reported by each running serve
  // (`serve_id`, unique per process) about once a second and read by
  // `backend show`. WriteInstanceLoad replaces every row of that serve with
  // `rows`, stamped now_ms (a backend and instance given twice: the last
  // row), and deletes any serve's rows older than an hour (left by a serve
  // that died), in one transaction. No history row, no ruleset bump:
  // another connection's DataVersion() changes, its RulesetVersion() does
  // not (serve's Reloader rebuilds nothing for it). Waits for another writer
  // like every write (the 5 s busy timeout).
  Status WriteInstanceLoad(const std::string& serve_id, int64_t now_ms,
                           const std::vector<InstanceLoad>& rows);
  // Deletes every row of that serve (serve calls it on exit).
  Status DropInstanceLoad(const std::string& serve_id);
  // Rows (serve id, load) of `backend` ("" = all) updated at or after
  // fresh_since_ms, by backend, instance, serve.
  Result<std::vector<std::pair<std::string, InstanceLoad>>> ReadInstanceLoad(
      const std::string& backend, int64_t fresh_since_ms);

 private:
  explicit Store(sqlite3* db);
  sqlite3* db_;
  int schema_version_ = 0;
};

}  // namespace strangler
