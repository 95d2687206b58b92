#include "store.h"

#include <sqlite3.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <string_view>
#include <utility>

#include "migrations.h"

namespace strangler {
namespace {

constexpr int kBusyTimeoutMs = 5000;
constexpr char kBusyMessage[] = "store is locked by another writer (waited 5s): try again";

// Every sqlite failure becomes a Status here. `doing` says what the store was
// trying to do, for the one-line message.
Status SqlStatus(sqlite3* db, int rc, std::string_view doing) {
  std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  std::string what = "store error while " + std::string(doing) + ": " + detail;
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Io(kBusyMessage);
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
      return Status::Io(what + " (check disk space and file permissions)");
    case SQLITE_READONLY:
      return Status::Io(what + " (the store file or its directory is not writable)");
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return Status::Io(what + " (the store file is damaged: restore it from a backup)");
    case SQLITE_CONSTRAINT:
      return Status::Conflict(what);
    default:
      return Status::Internal(what);
  }
}

// Owns one prepared statement. Bind errors are kept and reported by Step().
class Stmt {
 public:
  Stmt() = default;
  ~Stmt() { sqlite3_finalize(stmt_); }
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  [[nodiscard]] Status Prepare(sqlite3* db, std::string_view sql) {
    db_ = db;
    int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
    if (rc != SQLITE_OK) return SqlStatus(db, rc, "preparing a query");
    return Status::Ok();
  }
  void Bind(int i, std::string_view s) {
    Keep(sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT));
  }
  void Bind(int i, int64_t v) { Keep(sqlite3_bind_int64(stmt_, i, v)); }
  void BindNull(int i) { Keep(sqlite3_bind_null(stmt_, i)); }

  // True when a row is available, false when done.
  [[nodiscard]] Result<bool> Step() {
    if (bind_rc_ != SQLITE_OK) return SqlStatus(db_, bind_rc_, "binding a query parameter");
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqlStatus(db_, rc, "running a query");
  }
  // Runs a statement that returns no rows.
  [[nodiscard]] Status Run() {
    Result<bool> r = Step();
    return r.ok() ? Status::Ok() : r.status();
  }

  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string Text(int col) const {
    const unsigned char* p = sqlite3_column_text(stmt_, col);
    if (p == nullptr) return std::string();
    return std::string(reinterpret_cast<const char*>(p),
                       static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
  }

 private:
  void Keep(int rc) {
    if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  int bind_rc_ = SQLITE_OK;
};

Status Exec(sqlite3* db, const char* sql, std::string_view doing) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqlStatus(db, rc, doing);
  return Status::Ok();
}

// A transaction that rolls back unless committed, so an early return on any
// error leaves nothing half-written.
class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db) {}
  ~Txn() {
    if (open_ && !sqlite3_get_autocommit(db_))
      sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  enum class Kind { kRead, kWrite };
  [[nodiscard]] Status Begin(Kind kind) {
    STRANGLER_RETURN_IF_ERROR(
        Exec(db_, kind == Kind::kWrite ? "BEGIN IMMEDIATE" : "BEGIN", "starting a transaction"));
    open_ = true;
    return Status::Ok();
  }
  [[nodiscard]] Status Commit() {
    STRANGLER_RETURN_IF_ERROR(Exec(db_, "COMMIT", "committing"));
    open_ = false;
    return Status::Ok();
  }

 private:
  sqlite3* db_;
  bool open_ = false;
};

std::string NowRfc3339() {
  using std::chrono::milliseconds;
  int64_t ms =
      std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms % 1000));
  return buf;
}

Status UnknownBackend(const std::string& name) {
  return Status::NotFound("unknown backend '" + name + "': add it with `strangler backend add " +
                          name + " URL`");
}
Status UnknownRoute(const std::string& name) {
  return Status::NotFound("unknown route '" + name + "': add it with `strangler route add " + name +
                          " --to BACKEND`");
}

// --- reading ---------------------------------------------------------------

