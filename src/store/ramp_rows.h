// Ramp rows: the ramps table and the window counts of each ramp step
// (ramp_counts). Private to src/store/; not thread-safe (one connection).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "safety/ramp.h"

struct sqlite3;

namespace strangler {
namespace store_internal {

// Every ramp or the running ones, by route.
enum class Which { kAll, kRunning };
Result<std::vector<Ramp>> QueryRamps(sqlite3* db, Which which);
Result<std::optional<Ramp>> FindRamp(sqlite3* db, const std::string& route);
// Inserts or replaces the ramp's row (not its views `current`, `percent_bp`).
Status WriteRamp(sqlite3* db, const Ramp& r);

// What the window counted under `step` (zeros when nothing was).
Result<RampCounts> WindowCounts(sqlite3* db, const std::string& route, int64_t step);
// Adds `c` to the window counted under `step`.
Status AddWindowCounts(sqlite3* db, const std::string& route, int64_t step, const RampCounts& c);

constexpr int64_t kEveryWindow = -1;  // ClearWindows: keep no step's counts

// Deletes the route's window counts except those of step `keep`.
Status ClearWindows(sqlite3* db, const std::string& route, int64_t keep);

// The views ListRamps and GetRamp add: the window in progress and the
// route's percent now.
Status FillRampViews(sqlite3* db, Ramp* r);

}  // namespace store_internal
}  // namespace strangler
