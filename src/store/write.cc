#include "store/write.h"

#include <utility>

#include "base/text.h"
#include "base/time.h"

namespace strangler {
namespace store_internal {

std::string NowRfc3339() {
  std::string out;
  AppendRfc3339Ms(NowUnixMs(), &out);
  return out;
}

Result<int64_t> QueryRulesetVersion(sqlite3* db) {
  return QueryInt(db, "SELECT value FROM meta WHERE key = 'ruleset_version'");
}

Result<Write> BeginWrite(sqlite3* db, Txn* txn, const ChangeContext& ctx) {
  STRANGLER_RETURN_IF_ERROR(txn->Begin(Txn::Kind::kWrite));
  Result<int64_t> v = QueryRulesetVersion(db);
  if (!v.ok()) return v.status();
  const int64_t now = NowUnixMs();
  std::string stamp;
  AppendRfc3339Ms(now, &stamp);
  return Write{db, ctx, std::move(stamp), now, *v + 1, 0, {}};
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

// Every history read carries the reasons (the dashboard reads 300 rows every
// 2 s): a sentence or a ticket link, not a document.
constexpr size_t kMaxReasonBytes = 4096;
constexpr size_t kMaxActorBytes = 256;

Status RecordChange(Write* w, std::string_view action, std::string_view kind,
                    const std::string& name, const Json& before, const Json& after, Bump bump) {
  // History is read back as JSON (history --json, the API): text only.
  if (w->ctx.reason.size() > kMaxReasonBytes) {
    return Status::Usage("the reason is " + std::to_string(w->ctx.reason.size()) +
                         " bytes; keep it under " + std::to_string(kMaxReasonBytes + 1));
  }
  if (!ValidUtf8(w->ctx.reason)) {
    return Status::Usage("the reason is not UTF-8 text; write it in UTF-8");
  }
  if (!ValidUtf8(w->ctx.actor)) {
    return Status::Usage("the actor is not UTF-8 text; write it in UTF-8");
  }
  // history prints both to terminals: nothing a terminal would act on.
  if (HasControlCharacter(w->ctx.reason)) {
    return Status::Usage(
        "the reason has a control character (a newline, escape or direction override); "
        "write it on one line as plain text");
  }
  if (HasControlCharacter(w->ctx.actor) || w->ctx.actor.size() > kMaxActorBytes) {
    return Status::Usage("the actor must be one line of plain text of at most " +
                         std::to_string(kMaxActorBytes) + " bytes");
  }
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
  s.Bind(9, bump == Bump::kYes || w->changed > 0 ? w->version : w->version - 1);
  STRANGLER_RETURN_IF_ERROR(s.Run());
  if (bump == Bump::kYes) ++w->changed;
  w->recorded.push_back(ChangeRow{LastInsertRowid(w->db), w->ts, w->ctx.actor, std::string(action),
                                  std::string(kind) + "/" + name, before, after, w->ctx.reason});
  return Status::Ok();
}

}  // namespace store_internal
}  // namespace strangler
