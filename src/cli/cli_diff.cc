// `strangler diff [ROUTE]`: what mirroring found (route --mirror): per route,
// requests compared and parity, then the latest mismatches field by field.
#include <cmath>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/cli_commands.h"
#include "safety/compare.h"
#include "store/diff_report.h"

namespace strangler {

namespace {

constexpr int kDefaultDiffLimit = 10;
constexpr size_t kMaxValueBytes = 120;  // a value longer than this is cut with "…"

constexpr const char* kDiffFooter =
    R"(Routes shown: those with a --mirror, and any that have results (a mirror
removed since still shows what it found). Per route:
  COMPARED  copies answered and compared
  EQUAL     answers that matched
  PARITY    EQUAL / COMPARED
  DROPPED   copies not sent: queue full, body over 1 MiB, no answer to copy,
            serve stopping
  FAILED    copies the mirror refused, timed out or broke
Then the latest mismatches and failed copies over all routes shown, newest first
(at most --limit), each with one line per difference:
  $.items[0].price: legacy 10 -> new 12      a JSON field (primary, then mirror)
  status: 200 -> 500                          the status code
  header x-api-version: legacy "1" -> new (missing)
  body line 3: legacy "a" -> new "b"          a text body, line by line
Serve writes results to the store about once a second and keeps the newest
--keep-diffs (default 100) mismatches per route. Compare options are route
options: --compare-header, --ignore-field (see 'strangler route --help').
--json: {"routes": [{route, mirror, compared, equal, parity (0..1 or null),
dropped, failed, since, last_at}], "mismatches": [{id, route, ts, request_id,
method, target, primary_backend, mirror_backend, result}]}; result is
{"equal", "kind", "diffs": [{where, primary, mirror}], "more"} (a missing side
is left out) or {"error": "..."} for a failed copy.)";

struct DiffArgs {
  std::string route;
  int limit = kDefaultDiffLimit;
  bool json = false;
  bool reset = false;
};

std::string ParityText(const MirrorTally& t) {
  if (t.compared == 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%",
                100.0 * static_cast<double>(t.equal) / static_cast<double>(t.compared));
  return buf;
}

// A value of a diff, short: JSON text (strings quoted), cut at a UTF-8
// character boundary.
std::string ValueText(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (s.size() <= kMaxValueBytes) return s;
  size_t cut = kMaxValueBytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut) + "…";
}

Status Diff(CliContext& ctx, const DiffArgs& a) {
  if (a.reset) {
    if (a.route.empty()) return Status::Usage("--reset needs the ROUTE whose counts to forget");
    auto store = ctx.OpenStore(CliContext::Access::kRead);
    if (!store.ok()) return store.status();
    Status st = (*store)->ResetDiffs(a.route, ctx.change());
    if (!st.ok()) return st;
    *ctx.out << "reset mirror results of route " << a.route
             << ": parity counts start again from now (see 'strangler history " << a.route
             << "')\n";
    return Status::Ok();
  }
  if (a.limit < 1) return Status::Usage("--limit must be at least 1");
  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  auto report = LoadDiffReport(**store, a.route, a.limit);
  if (!report.ok()) return report.status();
  const std::map<std::string, RouteDiff>& shown = report->routes;
  const std::vector<DiffRecord>* mismatches = &report->mismatches;

  if (a.json) {
    *ctx.out << DiffReportJson(*report).dump(2, ' ', false, Json::error_handler_t::replace)
             << "\n";
    return Status::Ok();
  }

  if (shown.empty()) {
    *ctx.out << "no route has a mirror: add one with 'strangler route set NAME --mirror "
                "BACKEND'\n";
    return Status::Ok();
  }
  if (!a.route.empty() && shown.begin()->second.mirror.empty() && !shown.begin()->second.stats) {
    *ctx.out << "route " << a.route << " has no mirror: add one with 'strangler route set "
             << a.route << " --mirror BACKEND'\n";
    return Status::Ok();
  }
  std::vector<std::vector<std::string>> rows;
  for (const auto& [name, d] : shown) {
    MirrorTally t = d.stats ? d.stats->tally : MirrorTally{};
    rows.push_back({name, d.mirror.empty() ? "-" : d.mirror, std::to_string(t.compared),
                    std::to_string(t.equal), ParityText(t), std::to_string(t.dropped),
                    std::to_string(t.failed), d.stats ? d.stats->last_at : "-"});
  }
  *ctx.out << FormatTable(
      {"ROUTE", "MIRROR", "COMPARED", "EQUAL", "PARITY", "DROPPED", "FAILED", "LAST"}, rows);
  if (mismatches->empty()) {
    *ctx.out << "\nno mismatches stored\n";
    return Status::Ok();
  }
  *ctx.out << "\nlatest mismatches, newest first (at most " << a.limit << "):\n";
  for (const DiffRecord& m : *mismatches) *ctx.out << FormatMismatch(m);
  return Status::Ok();
}

}  // namespace

std::string FormatMismatch(const DiffRecord& d) {
  std::string out = d.ts + "  " + d.route + "  " + d.method + " " + d.target + "  request " +
                    (d.request_id.empty() ? "-" : d.request_id) + "\n";
  if (d.result.is_object() && d.result.contains("error")) {
    const Json& e = d.result["error"];
    return out + "  error: " + (e.is_string() ? e.get<std::string>() : ValueText(e)) + "\n";
  }
  auto c = ComparisonFromJson(d.result);
  if (!c.ok()) return out + "  (unreadable comparison: " + c.status().message() + ")\n";
  auto side = [](const std::string& backend, const Json& v, bool missing) {
    return (backend.empty() ? "" : backend + " ") + (missing ? "(missing)" : ValueText(v));
  };
  for (const FieldDiff& f : c->diffs) {
    if (f.where == "status") {
      out += "  status: " + (f.primary_missing ? "(missing)" : ValueText(f.primary)) + " -> " +
             (f.mirror_missing ? "(missing)" : ValueText(f.mirror)) + "\n";
      continue;
    }
    out += "  " + f.where + ": " + side(d.primary_backend, f.primary, f.primary_missing) + " -> " +
           side(d.mirror_backend, f.mirror, f.mirror_missing) + "\n";
  }
  if (c->more > 0) out += "  ... and " + std::to_string(c->more) + " more differences\n";
  if (c->diffs.empty() && c->more == 0) out += "  (no differences listed)\n";
  return out;
}

void RegisterDiffCommand(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<DiffArgs>();
  CLI::App* cmd = app.add_subcommand(
      "diff",
      "Show what mirroring found: per route, copies compared and parity, then the latest "
      "mismatches field by field");
  cmd->add_option("ROUTE", a->route, "one route (default: every route with a mirror or results)");
  cmd->add_option("--limit", a->limit, "mismatches shown, newest first, over all routes shown")
      ->capture_default_str()
      ->type_name("N");
  cmd->add_flag("--json", a->json, "one JSON object {routes, mismatches} (see below)");
  cmd->add_flag("--reset", a->reset,
                "forget ROUTE's comparisons and kept mismatches (after fixing an ignore rule, "
                "say); recorded in the history");
  cmd->footer(kDiffFooter);
  cmd->callback([&ctx, a] { ctx.action = [&ctx, a] { return Diff(ctx, *a); }; });
}

}  // namespace strangler
