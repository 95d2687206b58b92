#include "control/live_page.h"

#include <chrono>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "base/time.h"
#include "metrics/live_window.h"
#include "metrics/request_metrics.h"
#include "proxy/proxy.h"

namespace strangler {
namespace {

// A share in percent with two decimals; null when `of` is 0.
Json Percent(uint64_t part, uint64_t of) {
  if (of == 0) return Json();
  return std::round(10000.0 * static_cast<double>(part) / static_cast<double>(of)) / 100;
}

Json Millis(double ms) {
  if (ms < 0) return Json();
  return std::round(ms * 1000) / 1000;
}

Json Side(const std::string& backend, const LiveTotals& t) {
  return Json{{"backend", backend},
              {"requests", t.requests},
              {"errors_5xx", t.errors},
              {"error_rate", Percent(t.errors, t.requests)},
              {"p50_ms", Millis(t.QuantileMs(0.5))},
              {"p99_ms", Millis(t.QuantileMs(0.99))}};
}

}  // namespace

Json RenderLive(Proxy& proxy) {
  std::shared_ptr<const ProxySnapshot> snap = proxy.snapshot();
  const RouteTable& table = *snap->table;
  const auto live = proxy.metrics().CollectLive(LivePeriod(std::chrono::steady_clock::now()));
  const std::map<std::string, MirrorTally> mirrored = proxy.mirror().Recent();
  // Each side by its backend's name as the rules are now: what a backend
  // answered for the route in the last minute, whichever side it was on.
  const std::vector<std::string> backend_names = proxy.metrics().backends().All();
  auto totals = [&](uint32_t route, const std::string& backend) {
    LiveTotals sum;
    for (auto it = live.lower_bound({route, 0}); it != live.end() && it->first.first == route;
         ++it) {
      const uint32_t b = it->first.second;
      if (b < backend_names.size() && backend_names[b] == backend) sum += it->second;
    }
    return sum;
  };

  Json routes = Json::array();
  for (size_t i = 0; i < table.routes().size(); ++i) {
    const Route& r = table.routes()[i];
    const uint32_t id = snap->routes[i].metric_id;
    const std::string else_name = !r.else_backend.empty() ? r.else_backend
                                  : table.default_backend() >= 0
                                      ? table.backends()[table.default_backend()].name
                                      : "";
    const LiveTotals to = totals(id, r.to);
    const LiveTotals other = else_name == r.to ? LiveTotals{} : totals(id, else_name);
    Json mirror;
    if (!r.mirror.empty() || mirrored.count(r.name) != 0) {
      auto it = mirrored.find(r.name);
      MirrorTally t = it == mirrored.end() ? MirrorTally{} : it->second;
      mirror = Json{
          {"backend", r.mirror.empty() ? Json() : Json(r.mirror)},
          {"compared", t.compared},
          {"equal", t.equal},
          {"parity", Percent(static_cast<uint64_t>(t.equal), static_cast<uint64_t>(t.compared))},
          {"failed", t.failed},
          {"dropped", t.dropped}};
    }
    routes.push_back(Json{{"route", r.name},
                          {"enabled", r.enabled},
                          {"to", r.to},
                          {"else", else_name},
                          {"percent", PercentJson(r.percent_bp)},
                          {"requests", to.requests + other.requests},
                          {"observed_share", Percent(to.requests, to.requests + other.requests)},
                          {"fallbacks", to.fallbacks},
                          {"sides", {{"to", Side(r.to, to)}, {"else", Side(else_name, other)}}},
                          {"mirror", mirror}});
  }
  std::string now;
  AppendRfc3339Ms(std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count(),
                  &now);
  return Json{{"window_s", kLiveWindowSeconds},
              {"ruleset", table.version()},
              {"generated_at", now},
              {"routes", std::move(routes)}};
}

}  // namespace strangler
