#include "store/store.h"

#include <sqlite3.h>

#include <memory>
#include <string>
#include <vector>

#include "store/migrations.h"
#include "store/sql.h"
#include "store/write.h"

namespace strangler {
using namespace store_internal;

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
  STRANGLER_RETURN_IF_ERROR(SwitchToWal(db));

  Result<int> version = Migrate(db, path, *existing);
  if (!version.ok()) return version.status();
  store->schema_version_ = *version;
  return store;
}

int Store::schema_version() const { return schema_version_; }

Result<int64_t> Store::RulesetVersion() { return QueryRulesetVersion(db_); }

Result<int64_t> Store::DataVersion() { return QueryInt(db_, "PRAGMA data_version"); }

}  // namespace strangler
