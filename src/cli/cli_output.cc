// Pure CLI helpers that render rules, decisions and history for humans and
// as JSON. No I/O: callers print the returned strings.
#include <algorithm>
#include <cstdio>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "base/text.h"
#include "base/time.h"
#include "cli/cli.h"

namespace strangler {

namespace {

std::string Join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) out += sep;
    out += v[i];
  }
  return out;
}

// A JSON value as a short human string: strings bare, null as "-".
std::string Compact(const Json& v) {
  std::string s;
  if (v.is_null()) {
    s = "-";
  } else if (v.is_string()) {
    s = v.get<std::string>();
    if (s.empty()) s = "''";
  } else if (v.is_array()) {
    std::vector<std::string> items;
    for (const auto& e : v) items.push_back(e.is_string() ? e.get<std::string>() : e.dump());
    s = "[" + Join(items, ",") + "]";
  } else {
    s = v.dump();
  }
  constexpr size_t kMax = 40;
  if (DisplayWidth(s) > kMax) {
    size_t cut = kMax - 1;
    while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
    s = s.substr(0, cut) + "…";
  }
  return s;
}

}  // namespace

std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths(header.size(), 0);
  auto measure = [&](const std::vector<std::string>& row) {
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i) {
      widths[i] = std::max(widths[i], DisplayWidth(row[i]));
    }
  };
  measure(header);
  for (const auto& r : rows) measure(r);
  std::string out;
  auto emit = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t i = 0; i < widths.size(); ++i) {
      const std::string cell = i < row.size() ? row[i] : "";
      line += cell;
      if (i + 1 < widths.size()) line += std::string(widths[i] - DisplayWidth(cell) + 2, ' ');
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  };
  emit(header);
  for (const auto& r : rows) emit(r);
  return out;
}

std::string BackendTable(const std::vector<Backend>& backends, const LoadRows& load) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& b : backends) {
    std::set<std::string> reported, out;
    for (const auto& [serve, l] : load) {
      if (l.backend != b.name) continue;
      reported.insert(l.instance);
      if (l.ejected || l.check_down) out.insert(l.instance);
    }
    std::string rotation = "-";
    if (!reported.empty()) {
      rotation = std::to_string(reported.size() - out.size()) + "/" +
                 std::to_string(reported.size());
      if (out.size() == reported.size()) rotation += " (all out)";
    }
    rows.push_back({b.name, b.is_default ? "*" : "", std::to_string(b.timeout_ms) + "ms",
                    b.max_conns > 0 ? std::to_string(b.max_conns) : "-", rotation,
                    Join(b.urls, ",")});
  }
  return FormatTable({"NAME", "DEFAULT", "TIMEOUT", "MAX-CONNS", "IN-ROTATION", "URLS"}, rows);
}

std::string MatchSummary(const Route& r) {
  std::vector<std::string> parts;
  if (!r.path.empty()) parts.push_back(r.path);
  if (!r.methods.empty()) parts.push_back(Join(r.methods, ","));
  for (const auto& h : r.headers) parts.push_back("header:" + h);
  for (const auto& q : r.query) parts.push_back("query:" + q);
  for (const auto& c : r.cookies) parts.push_back("cookie:" + c);
  return parts.empty() ? "*" : Join(parts, " ");
}

std::string SplitSummary(const Route& r) {
  std::vector<std::string> parts;
  if (r.percent_bp < kFullPercentBp) parts.push_back(FormatPercent(r.percent_bp) + "%");
  if (!r.else_backend.empty()) parts.push_back("else " + r.else_backend);
  if (!r.sticky.empty()) parts.push_back("sticky " + r.sticky);
  if (!r.salt.empty()) parts.push_back("salt " + r.salt);
  if (r.priority != 0) parts.push_back("priority " + std::to_string(r.priority));
  if (!r.enabled) parts.push_back("disabled");
  return Join(parts, " ");
}

std::string RoutesTable(const std::vector<Route>& routes) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& r : routes) {
    rows.push_back({r.name, r.enabled ? "yes" : "no", std::to_string(r.priority), MatchSummary(r),
                    r.to, FormatPercent(r.percent_bp) + "%",
                    r.else_backend.empty() ? "(default)" : r.else_backend,
                    r.sticky.empty() ? "random" : r.sticky,
                    r.fallback_on_5xx ? "on 5xx" : r.fallback ? "yes" : "no",
                    r.mirror.empty() ? "-"
                                     : r.mirror + " " + FormatPercent(r.mirror_percent_bp) + "%"});
  }
  return FormatTable({"NAME", "ENABLED", "PRIORITY", "MATCH", "TO", "PERCENT", "ELSE", "STICKY",
                      "FALLBACK", "MIRROR"},
                     rows);
}