constexpr char kSelectBackends[] = "SELECT name, urls, is_default, timeout_ms FROM backends";
constexpr char kSelectRoutes[] = "SELECT name, spec FROM routes";

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
  std::vector<T> out;
  for (;;) {
    Result<bool> row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<T> item = from_row(s);
    if (!item.ok()) return item.status();
    out.push_back(std::move(*item));
  }
  return out;
}

Result<std::vector<Backend>> QueryBackends(sqlite3* db) {
  return QueryAll<Backend>(db, kSelectBackends, &BackendFromRow);
}

Result<std::vector<Route>> QueryRoutes(sqlite3* db) {
  return QueryAll<Route>(db, kSelectRoutes, &RouteFromRow);
}

// The backend named `name`, or nullopt when there is none.
Result<std::optional<Backend>> FindBackend(sqlite3* db, const std::string& name) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, std::string(kSelectBackends) + " WHERE name = ?1"));
  s.Bind(1, name);
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Backend>();
  Result<Backend> b = BackendFromRow(s);
  if (!b.ok()) return b.status();
  return std::optional<Backend>(std::move(*b));
}

Result<std::optional<Route>> FindRoute(sqlite3* db, const std::string& name) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, std::string(kSelectRoutes) + " WHERE name = ?1"));
  s.Bind(1, name);
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<Route>();
  Result<Route> r = RouteFromRow(s);
  if (!r.ok()) return r.status();
  return std::optional<Route>(std::move(*r));
}

Result<int64_t> QueryInt(sqlite3* db, std::string_view sql) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, sql));
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  if (!*row || s.IsNull(0)) return int64_t{0};
  return s.Int(0);
}

Result<int64_t> QueryRulesetVersion(sqlite3* db) {
  return QueryInt(db, "SELECT value FROM meta WHERE key = 'ruleset_version'");
}

// --- writing ---------------------------------------------------------------

// One write transaction in progress: the time and ruleset version stamped on
// every row it writes, and how many objects it changed. A write that changes
// nothing records nothing and leaves the version alone. Several operations
// can share one Write (that is how a whole rule file can be applied at once).
struct Write {
  sqlite3* db;
  const ChangeContext& ctx;
  std::string ts;
  int64_t version = 0;  // the version this write produces
  int changed = 0;
  std::vector<ChangeRow> recorded;  // the history rows written, oldest first
};

Result<Write> BeginWrite(sqlite3* db, Txn* txn, const ChangeContext& ctx) {
  STRANGLER_RETURN_IF_ERROR(txn->Begin(Txn::Kind::kWrite));
  Result<int64_t> v = QueryRulesetVersion(db);
  if (!v.ok()) return v.status();
  return Write{db, ctx, NowRfc3339(), *v + 1, 0, {}};
}

Status FinishWrite(const Write& w, Txn* txn) {
  if (w.changed > 0) {
    Stmt s;
    STRANGLER_RETURN_IF_ERROR(
        s.Prepare(w.db, "UPDATE meta SET value = ?1 WHERE key = 'ruleset_version'"));
    s.Bind(1, w.version);
    STRANGLER_RETURN_IF_ERROR(s.Run());
  }
  return txn->Commit();
}

Status RecordChange(Write* w, std::string_view action, std::string_view kind,
                    const std::string& name, const Json& before, const Json& after) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(w->db,
                "INSERT INTO changes (ts, actor, action, object_kind, object_name, before, after, "
                "reason, ruleset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"));
  s.Bind(1, w->ts);
  s.Bind(2, w->ctx.actor);
  s.Bind(3, action);
  s.Bind(4, kind);
  s.Bind(5, name);
  if (before.is_null())
    s.BindNull(6);
  else
    s.Bind(6, before.dump());
  if (after.is_null())
    s.BindNull(7);
  else
    s.Bind(7, after.dump());
  s.Bind(8, w->ctx.reason);
  s.Bind(9, w->version);
  STRANGLER_RETURN_IF_ERROR(s.Run());
  ++w->changed;
  w->recorded.push_back(ChangeRow{sqlite3_last_insert_rowid(w->db), w->ts, w->ctx.actor,
                                  std::string(action), std::string(kind) + "/" + name, before,
                                  after, w->ctx.reason});
  return Status::Ok();
}

