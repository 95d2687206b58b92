#include "store/ramp_rows.h"

#include "store/rule_rows.h"
#include "store/sql.h"

namespace strangler {
namespace store_internal {
namespace {

constexpr char kSelectRamps[] =
    "SELECT route, target_bp, step_bp, every_ms, max_error_rate, min_requests, on_breach, state, "
    "step, next_at_ms, started_at, updated_at, last_to_n, last_to_5xx, last_else_n, "
    "last_else_5xx, note FROM ramps";

Result<Ramp> RampFromRow(const Stmt& s) {
  Ramp r;
  r.spec.route = s.Text(0);
  std::optional<OnBreach> on_breach = ParseOnBreach(s.Text(6));
  std::optional<RampState> state = ParseRampState(s.Text(7));
  if (!on_breach || !state) {
    return Status::Internal("store is damaged: ramp of route '" + r.spec.route +
                            "' has on_breach '" + s.Text(6) + "' and state '" + s.Text(7) + "'");
  }
  r.spec.target_bp = static_cast<int>(s.Int(1));
  r.spec.step_bp = static_cast<int>(s.Int(2));
  r.spec.every_ms = s.Int(3);
  if (!s.IsNull(4)) r.spec.max_error_rate = s.Real(4);
  r.spec.min_requests = s.Int(5);
  r.spec.on_breach = *on_breach;
  r.state = *state;
  r.step = s.Int(8);
  r.next_at_ms = s.Int(9);
  r.started_at = s.Text(10);
  r.updated_at = s.Text(11);
  r.last = RampCounts{s.Int(12), s.Int(13), s.Int(14), s.Int(15)};
  r.note = s.Text(16);
  return r;
}

}  // namespace

Result<std::vector<Ramp>> QueryRamps(sqlite3* db, Which which) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(
      db, std::string(kSelectRamps) + (which == Which::kRunning ? " WHERE state = 'running'" : "") +
              " ORDER BY route"));
  return CollectRows<Ramp>(s, RampFromRow);
}

Result<std::optional<Ramp>> FindRamp(sqlite3* db, const std::string& route) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, std::string(kSelectRamps) + " WHERE route = ?1"));
  s.Bind(1, route);
  return FirstRow<Ramp>(s, RampFromRow);
}

Status WriteRamp(sqlite3* db, const Ramp& r) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(
      db,
      "INSERT OR REPLACE INTO ramps (route, target_bp, step_bp, every_ms, max_error_rate, "
      "min_requests, on_breach, state, step, next_at_ms, started_at, updated_at, last_to_n, "
      "last_to_5xx, last_else_n, last_else_5xx, note) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)"));
  s.Bind(1, r.spec.route);
  s.Bind(2, int64_t{r.spec.target_bp});
  s.Bind(3, int64_t{r.spec.step_bp});
  s.Bind(4, r.spec.every_ms);
  if (r.spec.max_error_rate)
    s.BindReal(5, *r.spec.max_error_rate);
  else
    s.BindNull(5);
  s.Bind(6, r.spec.min_requests);
  s.Bind(7, ToString(r.spec.on_breach));
  s.Bind(8, ToString(r.state));
  s.Bind(9, r.step);
  s.Bind(10, r.next_at_ms);
  s.Bind(11, r.started_at);
  s.Bind(12, r.updated_at);
  s.Bind(13, r.last.to_n);
  s.Bind(14, r.last.to_5xx);
  s.Bind(15, r.last.else_n);
  s.Bind(16, r.last.else_5xx);
  s.Bind(17, r.note);
  return s.Run();
}

Result<RampCounts> WindowCounts(sqlite3* db, const std::string& route, int64_t step) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(
      db, "SELECT to_n, to_5xx, else_n, else_5xx FROM ramp_counts WHERE route = ?1 AND step = ?2"));
  s.Bind(1, route);
  s.Bind(2, step);
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  if (!*row) return RampCounts{};
  return RampCounts{s.Int(0), s.Int(1), s.Int(2), s.Int(3)};
}

Status AddWindowCounts(sqlite3* db, const std::string& route, int64_t step, const RampCounts& c) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(db,
                "INSERT INTO ramp_counts (route, step, to_n, to_5xx, else_n, else_5xx) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (route, step) DO UPDATE SET "
                "to_n = to_n + excluded.to_n, to_5xx = to_5xx + excluded.to_5xx, "
                "else_n = else_n + excluded.else_n, else_5xx = else_5xx + excluded.else_5xx"));
  s.Bind(1, route);
  s.Bind(2, step);
  s.Bind(3, c.to_n);
  s.Bind(4, c.to_5xx);
  s.Bind(5, c.else_n);
  s.Bind(6, c.else_5xx);
  return s.Run();
}

Status ClearWindows(sqlite3* db, const std::string& route, int64_t keep) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(db, "DELETE FROM ramp_counts WHERE route = ?1 AND step != ?2"));
  s.Bind(1, route);
  s.Bind(2, keep);
  return s.Run();
}

Status FillRampViews(sqlite3* db, Ramp* r) {
  Result<RampCounts> c = WindowCounts(db, r->spec.route, r->step);
  if (!c.ok()) return c.status();
  r->current = *c;
  Result<std::optional<Route>> route = FindRoute(db, r->spec.route);
  if (!route.ok()) return route.status();
  r->percent_bp = route->has_value() ? (*route)->percent_bp : -1;
  return Status::Ok();
}

}  // namespace store_internal
}  // namespace strangler
