#include "store/diff_report.h"

#include <cmath>

#include "store/store.h"

namespace strangler {

Result<DiffReport> LoadDiffReport(Store& store, const std::string& route, int limit) {
  auto routes = store.ListRoutes();
  if (!routes.ok()) return routes.status();
  auto stats = store.ListDiffStats(route);
  if (!stats.ok()) return stats.status();

  DiffReport report;
  bool known = false;
  for (const Route& r : *routes) {
    if (!route.empty() && r.name != route) continue;
    known = true;
    if (!r.mirror.empty() || !route.empty()) report.routes[r.name].mirror = r.mirror;
  }
  for (const DiffStats& s : *stats) report.routes[s.route].stats = s;
  for (auto& [name, d] : report.routes) {
    for (const Route& r : *routes) {
      if (r.name == name) d.mirror = r.mirror;
    }
  }
  if (!route.empty() && !known && report.routes.empty()) {
    return Status::NotFound("unknown route '" + route +
                            "' and no mirror results for it: list routes with 'strangler route "
                            "list'");
  }
  auto mismatches = store.LatestDiffs(route, limit);
  if (!mismatches.ok()) return mismatches.status();
  report.mismatches = std::move(mismatches).value();
  return report;
}

Json ParityJson(const MirrorTally& t) {
  if (t.compared == 0) return Json();
  double p = static_cast<double>(t.equal) / static_cast<double>(t.compared);
  return std::round(p * 1e6) / 1e6;
}

Json MismatchJson(const DiffRecord& d) {
  return Json{{"id", d.id},
              {"route", d.route},
              {"ts", d.ts},
              {"request_id", d.request_id},
              {"method", d.method},
              {"target", d.target},
              {"primary_backend", d.primary_backend},
              {"mirror_backend", d.mirror_backend},
              {"result", d.result}};
}

Json DiffReportJson(const DiffReport& report) {
  Json out = {{"routes", Json::array()}, {"mismatches", Json::array()}};
  for (const auto& [name, d] : report.routes) {
    MirrorTally t = d.stats ? d.stats->tally : MirrorTally{};
    out["routes"].push_back({{"route", name},
                             {"mirror", d.mirror.empty() ? Json() : Json(d.mirror)},
                             {"compared", t.compared},
                             {"equal", t.equal},
                             {"parity", ParityJson(t)},
                             {"dropped", t.dropped},
                             {"failed", t.failed},
                             {"since", d.stats ? Json(d.stats->since) : Json()},
                             {"last_at", d.stats ? Json(d.stats->last_at) : Json()}});
  }
  for (const DiffRecord& m : report.mismatches) out["mismatches"].push_back(MismatchJson(m));
  return out;
}

}  // namespace strangler