Status InsertBackend(Write* w, const Backend& b) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(w->db,
                "INSERT INTO backends (name, urls, is_default, timeout_ms, created_at, updated_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?5)"));
  s.Bind(1, b.name);
  s.Bind(2, Json(b.urls).dump());
  s.Bind(3, int64_t{b.is_default ? 1 : 0});
  s.Bind(4, int64_t{b.timeout_ms});
  s.Bind(5, w->ts);
  return s.Run();
}

Status UpdateBackend(Write* w, const Backend& b) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(w->db,
                "UPDATE backends SET urls = ?2, is_default = ?3, timeout_ms = ?4, updated_at = ?5 "
                "WHERE name = ?1"));
  s.Bind(1, b.name);
  s.Bind(2, Json(b.urls).dump());
  s.Bind(3, int64_t{b.is_default ? 1 : 0});
  s.Bind(4, int64_t{b.timeout_ms});
  s.Bind(5, w->ts);
  return s.Run();
}

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
    STRANGLER_RETURN_IF_ERROR(UpdateBackend(w, now));
    STRANGLER_RETURN_IF_ERROR(
        RecordChange(w, "backend.set", "backend", old.name, ToJson(old), ToJson(now)));
  }
  return Status::Ok();
}

Status AddBackendIn(Write* w, Backend b) {
  STRANGLER_RETURN_IF_ERROR(ValidateBackend(b));
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
  STRANGLER_RETURN_IF_ERROR(InsertBackend(w, b));
  return RecordChange(w, "backend.add", "backend", b.name, Json(), ToJson(b));
}

Status SetBackendIn(Write* w, const Backend& b) {
  STRANGLER_RETURN_IF_ERROR(ValidateBackend(b));
  Result<std::optional<Backend>> found = FindBackend(w->db, b.name);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return UnknownBackend(b.name);
  const Backend& old = **found;
  if (old.is_default && !b.is_default) {
    return Status::Conflict("backend '" + b.name +
                            "' is the default: mark another backend default instead "
                            "(`strangler backend set OTHER --default`)");
  }
  Json before = ToJson(old);
  Json after = ToJson(b);
  if (before == after) return Status::Ok();
  if (b.is_default && !old.is_default) STRANGLER_RETURN_IF_ERROR(ClearOtherDefault(w, b.name));
  STRANGLER_RETURN_IF_ERROR(UpdateBackend(w, b));
  return RecordChange(w, "backend.set", "backend", b.name, before, after);
}

Status RemoveBackendIn(Write* w, const std::string& name) {
  Result<std::optional<Backend>> found = FindBackend(w->db, name);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return UnknownBackend(name);
  const Backend& old = **found;

  Stmt users;
  STRANGLER_RETURN_IF_ERROR(users.Prepare(
      w->db, "SELECT name FROM routes WHERE to_backend = ?1 OR else_backend = ?1 OR "
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

Status CheckRouteTargets(sqlite3* db, const Route& r) {
  for (const std::string* target : r.backend_refs()) {
    Result<std::optional<Backend>> b = FindBackend(db, *target);
    if (!b.ok()) return b.status();
    if (!b->has_value()) return UnknownBackend(*target);
  }
  return Status::Ok();
}

enum class RowWrite { kInsert, kUpdate };

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

// The route exactly as Load() will read it back (e.g. methods upper-cased),
// so what is stored, compared and recorded is what serve will see.
Result<Route> CanonicalRoute(const Route& r) {
  STRANGLER_RETURN_IF_ERROR(ValidateRoute(r));
  return RouteFromJson(ToJson(r));
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

// --- history, apply, revert -------------------------------------------------

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
  return c;
}

// A change row with what the public ChangeRow leaves out.
struct StoredChange {
  ChangeRow row;
  std::string kind;  // "backend" or "route"
  std::string name;
  int64_t ruleset = 0;
};

Result<std::optional<StoredChange>> FindChange(sqlite3* db, int64_t id) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, std::string(kSelectChanges) + " WHERE id = ?1"));
  s.Bind(1, id);
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<StoredChange>();
  Result<ChangeRow> c = ChangeFromRow(s);
  if (!c.ok()) return c.status();
  return std::optional<StoredChange>(StoredChange{std::move(*c), s.Text(4), s.Text(5), s.Int(9)});
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
  if (c.row.before.is_null() && c.row.after.is_null()) {
    return Status::Invalid("the change records no state to restore");
  }
  if (c.kind == "backend") return RevertBackend(w, c);
  if (c.kind == "route") return RevertRoute(w, c);
  return Status::Invalid("changes to '" + c.kind + "' objects cannot be reverted");
}

