// The store's SQLite plumbing: every sqlite failure as a Status, a prepared
// statement, a transaction that rolls back unless committed. Private to
// src/store/ (nothing outside the store includes it); sqlite3 appears here
// only as opaque handles, so the files of the store that read and write rows
// need no sqlite3.h. Like Store, nothing here is thread-safe: one connection
// per thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace strangler {
namespace store_internal {

inline constexpr int kBusyTimeoutMs = 5000;
inline constexpr char kBusyMessage[] =
    "store is locked by another writer (waited 5s): try again";

// Every sqlite failure becomes a Status here. `doing` says what the store was
// trying to do, for the one-line message.
Status SqlStatus(sqlite3* db, int rc, std::string_view doing);

// Owns one prepared statement. Bind errors are kept and reported by Step().
class Stmt {
 public:
  Stmt() = default;
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  [[nodiscard]] Status Prepare(sqlite3* db, std::string_view sql);
  void Bind(int i, std::string_view s);
  void Bind(int i, int64_t v);
  void BindReal(int i, double v);
  void BindNull(int i);

  // True when a row is available, false when done.
  [[nodiscard]] Result<bool> Step();
  // Runs a statement that returns no rows.
  [[nodiscard]] Status Run() {
    Result<bool> r = Step();
    return r.ok() ? Status::Ok() : r.status();
  }

  bool IsNull(int col) const;
  int64_t Int(int col) const;
  double Real(int col) const;
  std::string Text(int col) const;

 private:
  void Keep(int rc);
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  int bind_rc_ = 0;  // SQLITE_OK
};

Status Exec(sqlite3* db, const char* sql, std::string_view doing);

// A transaction that rolls back unless committed, so an early return on any
// error leaves nothing half-written.
class Txn {
 public:
  explicit Txn(sqlite3* db) : db_(db) {}
  ~Txn();
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;

  enum class Kind { kRead, kWrite };
  [[nodiscard]] Status Begin(Kind kind);
  [[nodiscard]] Status Commit();

 private:
  sqlite3* db_;
  bool open_ = false;
};

// The first column of the first row of `sql`; 0 when there is none or it is
// NULL.
Result<int64_t> QueryInt(sqlite3* db, std::string_view sql);

// The rowid of the row the connection inserted last.
int64_t LastInsertRowid(sqlite3* db);

// Every row a prepared (and bound) statement yields, each turned into a T by
// `from_row`, which returns a T or a Result<T>.
template <typename T, typename FromRow>
Result<std::vector<T>> CollectRows(Stmt& s, FromRow from_row) {
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

// The first row a prepared (and bound) statement yields, turned into a T by
// `from_row` as CollectRows does; nullopt when there is none.
template <typename T, typename FromRow>
Result<std::optional<T>> FirstRow(Stmt& s, FromRow from_row) {
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  if (!*row) return std::optional<T>();
  Result<T> item = from_row(s);
  if (!item.ok()) return item.status();
  return std::optional<T>(std::move(*item));
}

}  // namespace store_internal
}  // namespace strangler
