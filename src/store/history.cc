// The change history: reading it, applying a rule file as a plan of writes,
// and reverting one change as a new one.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "store/rule_rows.h"
#include "store/rule_writes.h"
#include "store/sql.h"
#include "store/store.h"
#include "store/write.h"

namespace strangler {
using namespace store_internal;

namespace {

constexpr char kSelectChanges[] =
    "SELECT id, ts, actor, action, object_kind, object_name, before, after, reason, ruleset "
    "FROM changes";

Result<ChangeRow> ChangeFromRow(const Stmt& s) {
  ChangeRow c;
  c.id = s.Int(0);
  c.ts = s.Text(1);
  c.actor = s.Text(2);
  c.action = s.Text(3);
  c.object = s.Text(4) + "/" + s.Text(5);
  for (int col : {6, 7}) {
    if (s.IsNull(col)) continue;
    Json j = Json::parse(s.Text(col), nullptr, false);
    if (j.is_discarded()) {
      return Status::Internal("store is damaged: change " + std::to_string(c.id) +
                              " holds JSON that does not parse");
    }
    (col == 6 ? c.before : c.after) = std::move(j);
  }
  c.reason = s.Text(8);
  c.ruleset = s.Int(9);
  return c;
}

// A change row with what the public ChangeRow leaves out.
struct StoredChange {
  ChangeRow row;
  std::string kind;  // "backend", "route" or "ramp"
  std::string name;
  int64_t ruleset = 0;
};

Result<std::optional<StoredChange>> FindChange(sqlite3* db, int64_t id) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, std::string(kSelectChanges) + " WHERE id = ?1"));
  s.Bind(1, id);
  return FirstRow<StoredChange>(s, [](const Stmt& row) -> Result<StoredChange> {
    Result<ChangeRow> c = ChangeFromRow(row);
    if (!c.ok()) return c.status();
    return StoredChange{std::move(*c), row.Text(4), row.Text(5), row.Int(9)};
  });
}

Status NoSuchChange(int64_t id) {
  return Status::NotFound("no change with id " + std::to_string(id) +
                          ": list them with `strangler history`");
}

// "what: message", keeping the code.
Status WrapStatus(const Status& s, const std::string& what) {
  if (s.ok()) return s;
  // A bad value found by the store is invalid data, not a usage error.
  Code c = s.code() == Code::kUsage ? Code::kInvalid : s.code();
  return Status::FromCode(c, what + ": " + s.message());
}

// route.enable / route.disable when only `enabled` differs, else route.set.
const char* RouteSetAction(const Route& from, const Route& to) {
  Route probe = from;
  probe.enabled = to.enabled;
  if (from.enabled != to.enabled && ToJson(probe) == ToJson(to)) {
    return to.enabled ? "route.enable" : "route.disable";
  }
  return "route.set";
}

Status RunPlanStep(Write* w, const PlanStep& step) {
  if (step.kind == ObjectKind::kBackend) {
    switch (step.action) {
      case PlanAction::kAdd:
        return AddBackendIn(w, step.backend);
      case PlanAction::kChange:
        return SetBackendIn(w, step.backend);
      case PlanAction::kRemove:
        return RemoveBackendIn(w, step.name);
      case PlanAction::kKeep:
        return Status::Ok();
    }
  }
  switch (step.action) {
    case PlanAction::kAdd:
      return AddRouteIn(w, step.route);
    case PlanAction::kChange: {
      Result<std::optional<Route>> cur = FindRoute(w->db, step.name);
      if (!cur.ok()) return cur.status();
      const char* action = cur->has_value() ? RouteSetAction(**cur, step.route) : "route.set";
      return SetRouteIn(w, step.route, action);
    }
    case PlanAction::kRemove:
      return RemoveRouteIn(w, step.name);
    case PlanAction::kKeep:
      return Status::Ok();
  }
  return Status::Ok();
}

Status NeedBackends(sqlite3* db, const Route& r) {
  for (const std::string* target : r.backend_refs()) {
    Result<std::optional<Backend>> b = FindBackend(db, *target);
    if (!b.ok()) return b.status();
    if (!b->has_value()) {
      return Status::Conflict("route '" + r.name + "' needs backend '" + *target +
                              "', which no longer exists: add it back first");
    }
  }
  return Status::Ok();
}