// Runs `op` as one write transaction: all of it or none of it.
template <typename Op>
Status RunWrite(sqlite3* db, const ChangeContext& ctx, Op op) {
  Txn txn(db);
  Result<Write> w = BeginWrite(db, &txn, ctx);
  if (!w.ok()) return w.status();
  STRANGLER_RETURN_IF_ERROR(op(&*w));
  return FinishWrite(*w, &txn);
}

// --- opening ---------------------------------------------------------------

constexpr char kCreateSchemaMigrations[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

Result<int> QuerySchemaVersion(sqlite3* db) {
  Result<int64_t> v = QueryInt(db, "SELECT max(version) FROM schema_migrations");
  if (!v.ok()) return v.status();
  return static_cast<int>(*v);
}

Status NewerSchema(const std::string& path, int have, int know) {
  return Status::Invalid("store " + path + " has schema version " + std::to_string(have) +
                         ", newer than this strangler (knows up to " + std::to_string(know) +
                         "): upgrade strangler");
}

// Reads, without writing anything, whether `path` is a store this binary can
// use and its schema version (0 for a new, empty file).
Result<int> CheckExisting(sqlite3* db, const std::string& path, int newest) {
  Txn txn(db);
  STRANGLER_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kRead));
  Stmt s;
  Status st = s.Prepare(db,
                        "SELECT count(*), coalesce(sum(type = 'table' AND "
                        "name = 'schema_migrations'), 0) FROM sqlite_master");
  if (!st.ok()) {
    int code = sqlite3_errcode(db) & 0xff;
    if (code == SQLITE_NOTADB) {
      return Status::Io(path + " is not a strangler store: file is not a database");
    }
    return st;
  }
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  int64_t objects = s.Int(0);
  bool has_migrations = s.Int(1) != 0;
  if (!has_migrations) {
    if (objects > 0) {
      return Status::Io(path +
                        " is not a strangler store: it is an SQLite database of something else");
    }
    return 0;
  }
  Result<int> version = QuerySchemaVersion(db);
  if (!version.ok()) return version.status();
  if (*version > newest) return NewerSchema(path, *version, newest);
  STRANGLER_RETURN_IF_ERROR(txn.Commit());
  return *version;
}

// Applies every migration newer than the DB, each in its own BEGIN IMMEDIATE
// transaction with its schema_migrations row. The version is re-read inside
// the transaction, so two processes opening a new store at once apply each
// migration exactly once.
Result<int> Migrate(sqlite3* db, const std::string& path, int version) {
  const std::vector<Migration>& all = Migrations();
  const int newest = all.empty() ? 0 : all.back().version;
  for (const Migration& m : all) {
    if (m.version <= version) continue;
    Txn txn(db);
    STRANGLER_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kWrite));
    STRANGLER_RETURN_IF_ERROR(Exec(db, kCreateSchemaMigrations, "creating schema_migrations"));
    Result<int> now = QuerySchemaVersion(db);
    if (!now.ok()) return now.status();
    version = *now;
    if (version > newest) return NewerSchema(path, version, newest);
    if (version >= m.version) continue;  // applied meanwhile by another process; rolls back
    char* err = nullptr;
    int rc = sqlite3_exec(db, m.sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
      std::string msg = err != nullptr ? err : sqlite3_errstr(rc);
      sqlite3_free(err);
      if ((rc & 0xff) == SQLITE_BUSY) return Status::Io(kBusyMessage);
      return Status::Internal("migration " + std::string(m.name) + " failed on " + path + ": " +
                              msg);
    }
    Stmt s;
    STRANGLER_RETURN_IF_ERROR(s.Prepare(
        db, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?1, ?2, ?3)"));
    s.Bind(1, int64_t{m.version});
    s.Bind(2, m.name);
    s.Bind(3, NowRfc3339());
    STRANGLER_RETURN_IF_ERROR(s.Run());
    STRANGLER_RETURN_IF_ERROR(txn.Commit());
    version = m.version;
  }
  return version;
}

}  // namespace

