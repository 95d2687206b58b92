#include "store/sql.h"

#include <sqlite3.h>

namespace strangler {
namespace store_internal {

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

// --- Stmt ----------------------------------------------------------------------

static_assert(SQLITE_OK == 0, "Stmt::bind_rc_ starts at SQLITE_OK");

Stmt::~Stmt() { sqlite3_finalize(stmt_); }

Status Stmt::Prepare(sqlite3* db, std::string_view sql) {
  db_ = db;
  int rc = sqlite3_prepare_v2(db, sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr);
  if (rc != SQLITE_OK) return SqlStatus(db, rc, "preparing a query");
  return Status::Ok();
}

void Stmt::Bind(int i, std::string_view s) {
  Keep(sqlite3_bind_text(stmt_, i, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT));
}
void Stmt::Bind(int i, int64_t v) { Keep(sqlite3_bind_int64(stmt_, i, v)); }
void Stmt::BindReal(int i, double v) { Keep(sqlite3_bind_double(stmt_, i, v)); }
void Stmt::BindNull(int i) { Keep(sqlite3_bind_null(stmt_, i)); }

Result<bool> Stmt::Step() {
  if (bind_rc_ != SQLITE_OK) return SqlStatus(db_, bind_rc_, "binding a query parameter");
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqlStatus(db_, rc, "running a query");
}

bool Stmt::IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
int64_t Stmt::Int(int col) const { return sqlite3_column_int64(stmt_, col); }
double Stmt::Real(int col) const { return sqlite3_column_double(stmt_, col); }
std::string Stmt::Text(int col) const {
  const unsigned char* p = sqlite3_column_text(stmt_, col);
  if (p == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, col)));
}

void Stmt::Keep(int rc) {
  if (bind_rc_ == SQLITE_OK) bind_rc_ = rc;
}

Status Exec(sqlite3* db, const char* sql, std::string_view doing) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqlStatus(db, rc, doing);
  return Status::Ok();
}

// --- Txn -----------------------------------------------------------------------

Txn::~Txn() {
  if (open_ && !sqlite3_get_autocommit(db_))
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
}

Status Txn::Begin(Kind kind) {
  STRANGLER_RETURN_IF_ERROR(
      Exec(db_, kind == Kind::kWrite ? "BEGIN IMMEDIATE" : "BEGIN", "starting a transaction"));
  open_ = true;
  return Status::Ok();
}

Status Txn::Commit() {
  STRANGLER_RETURN_IF_ERROR(Exec(db_, "COMMIT", "committing"));
  open_ = false;
  return Status::Ok();
}

Result<int64_t> QueryInt(sqlite3* db, std::string_view sql) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, sql));
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  if (!*row || s.IsNull(0)) return int64_t{0};
  return s.Int(0);
}

int64_t LastInsertRowid(sqlite3* db) { return sqlite3_last_insert_rowid(db); }

}  // namespace store_internal
}  // namespace strangler