// The backend that lost the default to `name` in the same write as the
// change being reverted (ClearOtherDefault records it in that ruleset), or "".
Result<std::string> DefaultTakenFrom(sqlite3* db, const StoredChange& c) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(db, std::string(kSelectChanges) +
                        " WHERE ruleset = ?1 AND object_kind = 'backend' AND object_name != ?2 "
                        "ORDER BY id DESC"));
  s.Bind(1, c.ruleset);
  s.Bind(2, c.name);
  for (;;) {
    Result<bool> row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<ChangeRow> other = ChangeFromRow(s);
    if (!other.ok()) return other.status();
    const Json& b = other->before;
    const Json& a = other->after;
    if (b.is_object() && a.is_object() && b.value("default", false) && !a.value("default", true)) {
      return s.Text(5);
    }
  }
  return std::string();
}

Status RevertBackend(Write* w, const StoredChange& c) {
  const ChangeRow& row = c.row;
  Result<std::optional<Backend>> cur = FindBackend(w->db, c.name);
  if (!cur.ok()) return cur.status();
  if (row.before.is_null()) {  // an add: remove it
    if (!cur->has_value()) {
      return Status::Conflict("backend '" + c.name + "' no longer exists (removed since)");
    }
    return RemoveBackendIn(w, c.name);
  }
  Result<Backend> target = BackendFromJson(row.before);
  if (!target.ok()) {
    return Status::Internal("store is damaged: its before state does not parse: " +
                            target.status().message());
  }
  if (row.after.is_null()) {  // a removal: add it back
    if (cur->has_value()) {
      return Status::Conflict("a backend named '" + c.name +
                              "' exists again (added since): remove or rename it first");
    }
    return AddBackendIn(w, *target);
  }
  if (!cur->has_value()) {
    return Status::Conflict("backend '" + c.name +
                            "' was removed since: revert its removal first (see `strangler "
                            "history " +
                            c.name + "`)");
  }
  if (!target->is_default && (*cur)->is_default) {
    // The change made it the default: give the default back to the backend
    // that lost it then, if it still exists.
    Result<std::string> other = DefaultTakenFrom(w->db, c);
    if (!other.ok()) return other.status();
    Result<std::optional<Backend>> prev =
        other->empty() ? Result<std::optional<Backend>>(std::optional<Backend>())
                       : FindBackend(w->db, *other);
    if (!prev.ok()) return prev.status();
    if (!prev->has_value()) {
      return Status::Conflict("backend '" + c.name +
                              "' would no longer be the default and no other backend would be: "
                              "mark another default first (`strangler backend set OTHER "
                              "--default`)");
    }
    Backend restored = **prev;
    restored.is_default = true;
    STRANGLER_RETURN_IF_ERROR(SetBackendIn(w, restored));
  }
  return SetBackendIn(w, *target);
}

Status RevertRoute(Write* w, const StoredChange& c) {
  const ChangeRow& row = c.row;
  Result<std::optional<Route>> cur = FindRoute(w->db, c.name);
  if (!cur.ok()) return cur.status();
  if (row.before.is_null()) {  // an add: remove it
    if (!cur->has_value()) {
      return Status::Conflict("route '" + c.name + "' no longer exists (removed since)");
    }
    return RemoveRouteIn(w, c.name);
  }
  Result<Route> target = RouteFromJson(row.before);
  if (!target.ok()) {
    return Status::Internal("store is damaged: its before state does not parse: " +
                            target.status().message());
  }
  STRANGLER_RETURN_IF_ERROR(NeedBackends(w->db, *target));
  if (row.after.is_null()) {  // a removal: add it back
    if (cur->has_value()) {
      return Status::Conflict("a route named '" + c.name +
                              "' exists again (added since): remove or rename it first");
    }
    return AddRouteIn(w, *target);
  }
  if (!cur->has_value()) {
    return Status::Conflict("route '" + c.name +
                            "' was removed since: revert its removal first (see `strangler "
                            "history " +
                            c.name + "`)");
  }
  return SetRouteIn(w, *target, RouteSetAction(**cur, *target));
}

