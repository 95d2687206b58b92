// Backend and route rows: reading them into values and writing values into
// them, as they are, without the checks the validated writes make (those are
// in rule_writes.h). Private to src/store/; not thread-safe (one connection).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "rules/rules.h"
#include "store/write.h"

struct sqlite3;

namespace strangler {
namespace store_internal {

// Not found, with how to add it.
Status UnknownBackend(const std::string& name);
Status UnknownRoute(const std::string& name);

// Every backend (route), by name.
Result<std::vector<Backend>> QueryBackends(sqlite3* db);
Result<std::vector<Route>> QueryRoutes(sqlite3* db);

// The backend (route) named `name`, or nullopt when there is none.
Result<std::optional<Backend>> FindBackend(sqlite3* db, const std::string& name);
Result<std::optional<Route>> FindRoute(sqlite3* db, const std::string& name);

// One row written as given, stamped with the write's time; no check, no
// history row.
enum class RowWrite { kInsert, kUpdate };
Status WriteBackendRow(Write* w, const Backend& b, RowWrite how);
Status WriteRouteRow(Write* w, const Route& r, RowWrite how);

}  // namespace store_internal
}  // namespace strangler