std::string ChangeSummary(const Json& before, const Json& after) {
  if (before.is_null() && after.is_null()) return "";
  if (before.is_null()) return "created";
  if (after.is_null()) return "removed";
  if (!before.is_object() || !after.is_object()) return Compact(before) + "→" + Compact(after);
  std::vector<std::string> keys;
  for (auto it = before.begin(); it != before.end(); ++it) keys.push_back(it.key());
  for (auto it = after.begin(); it != after.end(); ++it) {
    if (!before.contains(it.key())) keys.push_back(it.key());
  }
  std::vector<std::string> changes;
  for (const auto& k : keys) {
    Json b = before.contains(k) ? before[k] : Json();
    Json a = after.contains(k) ? after[k] : Json();
    if (b == a) continue;
    changes.push_back(k + " " + Compact(b) + "→" + Compact(a));
  }
  return changes.empty() ? "no change" : Join(changes, ", ");
}

namespace {

// A JSON percent (30, 12.5) as "30%", "12.5%".
std::string PercentText(const Json& v) {
  if (v.is_number()) {
    double bp = v.get<double>() * 100;
    return FormatPercent(static_cast<int>(bp + (bp < 0 ? -0.5 : 0.5))) + "%";
  }
  return Compact(v);
}

std::string RateText(double rate) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%%", rate * 100);
  return buf;
}

// A ramp row's CHANGE column: the plan when it starts, else the state it
// moved to (the reason column says why).
std::string RampChange(const ChangeRow& c) {
  if (c.action == "ramp.start") return "start: " + RampPlanSummary(c.after);
  std::string from = c.before.is_object() ? c.before.value("state", "?") : "-";
  std::string to = c.after.is_object() ? c.after.value("state", "?") : "-";
  return from == to ? "no change" : "state " + from + "→" + to;
}

}  // namespace

std::string RampPlanSummary(const Json& ramp) {
  if (!ramp.is_object()) return "-";
  std::string out = "to " + PercentText(ramp.value("target", Json())) + " by " +
                    PercentText(ramp.value("step", Json())) + " every " +
                    FormatDurationMs(ramp.value("every_ms", int64_t{0}));
  const Json budget = ramp.value("max_error_rate", Json());
  out += budget.is_number() ? ", error budget " + RateText(budget.get<double>()) + " 5xx"
                            : ", no error budget";
  int64_t min = ramp.value("min_requests", int64_t{0});
  if (min > 0) out += ", min " + std::to_string(min) + " requests";
  if (budget.is_number()) {
    out += ", on breach " + ramp.value("on_breach", ToString(OnBreach::kRollback));
  }
  return out;
}

std::string HistoryTable(const std::vector<ChangeRow>& rows) {
  std::vector<std::vector<std::string>> cells;
  for (const auto& c : rows) {
    bool ramp = c.object.rfind("ramp/", 0) == 0;
    cells.push_back({std::to_string(c.id), c.ts, std::to_string(c.ruleset), c.actor, c.action,
                     c.object, c.reason.empty() ? "-" : c.reason,
                     ramp ? RampChange(c) : ChangeSummary(c.before, c.after)});
  }
  return FormatTable(
      {"ID", "TIME", "RULESET", "ACTOR", "ACTION", "OBJECT", "REASON", "CHANGE"}, cells);
}