Status RevertIn(Write* w, const StoredChange& c) {
  if (c.kind == "ramp") {
    return Status::Invalid("change " + std::to_string(c.row.id) +
                           " is a ramp event, not a rule change; use 'strangler ramp abort " +
                           c.name +
                           "' to stop a ramp, or revert the route.set changes it made (see "
                           "'strangler history " +
                           c.name + "')");
  }
  if (c.row.before.is_null() && c.row.after.is_null()) {
    return Status::Invalid("the change records no state to restore");
  }
  if (c.kind == "backend") return RevertBackend(w, c);
  if (c.kind == "route") return RevertRoute(w, c);
  return Status::Invalid("changes to '" + c.kind + "' objects cannot be reverted");
}

}  // namespace

Json ChangeRowsJson(const std::vector<ChangeRow>& rows) {
  Json arr = Json::array();
  for (const auto& c : rows) {
    arr.push_back({{"id", c.id},
                   {"ts", c.ts},
                   {"actor", c.actor},
                   {"action", c.action},
                   {"object", c.object},
                   {"before", c.before},
                   {"after", c.after},
                   {"reason", c.reason},
                   {"ruleset", c.ruleset}});
  }
  return arr;
}

Result<std::vector<ChangeRow>> Store::History(const std::string& object_name, int limit,
                                              const std::string& object_kind) {
  std::string sql = kSelectChanges;
  if (!object_name.empty()) sql += " WHERE object_name = ?2";
  if (!object_kind.empty())
    sql += object_name.empty() ? " WHERE object_kind = ?3" : " AND object_kind = ?3";
  sql += " ORDER BY id DESC LIMIT ?1";
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db_, sql));
  s.Bind(1, int64_t{limit > 0 ? limit : -1});  // a negative LIMIT means none
  if (!object_name.empty()) s.Bind(2, object_name);
  if (!object_kind.empty()) s.Bind(3, object_kind);
  return CollectRows<ChangeRow>(s, ChangeFromRow);
}

Result<ChangeRow> Store::GetChange(int64_t change_id) {
  Result<std::optional<StoredChange>> c = FindChange(db_, change_id);
  if (!c.ok()) return c.status();
  if (!c->has_value()) return NoSuchChange(change_id);
  return (*c)->row;
}

Result<ApplyResult> Store::ApplyRuleFile(const RuleFile& file, Prune prune,
                                         const ChangeContext& ctx) {
  ApplyResult result;
  Status st = RunWrite(db_, ctx, [&](Write* w) -> Status {
    RuleSet current;
    Result<std::vector<Backend>> backends = QueryBackends(w->db);
    if (!backends.ok()) return backends.status();
    Result<std::vector<Route>> routes = QueryRoutes(w->db);
    if (!routes.ok()) return routes.status();
    current.backends = std::move(*backends);
    current.routes = std::move(*routes);
    result.plan = PlanApply(current, file, prune);
    for (const PlanStep& step : result.plan.steps) {
      Status s = RunPlanStep(w, step);
      if (!s.ok()) {
        return WrapStatus(s, std::string("cannot ") + PlanActionName(step.action) + " " +
                                 ObjectKindName(step.kind) + " '" + step.name + "'");
      }
    }
    result.recorded = w->recorded;
    return Status::Ok();
  });
  if (!st.ok()) return st;
  return result;
}

Result<std::vector<ChangeRow>> Store::Revert(int64_t change_id, const ChangeContext& ctx,
                                             Mode mode) {
  ChangeContext revert_ctx = ctx;
  revert_ctx.reason = "revert of change " + std::to_string(change_id) +
                      (ctx.reason.empty() ? "" : ": " + ctx.reason);
  std::vector<ChangeRow> recorded;
  Status st = RunWrite(
      db_, revert_ctx,
      [&](Write* w) -> Status {
        Result<std::optional<StoredChange>> c = FindChange(w->db, change_id);
        if (!c.ok()) return c.status();
        if (!c->has_value()) return NoSuchChange(change_id);
        Status s = RevertIn(w, **c);
        if (!s.ok()) {
          return WrapStatus(s, "cannot revert change " + std::to_string(change_id) + " (" +
                                   (*c)->row.action + " " + (*c)->row.object + ")");
        }
        recorded = w->recorded;
        return Status::Ok();
      },
      mode == Mode::kWrite);
  if (!st.ok()) return st;
  return recorded;
}

}  // namespace strangler