Store::Store(sqlite3* db) : db_(db) {}

Store::~Store() { sqlite3_close_v2(db_); }

Result<std::unique_ptr<Store>> Store::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  // Owns the handle from here on, even when opening failed.
  std::unique_ptr<Store> store(new Store(db));
  if (rc != SQLITE_OK) {
    std::string detail = db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    return Status::Io("cannot open store " + path + ": " + detail +
                      ": check that its directory exists and is writable, or pass --db PATH");
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  // Neither pragma touches the file; both must run outside a transaction.
  STRANGLER_RETURN_IF_ERROR(Exec(db, "PRAGMA busy_timeout = 5000", "setting the busy timeout"));
  STRANGLER_RETURN_IF_ERROR(Exec(db, "PRAGMA foreign_keys = ON", "enabling foreign keys"));

  // Everything up to here only read the file: a store we must refuse is left
  // exactly as it was. Changing the journal mode is the first write.
  const std::vector<Migration>& all = Migrations();
  const int newest = all.empty() ? 0 : all.back().version;
  Result<int> existing = CheckExisting(db, path, newest);
  if (!existing.ok()) return existing.status();

  if (sqlite3_db_readonly(db, "main") == 1) {
    return Status::Io("store " + path + " is read-only: make the file and its directory writable");
  }
  STRANGLER_RETURN_IF_ERROR(Exec(db, "PRAGMA journal_mode = WAL", "switching to WAL mode"));

  Result<int> version = Migrate(db, path, *existing);
  if (!version.ok()) return version.status();
  store->schema_version_ = *version;
  return store;
}

int Store::schema_version() const { return schema_version_; }

Result<int64_t> Store::RulesetVersion() { return QueryRulesetVersion(db_); }

Result<int64_t> Store::DataVersion() { return QueryInt(db_, "PRAGMA data_version"); }

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

Result<std::vector<ChangeRow>> Store::History(const std::string& object_name, int limit) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(
      db_, object_name.empty() ? std::string(kSelectChanges) + " ORDER BY id DESC LIMIT ?1"
                               : std::string(kSelectChanges) +
                                     " WHERE object_name = ?2 ORDER BY id DESC LIMIT ?1"));
  s.Bind(1, int64_t{limit > 0 ? limit : -1});  // a negative LIMIT means none
  if (!object_name.empty()) s.Bind(2, object_name);
  std::vector<ChangeRow> out;
  for (;;) {
    Result<bool> row = s.Step();
    if (!row.ok()) return row.status();
    if (!*row) break;
    Result<ChangeRow> c = ChangeFromRow(s);
    if (!c.ok()) return c.status();
    out.push_back(std::move(*c));
  }
  return out;
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

Result<std::vector<ChangeRow>> Store::Revert(int64_t change_id, const ChangeContext& ctx) {
  ChangeContext revert_ctx = ctx;
  revert_ctx.reason = "revert of change " + std::to_string(change_id) +
                      (ctx.reason.empty() ? "" : ": " + ctx.reason);
  std::vector<ChangeRow> recorded;
  Status st = RunWrite(db_, revert_ctx, [&](Write* w) -> Status {
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
  });
  if (!st.ok()) return st;
  return recorded;
}

}  // namespace strangler
