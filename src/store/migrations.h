// The SQL migrations compiled into the binary (generated from migrations/),
// and how a store is checked, switched to WAL and migrated when opened.
#pragma once

#include <string>
#include <vector>

#include "base/status.h"

struct sqlite3;

namespace strangler {

struct Migration {
  int version;          // the file's number: 0001_init.sql -> 1
  const char* name;     // file name without .sql
  const char* sql;
};

// Ascending by version.
const std::vector<Migration>& Migrations();

namespace store_internal {

// Opening a store (Store::Open), step by step.

// Reads, without writing anything, whether `path` is a store this binary can
// use and its schema version (0 for a new, empty file).
Result<int> CheckExisting(sqlite3* db, const std::string& path, int newest);

// Switching the journal mode needs the file to itself, and SQLite answers
// SQLITE_BUSY at once, without calling the busy handler, while another
// connection reads it (as when several processes open a new store together).
// So the switch is retried here, within the same budget as any other lock.
Status SwitchToWal(sqlite3* db);

// Applies every migration newer than the DB, each in its own BEGIN IMMEDIATE
// transaction with its schema_migrations row. The version is re-read inside
// the transaction, so two processes opening a new store at once apply each
// migration exactly once.
Result<int> Migrate(sqlite3* db, const std::string& path, int version);

}  // namespace store_internal

}  // namespace strangler
