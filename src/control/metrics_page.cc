#include "control/metrics_page.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "decisions/decision_log.h"
#include "metrics/exposition.h"
#include "metrics/process_metrics.h"
#include "metrics/request_metrics.h"
#include "proxy/proxy.h"

namespace strangler {
namespace {

using Type = Exposition::Type;

// Route and backend ids back to names; an id the table does not know yet
// (named after the ids were copied) is left out.
struct Names {
  std::vector<std::string> routes, backends;
  const std::string* Route(uint32_t id) const { return id < routes.size() ? &routes[id] : nullptr; }
  const std::string* Backend(uint32_t id) const {
    return id < backends.size() ? &backends[id] : nullptr;
  }
};

void AppendRequests(const MetricTotals& t, const Names& names, Exposition* out) {
  out->Family("strangler_requests_total", Type::kCounter,
              "Requests answered, by route (empty: no route matched), backend (empty: the "
              "router's own answer), decision reason and status class.");
  for (const auto& [key, r] : t.requests) {
    const std::string* route = names.Route(key.first);
    const std::string* backend = names.Backend(key.second);
    if (!route || !backend) continue;
    for (size_t i = 0; i < kReasonNames.size(); ++i) {
      for (size_t c = 0; c < kCodeClasses.size(); ++c) {
        if (r.n[i][c] == 0) continue;
        out->Sample("",
                    {{"route", *route},
                     {"backend", *backend},
                     {"reason", kReasonNames[i]},
                     {"code", kCodeClasses[c]}},
                    static_cast<double>(r.n[i][c]));
      }
    }
  }
  out->Family("strangler_request_duration_seconds", Type::kHistogram,
              "Time from a request's first byte to the end of its answer, for requests that "
              "reached a backend, by route and backend.");
  for (const auto& [key, r] : t.requests) {
    const std::string* route = names.Route(key.first);
    const std::string* backend = names.Backend(key.second);
    if (!route || !backend || r.timed == 0) continue;
    for (size_t b = 0; b < kDurationBounds.size(); ++b) {
      std::string le = FormatMetricValue(kDurationBounds[b]);
      out->Sample("_bucket", {{"route", *route}, {"backend", *backend}},
                  static_cast<double>(r.bucket[b]), {{"le", le}});
    }
    out->Sample("_bucket", {{"route", *route}, {"backend", *backend}}, static_cast<double>(r.timed),
                {{"le", "+Inf"}});
    out->Sample("_sum", {{"route", *route}, {"backend", *backend}}, r.seconds);
    out->Sample("_count", {{"route", *route}, {"backend", *backend}}, static_cast<double>(r.timed));
  }
}

}  // namespace

std::string RenderMetrics(Proxy& proxy, const DecisionLog& log, uint64_t reload_errors) {
  std::shared_ptr<const ProxySnapshot> snap = proxy.snapshot();
  const RouteTable& table = *snap->table;
  RequestMetrics& metrics = proxy.metrics();
  // Totals first, then the names: every id in the totals has a name by then.
  MetricTotals totals = metrics.Collect();
  Names names{metrics.routes().All(), metrics.backends().All()};
  Exposition out;
  AppendRequests(totals, names, &out);

  // Every backend of the rules, and every one counted before, by name.
  std::set<uint32_t> backends;
  for (const auto& target : snap->targets) backends.insert(target->metric_id);
  for (const auto& [id, n] : totals.upstream_errors) backends.insert(id);
  out.Family("strangler_upstream_errors_total", Type::kCounter,
             "Failed tries at a backend: no connection (refused), the connection reset or "
             "closed before an answer (reset), no connection or answer in time (timeout), "
             "an answer that is not HTTP (bad_response).");
  for (uint32_t id : backends) {
    const std::string* name = names.Backend(id);
    if (!name) continue;
    auto it = totals.upstream_errors.find(id);
    for (size_t k = 0; k < kUpstreamErrorNames.size(); ++k) {
      double n = it == totals.upstream_errors.end() ? 0 : static_cast<double>(it->second[k]);
      out.Sample("", {{"backend", *name}, {"kind", kUpstreamErrorNames[k]}}, n);
    }
  }

  out.Family("strangler_route_percent", Type::kGauge,
             "The share of a route's matching requests its rules send to --to, in percent.");
  for (const Route& r : table.routes()) {
    out.Sample("", {{"route", r.name}}, r.percent_bp / 100.0);
  }

  std::set<uint32_t> fallback_routes;
  for (size_t i = 0; i < table.routes().size(); ++i) {
    if (table.routes()[i].fallback) fallback_routes.insert(snap->routes[i].metric_id);
  }
  for (const auto& [id, n] : totals.fallbacks) fallback_routes.insert(id);
  out.Family("strangler_fallbacks_total", Type::kCounter,
             "Requests a route with --fallback sent on to its --else backend after --to failed.");
  for (uint32_t id : fallback_routes) {
    const std::string* name = names.Route(id);
    if (!name) continue;
    auto it = totals.fallbacks.find(id);
    out.Sample("", {{"route", *name}},
               it == totals.fallbacks.end() ? 0 : static_cast<double>(it->second));
  }

  std::map<std::string, MirrorTally> mirrored = proxy.mirror().Totals();
  for (const Route& r : table.routes()) {
    if (!r.mirror.empty()) mirrored.emplace(r.name, MirrorTally{});
  }
  out.Family("strangler_mirror_results_total", Type::kCounter,
             "Mirrored copies by outcome: the mirror's answer equal to the client's, different, "
             "failed (refused, timed out, broken), or dropped (never sent).");
  for (const auto& [route, t] : mirrored) {
    out.Sample("", {{"route", route}, {"result", "equal"}}, static_cast<double>(t.equal));
    out.Sample("", {{"route", route}, {"result", "differ"}},
               static_cast<double>(t.compared - t.equal));
    out.Sample("", {{"route", route}, {"result", "failed"}}, static_cast<double>(t.failed));
    out.Sample("", {{"route", route}, {"result", "dropped"}}, static_cast<double>(t.dropped));
  }

  std::vector<InstanceLoad> loads = Upstreams::Loads(*snap);
  out.Family("strangler_instance_up", Type::kGauge,
             "1 while an instance of a backend is in rotation, 0 while ejected or down by its "
             "health checks.");
  std::map<std::string, int64_t> open_by_instance;  // an instance two backends list, once
  for (const InstanceLoad& l : loads) {
    out.Sample("", {{"backend", l.backend}, {"instance", l.instance}},
               l.ejected || l.check_down ? 0 : 1);
    open_by_instance[l.instance] = l.open;
  }
  bool any_tls = false;
  for (const InstanceLoad& l : loads) any_tls = any_tls || l.instance.rfind("https://", 0) == 0;
  if (any_tls) {
    out.Family("strangler_upstream_tls_handshakes_total", Type::kCounter,
               "TLS handshakes with https:// instances that succeeded, by whether they resumed "
               "a session (a refused certificate counts in strangler_upstream_errors_total "
               "{kind=\"tls\"}). An instance two backends list with the same TLS settings "
               "shares its connections: its count appears under both.");
    for (const InstanceLoad& l : loads) {
      if (l.instance.rfind("https://", 0) != 0) continue;
      out.Sample("", {{"backend", l.backend}, {"instance", l.instance}, {"resumed", "no"}},
                 static_cast<double>(l.tls_handshakes - l.tls_resumed));
      out.Sample("", {{"backend", l.backend}, {"instance", l.instance}, {"resumed", "yes"}},
                 static_cast<double>(l.tls_resumed));
    }
  }
  int64_t upstream_open = 0;
  for (const auto& [instance, n] : open_by_instance) upstream_open += n;
  out.Family("strangler_open_connections", Type::kGauge,
             "Connections open now: from clients, and to backends (in use or idle in the pool).");
  out.Sample("", {{"side", "client"}}, proxy.OpenSessions());
  out.Sample("", {{"side", "upstream"}}, static_cast<double>(upstream_open));

  if (const ServerTls* tls = proxy.server_tls()) {
    out.Family("strangler_tls_handshakes_total", Type::kCounter,
               "TLS handshakes on the listener, by result (plain_http: a plain HTTP request "
               "sent to the TLS port, answered 400; failed: any other failure).");
    auto n = [](const std::atomic<uint64_t>& a) {
      return static_cast<double>(a.load(std::memory_order_relaxed));
    };
    out.Sample("", {{"result", "ok"}}, n(tls->handshakes));
    out.Sample("", {{"result", "plain_http"}}, n(tls->plain_http));
    out.Sample("", {{"result", "failed"}}, n(tls->failed_handshakes) - n(tls->plain_http));
    out.Family("strangler_tls_certificate_reloads_total", Type::kCounter,
               "Times the listener's certificate and key were reloaded from their files.");
    out.Sample(n(tls->reloads));
  }
  out.Family("strangler_ruleset_version", Type::kGauge, "The version of the rules being served.");
  out.Sample(static_cast<double>(table.version()));
  out.Family("strangler_reload_errors_total", Type::kCounter,
             "Reloads that failed (the store unreadable, or new rules refused); the last good "
             "rules kept serving. Counted once per error logged.");
  out.Sample(static_cast<double>(reload_errors));
  out.Family("strangler_log_dropped_lines_total", Type::kCounter,
             "Decision-log lines dropped because the disk did not keep up.");
  out.Sample(static_cast<double>(log.dropped_lines()));
  AppendProcessMetrics(&out);
  return out.text();
}

}  // namespace strangler
