// Live instance load as rows (instance_load, migration 0003): each serve's
// rows replaced together, read back by `backend show`. Bookkeeping beside
// the rules, like mirror results: no history, no ruleset version.
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "rules/rules.h"
#include "store/sql.h"
#include "store/store.h"

namespace strangler {
namespace store_internal {
namespace {

// Rows of a serve that has not written for this long are deleted by any
// other serve's write; readers have long stopped showing them.
constexpr int64_t kForgetLoadAfterMs = 3600 * 1000;

constexpr char kSelectLoad[] =
    "SELECT serve, backend, instance, max_conns, open, idle, in_use, queued, queue_waits, "
    "queue_503, connect_failures, health FROM instance_load";

// The health fields as the row's JSON column (migration 0004).
std::string HealthJson(const InstanceLoad& l) {
  Json j = Json::object();
  if (l.ejected) {
    j["ejected"] = true;
    j["ejected_until_ms"] = l.ejected_until_ms;
  }
  if (l.failures > 0) j["failures"] = l.failures;
  if (l.ejections > 0) j["ejections"] = l.ejections;
  if (!l.last_failure.empty()) j["last_failure"] = l.last_failure;
  if (l.checked) {
    j["checked"] = true;
    if (l.check_down) j["check_down"] = true;
    if (!l.last_check.empty()) {
      j["last_check"] = l.last_check;
      j["last_check_ms"] = l.last_check_ms;
    }
  }
  if (l.tls_handshakes > 0) {
    j["tls_handshakes"] = l.tls_handshakes;
    j["tls_resumed"] = l.tls_resumed;
  }
  return j.dump();
}

// Reads what HealthJson wrote; a field missing or of another type (a newer
// serve's, say) is left at its default.
void ReadHealthJson(const std::string& text, InstanceLoad* l) {
  Json j = Json::parse(text, nullptr, false);
  if (!j.is_object()) return;
  auto get = [&j](const char* key, auto* out) {
    auto it = j.find(key);
    using T = std::remove_pointer_t<decltype(out)>;
    if (it == j.end()) return;
    if constexpr (std::is_same_v<T, bool>) {
      if (it->is_boolean()) *out = it->template get<bool>();
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (it->is_string()) *out = it->template get<std::string>();
    } else {
      if (it->is_number_integer()) *out = it->template get<T>();
    }
  };
  get("ejected", &l->ejected);
  get("ejected_until_ms", &l->ejected_until_ms);
  get("failures", &l->failures);
  get("ejections", &l->ejections);
  get("last_failure", &l->last_failure);
  get("checked", &l->checked);
  get("check_down", &l->check_down);
  get("last_check", &l->last_check);
  get("last_check_ms", &l->last_check_ms);
  get("tls_handshakes", &l->tls_handshakes);
  get("tls_resumed", &l->tls_resumed);
}

Status DeleteServeRows(sqlite3* db, const std::string& serve_id) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, "DELETE FROM instance_load WHERE serve = ?1"));
  s.Bind(1, serve_id);
  return s.Run();
}

Status InsertLoad(sqlite3* db, const std::string& serve_id, int64_t now_ms, const InstanceLoad& l) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(
      s.Prepare(db,
                "INSERT OR REPLACE INTO instance_load (serve, backend, instance, max_conns, open, "
                "idle, in_use, queued, queue_waits, queue_503, connect_failures, updated_ms, health) "
                "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"));
  s.Bind(1, serve_id);
  s.Bind(2, l.backend);
  s.Bind(3, l.instance);
  s.Bind(4, int64_t{l.max_conns});
  s.Bind(5, l.open);
  s.Bind(6, l.idle);
  s.Bind(7, l.in_use);
  s.Bind(8, l.queued);
  s.Bind(9, l.queue_waits);
  s.Bind(10, l.queue_503);
  s.Bind(11, l.connect_failures);
  s.Bind(12, now_ms);
  s.Bind(13, HealthJson(l));
  return s.Run();
}

Result<std::pair<std::string, InstanceLoad>> LoadFromRow(const Stmt& s) {
  InstanceLoad l;
  l.backend = s.Text(1);
  l.instance = s.Text(2);
  l.max_conns = static_cast<int>(s.Int(3));
  l.open = s.Int(4);
  l.idle = s.Int(5);
  l.in_use = s.Int(6);
  l.queued = s.Int(7);
  l.queue_waits = s.Int(8);
  l.queue_503 = s.Int(9);
  l.connect_failures = s.Int(10);
  ReadHealthJson(s.Text(11), &l);
  return std::make_pair(s.Text(0), std::move(l));
}

}  // namespace
}  // namespace store_internal

using namespace store_internal;

Status Store::WriteInstanceLoad(const std::string& serve_id, int64_t now_ms,
                                const std::vector<InstanceLoad>& rows) {
  Txn txn(db_);
  STRANGLER_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kWrite));
  STRANGLER_RETURN_IF_ERROR(DeleteServeRows(db_, serve_id));
  Stmt forget;
  STRANGLER_RETURN_IF_ERROR(forget.Prepare(db_, "DELETE FROM instance_load WHERE updated_ms < ?1"));
  forget.Bind(1, now_ms - kForgetLoadAfterMs);
  STRANGLER_RETURN_IF_ERROR(forget.Run());
  for (const InstanceLoad& l : rows) {
    STRANGLER_RETURN_IF_ERROR(InsertLoad(db_, serve_id, now_ms, l));
  }
  return txn.Commit();
}

Status Store::DropInstanceLoad(const std::string& serve_id) {
  return DeleteServeRows(db_, serve_id);
}

Result<std::vector<std::pair<std::string, InstanceLoad>>> Store::ReadInstanceLoad(
    const std::string& backend, int64_t fresh_since_ms) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db_, std::string(kSelectLoad) + " WHERE updated_ms >= ?1" +
                                               (backend.empty() ? "" : " AND backend = ?2") +
                                               " ORDER BY backend, instance, serve"));
  s.Bind(1, fresh_since_ms);
  if (!backend.empty()) s.Bind(2, backend);
  return CollectRows<std::pair<std::string, InstanceLoad>>(s, LoadFromRow);
}

}  // namespace strangler
