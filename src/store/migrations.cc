#include "store/migrations.h"

#include <sqlite3.h>

#include <chrono>
#include <string>

#include "store/sql.h"
#include "store/write.h"

namespace strangler {
namespace store_internal {
namespace {

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

}  // namespace

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

Status SwitchToWal(sqlite3* db) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  for (;;) {
    int rc = sqlite3_exec(db, "PRAGMA journal_mode = WAL", nullptr, nullptr, nullptr);
    if (rc == SQLITE_OK) return Status::Ok();
    if ((rc & 0xff) != SQLITE_BUSY || std::chrono::steady_clock::now() >= deadline) {
      return SqlStatus(db, rc, "switching to WAL mode");
    }
    sqlite3_sleep(5);
  }
}

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

}  // namespace store_internal
}  // namespace strangler
