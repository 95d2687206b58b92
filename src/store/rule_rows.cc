#include "store/rule_rows.h"

#include <algorithm>
#include <string_view>
#include <utility>

#include "store/sql.h"

namespace strangler {
namespace store_internal {
namespace {

constexpr char kSelectBackends[] =
    "SELECT name, urls, is_default, timeout_ms, options FROM backends";
constexpr char kSelectRoutes[] = "SELECT name, spec FROM routes";

// backends.options: an object of the options that differ from their
// defaults. An option this binary does not know was written by a newer one,
// which added it without a migration: refused like a newer schema, so that
// no write of ours drops it.
Status ReadOptionsColumn(const std::string& text, Backend* b) {
  Json options = Json::parse(text, nullptr, false);
  if (options.is_discarded() || !options.is_object()) {
    return Status::Internal("store is damaged: options of backend '" + b->name +
                            "' is not a JSON object");
  }
  const std::vector<std::string>& known = BackendOptionFields();
  for (auto it = options.begin(); it != options.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      return Status::Invalid("backend '" + b->name + "' has option '" + it.key() +
                             "', which this strangler does not know (a newer strangler wrote "
                             "it): upgrade strangler");
    }
  }
  Status st = ReadBackendOptions(options, b);
  if (st.ok()) st = ValidateBackend(*b);
  if (!st.ok()) {
    return Status::Internal("store is damaged: options of backend '" + b->name +
                            "': " + st.message());
  }
  return Status::Ok();
}

Result<Backend> BackendFromRow(const Stmt& s) {
  Backend b;
  b.name = s.Text(0);
  Json urls = Json::parse(s.Text(1), nullptr, false);
  if (urls.is_discarded() || !urls.is_array()) {
    return Status::Internal("store is damaged: urls of backend '" + b.name +
                            "' is not a JSON array");
  }
  for (const Json& u : urls) {
    if (!u.is_string()) {
      return Status::Internal("store is damaged: urls of backend '" + b.name +
                              "' holds a non-string");
    }
    b.urls.push_back(u.get<std::string>());
  }
  b.is_default = s.Int(2) != 0;
  b.timeout_ms = static_cast<int>(s.Int(3));
  STRANGLER_RETURN_IF_ERROR(ReadOptionsColumn(s.Text(4), &b));
  return b;
}

Result<Route> RouteFromRow(const Stmt& s) {
  std::string name = s.Text(0);
  Json spec = Json::parse(s.Text(1), nullptr, false);
  if (spec.is_discarded()) {
    return Status::Internal("store is damaged: spec of route '" + name + "' is not JSON");
  }
  Result<Route> r = RouteFromJson(spec);
  if (!r.ok()) {
    return Status::Internal("store is damaged: spec of route '" + name +
                            "' does not parse: " + r.status().message());
  }
  return r;
}

// Every row of `select` (ordered by name), each turned into a T by `from_row`.
template <typename T>
Result<std::vector<T>> QueryAll(sqlite3* db, std::string_view select,
                                Result<T> (*from_row)(const Stmt&)) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, std::string(select) + " ORDER BY name"));
  return CollectRows<T>(s, from_row);
}

}  // namespace

Status UnknownBackend(const std::string& name) {
  return Status::NotFound("unknown backend '" + name + "': add it with `strangler backend add " +
                          name + " URL`");
}

Status UnknownRoute(const std::string& name) {
  return Status::NotFound("unknown route '" + name + "': add it with `strangler route add " + name +
                          " --to BACKEND`");
}

Result<std::vector<Backend>> QueryBackends(sqlite3* db) {
  return QueryAll<Backend>(db, kSelectBackends, &BackendFromRow);
}

Result<std::vector<Route>> QueryRoutes(sqlite3* db) {
  return QueryAll<Route>(db, kSelectRoutes, &RouteFromRow);
}

Result<std::optional<Backend>> FindBackend(sqlite3* db, const std::string& name) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, std::string(kSelectBackends) + " WHERE name = ?1"));
  s.Bind(1, name);
  return FirstRow<Backend>(s, BackendFromRow);
}

Result<std::optional<Route>> FindRoute(sqlite3* db, const std::string& name) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, std::string(kSelectRoutes) + " WHERE name = ?1"));
  s.Bind(1, name);
  return FirstRow<Route>(s, RouteFromRow);
}

Status WriteBackendRow(Write* w, const Backend& b, RowWrite how) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(w->db, how == RowWrite::kInsert
                           ? "INSERT INTO backends (name, urls, is_default, timeout_ms, options, "
                             "created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?6, ?5, ?5)"
                           : "UPDATE backends SET urls = ?2, is_default = ?3, timeout_ms = ?4, "
                             "options = ?6, updated_at = ?5 WHERE name = ?1"));
  s.Bind(1, b.name);
  s.Bind(2, Json(b.urls).dump());
  s.Bind(3, int64_t{b.is_default ? 1 : 0});
  s.Bind(4, int64_t{b.timeout_ms});
  s.Bind(5, w->ts);
  s.Bind(6, BackendOptionsJson(b).dump());
  return s.Run();
}

Status WriteRouteRow(Write* w, const Route& r, RowWrite how) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(
      w->db, how == RowWrite::kInsert
                 ? "INSERT INTO routes (name, to_backend, else_backend, spec, created_at, "
                   "updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)"
                 : "UPDATE routes SET to_backend = ?2, else_backend = ?3, spec = ?4, "
                   "updated_at = ?5 WHERE name = ?1"));
  s.Bind(1, r.name);
  s.Bind(2, r.to);
  if (r.else_backend.empty())
    s.BindNull(3);
  else
    s.Bind(3, r.else_backend);
  s.Bind(4, ToJson(r).dump());
  s.Bind(5, w->ts);
  return s.Run();
}

}  // namespace store_internal

using namespace store_internal;

Result<RuleSet> Store::Load() {
  Txn txn(db_);
  STRANGLER_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kRead));
  RuleSet rules;
  Result<std::vector<Backend>> backends = QueryBackends(db_);
  if (!backends.ok()) return backends.status();
  Result<std::vector<Route>> routes = QueryRoutes(db_);
  if (!routes.ok()) return routes.status();
  Result<int64_t> version = QueryRulesetVersion(db_);
  if (!version.ok()) return version.status();
  STRANGLER_RETURN_IF_ERROR(txn.Commit());
  rules.backends = std::move(*backends);
  rules.routes = std::move(*routes);
  rules.version = *version;
  return rules;
}

Result<std::vector<Backend>> Store::ListBackends() { return QueryBackends(db_); }

Result<Backend> Store::GetBackend(const std::string& name) {
  Result<std::optional<Backend>> b = FindBackend(db_, name);
  if (!b.ok()) return b.status();
  if (!b->has_value()) return UnknownBackend(name);
  return std::move(**b);
}

Result<std::vector<Route>> Store::ListRoutes() { return QueryRoutes(db_); }

Result<Route> Store::GetRoute(const std::string& name) {
  Result<std::optional<Route>> r = FindRoute(db_, name);
  if (!r.ok()) return r.status();
  if (!r->has_value()) return UnknownRoute(name);
  return std::move(**r);
}

}  // namespace strangler
