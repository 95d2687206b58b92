// What mirroring found, as `strangler diff` and GET /api/v1/diff show it:
// per route its mirror and parity counts, then the latest mismatches.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "base/status.h"
#include "rules/rules.h"
#include "safety/mirror_results.h"

namespace strangler {

class Store;

// One route's line: its mirror now ("" when removed since) and its totals.
struct RouteDiff {
  std::string mirror;
  std::optional<DiffStats> stats;
};
struct DiffReport {
  // Routes with a --mirror and any with results; only `route` when one is named.
  std::map<std::string, RouteDiff> routes;
  std::vector<DiffRecord> mismatches;  // newest first, at most `limit`
};

// Not found when `route` is named and neither exists nor has results.
Result<DiffReport> LoadDiffReport(Store& store, const std::string& route, int limit);
// {"routes": [{route, mirror, compared, equal, parity (0..1 or null), dropped,
// failed, since, last_at}], "mismatches": [MismatchJson...]}
Json DiffReportJson(const DiffReport& report);
// {id, route, ts, request_id, method, target, primary_backend,
// mirror_backend, result}
Json MismatchJson(const DiffRecord& d);
// equal / compared, rounded to 6 decimals; null when nothing was compared.
Json ParityJson(const MirrorTally& t);

}  // namespace strangler
