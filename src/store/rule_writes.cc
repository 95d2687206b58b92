#include "store/rule_writes.h"

#include <algorithm>

#include <optional>
#include <vector>

#include "store/mirror_rows.h"
#include "store/rule_rows.h"
#include "store/sql.h"

namespace strangler {
namespace store_internal {
namespace {

// Takes the default from whichever backend other than `keep` holds it, and
// records that as a change of that backend. Must run before `keep` is written
// as the default (the schema allows one default row at a time).
Status ClearOtherDefault(Write* w, const std::string& keep) {
  Result<std::vector<Backend>> all = QueryBackends(w->db);
  if (!all.ok()) return all.status();
  for (const Backend& old : *all) {
    if (!old.is_default || old.name == keep) continue;
    Backend now = old;
    now.is_default = false;
    STRANGLER_RETURN_IF_ERROR(WriteBackendRow(w, now, RowWrite::kUpdate));
    STRANGLER_RETURN_IF_ERROR(
        RecordChange(w, "backend.set", "backend", old.name, ToJson(old), ToJson(now)));
  }
  return Status::Ok();
}

Status CheckRouteTargets(sqlite3* db, const Route& r) {
  for (const std::string* target : r.backend_refs()) {
    Result<std::optional<Backend>> b = FindBackend(db, *target);
    if (!b.ok()) return b.status();
    if (!b->has_value()) return UnknownBackend(*target);
  }
  return Status::Ok();
}

// The route exactly as Load() will read it back (e.g. methods upper-cased),
// so what is stored, compared and recorded is what serve will see.
Result<Route> CanonicalRoute(const Route& r) {
  STRANGLER_RETURN_IF_ERROR(ValidateRoute(r));
  return RouteFromJson(ToJson(r));
}

bool SameMirrorOptions(const Route& a, const Route& b) {
  return a.mirror == b.mirror && a.mirror_percent_bp == b.mirror_percent_bp &&
         a.mirror_writes == b.mirror_writes && a.compare_headers == b.compare_headers &&
         a.ignore_fields == b.ignore_fields;
}

}  // namespace

Status AddBackendIn(Write* w, Backend b) {
  STRANGLER_RETURN_IF_ERROR(ValidateBackend(b));
  for (const std::string& u : b.urls) STRANGLER_RETURN_IF_ERROR(CheckNewBackendUrl(u));
  Result<std::optional<Backend>> old = FindBackend(w->db, b.name);
  if (!old.ok()) return old.status();
  if (old->has_value()) {
    return Status::Conflict("backend '" + b.name +
                            "' already exists (use `strangler backend set`)");
  }
  Result<int64_t> count = QueryInt(w->db, "SELECT count(*) FROM backends");
  if (!count.ok()) return count.status();
  if (*count == 0) b.is_default = true;
  if (b.is_default) STRANGLER_RETURN_IF_ERROR(ClearOtherDefault(w, b.name));
  STRANGLER_RETURN_IF_ERROR(WriteBackendRow(w, b, RowWrite::kInsert));
  return RecordChange(w, "backend.add", "backend", b.name, Json(), ToJson(b));
}

Status SetBackendIn(Write* w, const Backend& b) {
  STRANGLER_RETURN_IF_ERROR(ValidateBackend(b));
  Result<std::optional<Backend>> found = FindBackend(w->db, b.name);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return UnknownBackend(b.name);
  const Backend& old = **found;
  // URLs kept as they were pass: a store written before the base-path check
  // stays writable for its other fields.
  for (const std::string& u : b.urls) {
    if (std::find(old.urls.begin(), old.urls.end(), u) == old.urls.end()) {
      STRANGLER_RETURN_IF_ERROR(CheckNewBackendUrl(u));
    }
  }
  if (old.is_default && !b.is_default) {
    return Status::Conflict("backend '" + b.name +
                            "' is the default: mark another backend default instead "
                            "(`strangler backend set OTHER --default`)");
  }
  Json before = ToJson(old);
  Json after = ToJson(b);
  if (before == after) return Status::Ok();
  if (b.is_default && !old.is_default) STRANGLER_RETURN_IF_ERROR(ClearOtherDefault(w, b.name));
  STRANGLER_RETURN_IF_ERROR(WriteBackendRow(w, b, RowWrite::kUpdate));
  return RecordChange(w, "backend.set", "backend", b.name, before, after);
}

Status RemoveBackendIn(Write* w, const std::string& name) {
  Result<std::optional<Backend>> found = FindBackend(w->db, name);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return UnknownBackend(name);
  const Backend& old = **found;

  Stmt users;
  STRANGLER_RETURN_IF_ERROR(
      users.Prepare(w->db,
                    "SELECT name FROM routes WHERE to_backend = ?1 OR else_backend = ?1 OR "
                    "json_extract(spec, '$.mirror') = ?1 ORDER BY name"));
  users.Bind(1, name);
  std::string list;
  for (;;) {
    Result<bool> row = users.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    list += (list.empty() ? "" : ", ") + users.Text(0);
  }
  if (!list.empty()) {
    return Status::Conflict("backend '" + name + "' is used by route(s) " + list +
                            ": change or remove them first");
  }
  if (old.is_default) {
    Result<int64_t> count = QueryInt(w->db, "SELECT count(*) FROM backends");
    if (!count.ok()) return count.status();
    if (*count > 1) {
      return Status::Conflict("backend '" + name +
                              "' is the default: mark another backend default first "
                              "(`strangler backend set OTHER --default`)");
    }
  }
  Stmt del;
  STRANGLER_RETURN_IF_ERROR(del.Prepare(w->db, "DELETE FROM backends WHERE name = ?1"));
  del.Bind(1, name);
  STRANGLER_RETURN_IF_ERROR(del.Run());
  return RecordChange(w, "backend.rm", "backend", name, ToJson(old), Json());
}

Status AddRouteIn(Write* w, const Route& requested) {
  Result<Route> canonical = CanonicalRoute(requested);
  if (!canonical.ok()) return canonical.status();
  const Route& r = *canonical;
  Result<std::optional<Route>> old = FindRoute(w->db, r.name);
  if (!old.ok()) return old.status();
  if (old->has_value()) {
    return Status::Conflict("route '" + r.name + "' already exists (use `strangler route set`)");
  }
  STRANGLER_RETURN_IF_ERROR(CheckRouteTargets(w->db, r));
  STRANGLER_RETURN_IF_ERROR(WriteRouteRow(w, r, RowWrite::kInsert));
  return RecordChange(w, "route.add", "route", r.name, Json(), ToJson(r));
}

Status SetRouteIn(Write* w, const Route& requested, std::string_view action) {
  Result<Route> canonical = CanonicalRoute(requested);
  if (!canonical.ok()) return canonical.status();
  const Route& r = *canonical;
  Result<std::optional<Route>> found = FindRoute(w->db, r.name);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return UnknownRoute(r.name);
  Json before = ToJson(**found);
  Json after = ToJson(r);
  if (before == after) return Status::Ok();
  STRANGLER_RETURN_IF_ERROR(CheckRouteTargets(w->db, r));
  STRANGLER_RETURN_IF_ERROR(WriteRouteRow(w, r, RowWrite::kUpdate));
  // Parity counts what was compared under the route's mirror options: new
  // options (an ignore rule fixed, another mirror) start the counts anew.
  if (!SameMirrorOptions(**found, r)) STRANGLER_RETURN_IF_ERROR(DeleteDiffsIn(w, r.name));
  return RecordChange(w, action, "route", r.name, before, after);
}

Status RemoveRouteIn(Write* w, const std::string& name) {
  Result<std::optional<Route>> found = FindRoute(w->db, name);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return UnknownRoute(name);
  Stmt del;
  STRANGLER_RETURN_IF_ERROR(del.Prepare(w->db, "DELETE FROM routes WHERE name = ?1"));
  del.Bind(1, name);
  STRANGLER_RETURN_IF_ERROR(del.Run());
  return RecordChange(w, "route.rm", "route", name, ToJson(**found), Json());
}

}  // namespace store_internal

using namespace store_internal;

Status Store::AddBackend(const Backend& b, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) { return AddBackendIn(w, b); });
}

Status Store::SetBackend(const Backend& b, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) { return SetBackendIn(w, b); });
}

Status Store::RemoveBackend(const std::string& name, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) { return RemoveBackendIn(w, name); });
}

Status Store::AddRoute(const Route& r, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) { return AddRouteIn(w, r); });
}

Status Store::SetRoute(const Route& r, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) { return SetRouteIn(w, r, "route.set"); });
}

Status Store::RemoveRoute(const std::string& name, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) { return RemoveRouteIn(w, name); });
}

Status Store::SetRouteEnabled(const std::string& name, bool enabled, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) -> Status {
    Result<std::optional<Route>> found = FindRoute(w->db, name);
    if (!found.ok()) return found.status();
    if (!found->has_value()) return UnknownRoute(name);
    Route r = **found;
    r.enabled = enabled;
    return SetRouteIn(w, r, enabled ? "route.enable" : "route.disable");
  });
}

}  // namespace strangler
