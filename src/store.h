// Store: the SQLite rule store. Owns one sqlite3 connection; a Store object is
// not thread-safe (use one per thread). Every write runs in one transaction
// that also appends its row(s) to the change history and bumps the ruleset
// version; on any error nothing is written.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
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
                       // route.rm, route.enable, route.disable
  std::string object;  // "backend/NAME" or "route/NAME"
  Json before;         // null when the object did not exist
  Json after;          // null when the object was removed
  std::string reason;
};

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
  Result<std::vector<ChangeRow>> Revert(int64_t change_id, const ChangeContext& ctx);

  // One change by id (NotFound when there is none).
  Result<ChangeRow> GetChange(int64_t change_id);

  // Newest first; `object_name` filters by backend or route name ("" = all).
  Result<std::vector<ChangeRow>> History(const std::string& object_name, int limit);

 private:
  explicit Store(sqlite3* db);
  sqlite3* db_;
  int schema_version_ = 0;
};

}  // namespace strangler
