#include "store/mirror_rows.h"

#include <algorithm>
#include <set>
#include <utility>
#include <vector>

#include "store/rule_rows.h"
#include "store/sql.h"

namespace strangler {
namespace store_internal {
namespace {

Status AddTally(sqlite3* db, const std::string& route, const MirrorTally& t,
                const std::string& ts) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(db,
                "INSERT INTO diff_stats (route, compared, equal, dropped, failed, since, last_at) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT (route) DO UPDATE SET "
                "compared = compared + excluded.compared, equal = equal + excluded.equal, "
                "dropped = dropped + excluded.dropped, failed = failed + excluded.failed, "
                "last_at = excluded.last_at"));
  s.Bind(1, route);
  s.Bind(2, t.compared);
  s.Bind(3, t.equal);
  s.Bind(4, t.dropped);
  s.Bind(5, t.failed);
  s.Bind(6, ts);
  return s.Run();
}

Status InsertDiff(sqlite3* db, const DiffRecord& d) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(db,
                "INSERT INTO diffs (route, ts, request_id, method, target, primary_backend, "
                "mirror_backend, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  s.Bind(1, d.route);
  s.Bind(2, d.ts);
  s.Bind(3, d.request_id);
  s.Bind(4, d.method);
  s.Bind(5, d.target);
  s.Bind(6, d.primary_backend);
  s.Bind(7, d.mirror_backend);
  // Bodies compared as text may hold bytes that are not UTF-8: never throw.
  s.Bind(8, d.result.dump(-1, ' ', false, Json::error_handler_t::replace));
  return s.Run();
}

// Deletes all but the newest keep_diffs records of `route`.
Status PruneDiffs(sqlite3* db, const std::string& route) {
  Stmt keep;
  STRANGLER_RETURN_IF_ERROR(
      keep.Prepare(db, "SELECT json_extract(spec, '$.keep_diffs') FROM routes WHERE name = ?1"));
  keep.Bind(1, route);
  Result<bool> row = keep.Step();
  if (!row.ok()) return row.status();
  int64_t n = *row && !keep.IsNull(0) ? keep.Int(0) : kDefaultKeepDiffs;
  Stmt del;
  STRANGLER_RETURN_IF_ERROR(del.Prepare(
      db,
      "DELETE FROM diffs WHERE route = ?1 AND id <= (SELECT id FROM diffs WHERE route = ?1 "
      "ORDER BY id DESC LIMIT 1 OFFSET ?2)"));
  del.Bind(1, route);
  del.Bind(2, std::max<int64_t>(n, 0));
  return del.Run();
}

constexpr char kSelectDiffStats[] =
    "SELECT route, compared, equal, dropped, failed, since, last_at FROM diff_stats";
constexpr char kSelectDiffs[] =
    "SELECT id, route, ts, request_id, method, target, primary_backend, mirror_backend, result "
    "FROM diffs";

Result<DiffStats> DiffStatsFromRow(const Stmt& row) {
  DiffStats d;
  d.route = row.Text(0);
  d.tally = MirrorTally{row.Int(1), row.Int(2), row.Int(3), row.Int(4)};
  d.since = row.Text(5);
  d.last_at = row.Text(6);
  return d;
}

Result<DiffRecord> DiffFromRow(const Stmt& s) {
  DiffRecord d;
  d.id = s.Int(0);
  d.route = s.Text(1);
  d.ts = s.Text(2);
  d.request_id = s.Text(3);
  d.method = s.Text(4);
  d.target = s.Text(5);
  d.primary_backend = s.Text(6);
  d.mirror_backend = s.Text(7);
  d.result = Json::parse(s.Text(8), nullptr, false);
  if (d.result.is_discarded()) {
    return Status::Internal("store is damaged: mirror result " + std::to_string(d.id) +
                            " is not JSON");
  }
  return d;
}

}  // namespace

Status DeleteDiffsIn(Write* w, const std::string& route) {
  for (const char* sql : {"DELETE FROM diff_stats WHERE route = ?1", "DELETE FROM diffs WHERE route = ?1"}) {
    Stmt s;
    STRANGLER_RETURN_IF_ERROR(s.Prepare(w->db, sql));
    s.Bind(1, route);
    STRANGLER_RETURN_IF_ERROR(s.Run());
  }
  return Status::Ok();
}

}  // namespace store_internal

using namespace store_internal;

Status Store::RecordMirrorResults(const std::vector<std::pair<std::string, MirrorTally>>& tallies,
                                  const std::vector<DiffRecord>& records) {
  if (tallies.empty() && records.empty()) return Status::Ok();
  Txn txn(db_);
  STRANGLER_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kWrite));
  const std::string now = NowRfc3339();
  for (const auto& [route, t] : tallies) {
    if (t.compared == 0 && t.equal == 0 && t.dropped == 0 && t.failed == 0) continue;
    STRANGLER_RETURN_IF_ERROR(AddTally(db_, route, t, now));
  }
  std::set<std::string> touched;
  for (const DiffRecord& d : records) {
    STRANGLER_RETURN_IF_ERROR(InsertDiff(db_, d));
    touched.insert(d.route);
  }
  for (const std::string& route : touched) STRANGLER_RETURN_IF_ERROR(PruneDiffs(db_, route));
  return txn.Commit();
}

Status Store::ResetDiffs(const std::string& route, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) -> Status {
    Result<std::optional<Route>> found = FindRoute(w->db, route);
    if (!found.ok()) return found.status();
    if (!found->has_value()) return UnknownRoute(route);
    Stmt s;
    STRANGLER_RETURN_IF_ERROR(
        s.Prepare(w->db, std::string(kSelectDiffStats) + " WHERE route = ?1"));
    s.Bind(1, route);
    Result<std::vector<DiffStats>> stats = CollectRows<DiffStats>(s, DiffStatsFromRow);
    if (!stats.ok()) return stats.status();
    Json before;
    if (!stats->empty()) {
      const DiffStats& d = stats->front();
      before = Json{{"compared", d.tally.compared}, {"equal", d.tally.equal},
                    {"dropped", d.tally.dropped}, {"failed", d.tally.failed},
                    {"since", d.since}};
    }
    STRANGLER_RETURN_IF_ERROR(DeleteDiffsIn(w, route));
    // Bookkeeping beside the rules, like a ramp row: no new ruleset.
    return RecordChange(w, "diff.reset", "mirror", route, before, Json(), Bump::kNo);
  });
}

Result<std::vector<DiffStats>> Store::ListDiffStats(const std::string& route) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db_, std::string(kSelectDiffStats) +
                                               (route.empty() ? "" : " WHERE route = ?1") +
                                               " ORDER BY route"));
  if (!route.empty()) s.Bind(1, route);
  return CollectRows<DiffStats>(s, DiffStatsFromRow);
}

Result<std::vector<DiffRecord>> Store::LatestDiffs(const std::string& route, int limit) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db_, std::string(kSelectDiffs) +
                                               (route.empty() ? "" : " WHERE route = ?2") +
                                               " ORDER BY id DESC LIMIT ?1"));
  s.Bind(1, int64_t{limit > 0 ? limit : -1});  // a negative LIMIT means none
  if (!route.empty()) s.Bind(2, route);
  return CollectRows<DiffRecord>(s, DiffFromRow);
}

}  // namespace strangler