namespace {

// The queue as `backend show` says it: its bound and how long a request
// may wait, and that nothing waits while there is no cap.
std::string QueueText(const Backend& b) {
  std::string out =
      b.max_queue > 0 ? "at most " + std::to_string(b.max_queue) + " waiting" : "no bound";
  out += ", each at most " + FormatDurationMs(b.queue_timeout_ms);
  if (b.max_conns == 0) out += " (unused: no cap)";
  return out;
}

// One row per instance per serve, under a header, each line starting with
// `indent`; the counts since each serve started named after the table.
std::string LoadTable(const LoadRows& load, const std::string& indent) {
  std::vector<std::vector<std::string>> rows;
  std::string failures;  // the last failure of each instance that has one
  for (const auto& [serve, l] : load) {
    std::string state = "up";
    if (l.check_down) {
      state = "down (checks)";
    } else if (l.ejected) {
      // Until when (UTC, to the second): the same text however late it is read.
      std::string at;
      AppendRfc3339Ms(l.ejected_until_ms, &at);
      state = "ejected until " + at.substr(11, 8) + "Z";
    }
    if (!l.last_failure.empty()) {
      failures += l.instance + ": " + std::to_string(l.failures) + " failure" +
                  (l.failures == 1 ? "" : "s") + " in a row" +
                  (l.ejections > 0 ? ", ejected " + std::to_string(l.ejections) + "x in a row"
                                   : std::string()) +
                  "; last: " + l.last_failure + " (" + serve + ")\n";
    }
    if (!l.last_check.empty()) {
      std::string at;
      AppendRfc3339Ms(l.last_check_ms, &at);
      failures += l.instance + ": last check " + l.last_check + " at " + at.substr(11, 8) +
                  "Z (" + serve + ")\n";
    }
    if (l.tls_handshakes > 0) {
      failures += l.instance + ": " + std::to_string(l.tls_handshakes) + " TLS handshake" +
                  (l.tls_handshakes == 1 ? "" : "s") + ", " + std::to_string(l.tls_resumed) +
                  " resumed (" + serve + ")\n";
    }
    std::string open = std::to_string(l.open);
    if (l.max_conns > 0) open += "/" + std::to_string(l.max_conns);
    // The serve last: its id may hold spaces ("web1 0.0.0.0:8080 pid 4711").
    rows.push_back({l.instance, state, open, std::to_string(l.idle), std::to_string(l.in_use),
                    std::to_string(l.queued), std::to_string(l.queue_waits),
                    std::to_string(l.queue_503), std::to_string(l.connect_failures), serve});
  }
  std::string table = FormatTable(
      {"INSTANCE", "STATE", "OPEN", "IDLE", "IN-USE", "QUEUED", "WAITED", "503S", "CONNECT-FAILS",
       "SERVE"},
      rows);
  table += "(STATE, OPEN/cap and QUEUED now; WAITED, 503S and CONNECT-FAILS since that serve "
           "started)\n";
  table += failures;
  std::string out;
  size_t start = 0;
  for (size_t nl = table.find('\n'); nl != std::string::npos; nl = table.find('\n', start)) {
    out += indent + table.substr(start, nl + 1 - start);
    start = nl + 1;
  }
  return out;
}

}  // namespace

std::string DescribeBackend(const Backend& b, const LoadRows& load) {
  const std::string indent(11, ' ');
  std::ostringstream o;
  o << "name:      " << b.name << "\n"
    << "default:   " << (b.is_default ? "yes" : "no") << "\n"
    << "timeout:   " << b.timeout_ms << "ms\n"
    << "connect:   " << b.connect_timeout_ms << "ms timeout\n"
    << "max conns: "
    << (b.max_conns > 0 ? std::to_string(b.max_conns) + " per instance" : std::string("no cap"))
    << "\n"
    << "queue:     " << QueueText(b) << "\n"
    << "reuse:     after " << b.reuse_quiet_ms << "ms quiet\n"
    << "checks:    "
    << (b.health_path.empty() ? std::string("none")
                              : "GET " + b.health_path + " every " +
                                    FormatDurationMs(b.health_every_ms))
    << "\n"
    << "eject:     "
    << (b.eject_after > 0 ? "after " + std::to_string(b.eject_after) + " failures in a row, for " +
                                FormatDurationMs(b.eject_for_ms) + " (doubling, at most 5m)"
                          : std::string("never"))
    << "\n"
    << "urls:      " << Join(b.urls, "\n" + indent) << "\n";
  bool any_tls = false;
  for (const std::string& u : b.urls) any_tls = any_tls || u.rfind("https://", 0) == 0;
  if (any_tls) {
    o << "tls:       "
      << (b.tls_insecure      ? std::string("certificates NOT checked (--tls-insecure)")
          : b.ca_file.empty() ? std::string("certificates checked against the system's CAs")
                              : "certificates checked against " + b.ca_file + " (--ca)")
      << "\n";
  }
  if (load.empty()) {
    o << "load:      no running serve has reported this backend\n";
  } else {
    std::string table = LoadTable(load, indent);
    o << "load:" << table.substr(5);  // the label over the indent of its first line
  }
  return o.str();
}

