// Mirror results as rows: the running tallies per route (diff_stats) and the
// kept mismatches (diffs). Private to src/store/; not thread-safe (one
// connection).
#pragma once

#include <string>

#include "base/status.h"
#include "store/write.h"

namespace strangler {
namespace store_internal {

// Drops a route's mirror comparisons (totals and kept mismatches).
Status DeleteDiffsIn(Write* w, const std::string& route);

}  // namespace store_internal
}  // namespace strangler