Json LoadJson(const LoadRows& load) {
  Json arr = Json::array();
  for (const auto& [serve, l] : load) {
    arr.push_back(
        {{"serve", serve},
         {"instance", l.instance},
         {"max_conns", l.max_conns},
         {"open", l.open},
         {"idle", l.idle},
         {"in_use", l.in_use},
         {"queued", l.queued},
         {"queue_waits", l.queue_waits},
         {"queue_503", l.queue_503},
         {"connect_failures", l.connect_failures},
         {"ejected", l.ejected},
         {"ejected_until_ms", l.ejected ? Json(l.ejected_until_ms) : Json(nullptr)},
         {"failures", l.failures},
         {"ejections", l.ejections},
         {"last_failure", l.last_failure.empty() ? Json(nullptr) : Json(l.last_failure)},
         {"checked", l.checked},
         {"check_down", l.check_down},
         {"last_check", l.last_check.empty() ? Json(nullptr) : Json(l.last_check)},
         {"last_check_ms", l.last_check.empty() ? Json(nullptr) : Json(l.last_check_ms)}});
    if (l.instance.rfind("https://", 0) == 0) {
      arr.back()["tls_handshakes"] = l.tls_handshakes;
      arr.back()["tls_resumed"] = l.tls_resumed;
    }
  }
  return arr;
}

std::string DescribeRoute(const Route& r) {
  auto or_dash = [](const std::string& s, const char* dflt) { return s.empty() ? dflt : s; };
  std::ostringstream o;
  o << "name:      " << r.name << "\n"
    << "enabled:   " << (r.enabled ? "yes" : "no") << "\n"
    << "priority:  " << r.priority << "\n"
    << "path:      " << or_dash(r.path, "(any)") << "\n"
    << "methods:   " << (r.methods.empty() ? "(any)" : Join(r.methods, ",")) << "\n"
    << "headers:   " << (r.headers.empty() ? "-" : Join(r.headers, "  ")) << "\n"
    << "query:     " << (r.query.empty() ? "-" : Join(r.query, "  ")) << "\n"
    << "cookies:   " << (r.cookies.empty() ? "-" : Join(r.cookies, "  ")) << "\n"
    << "to:        " << r.to << "\n"
    << "percent:   " << FormatPercent(r.percent_bp) << "%\n"
    << "else:      " << or_dash(r.else_backend, "(default backend)") << "\n"
    << "sticky:    " << or_dash(r.sticky, "(random)") << "\n"
    << "salt:      " << or_dash(r.salt, ("(route name: " + r.name + ")").c_str()) << "\n";
  if (r.fallback) {
    o << "fallback:  to --else when --to fails" << (r.fallback_on_5xx ? " or answers 5xx" : "")
      << "\n";
  }
  if (!r.mirror.empty()) {
    o << "mirror:    " << r.mirror << " (" << FormatPercent(r.mirror_percent_bp) << "% of "
      << (r.mirror_writes ? "all methods" : "GET, HEAD, OPTIONS") << ", keep " << r.keep_diffs
      << " diffs)\n"
      << "compare:   status, body"
      << (r.compare_headers.empty() ? "" : ", headers " + Join(r.compare_headers, ",")) << "\n"
      << "ignore:    " << (r.ignore_fields.empty() ? "-" : Join(r.ignore_fields, "  ")) << "\n";
  }
  return o.str();
}

std::string FormatExplanation(const Json& j) {
  auto str = [](const Json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  std::ostringstream o;
  o << str(j["method"]) << " " << str(j["path"]) << "  ->  " << str(j["backend"]) << "\n";
  o << "  reason:   " << str(j["reason"]) << "\n";
  o << "  route:    " << (j["route"].is_null() ? "(none: default backend)" : str(j["route"]))
    << "\n";
  if (!j["bucket"].is_null()) o << "  bucket:   " << j["bucket"].dump() << " of 10000\n";
  o << "  ruleset:  " << j["ruleset"].dump() << "\n";
  const Json& tried = j["tried"];
  if (tried.empty()) {
    o << "  tried:    (no enabled routes)\n";
    return o.str();
  }
  o << "  tried:\n";
  std::vector<std::vector<std::string>> rows;
  int n = 0;
  for (const auto& t : tried) {
    rows.push_back({"    " + std::to_string(++n) + ".", str(t["route"]),
                    t["matched"].get<bool>() ? "matched" : "no: " + str(t["why"])});
  }
  std::string table = FormatTable({"", "", ""}, rows);
  o << table.substr(table.find('\n') + 1);  // drop the empty header line
  return o.str();
}

}  // namespace strangler
