// `strangler status`: each route's last minute as a running serve sees it,
// from GET /api/v1/live of its admin listener (PRODUCT.md "Operating a
// running router"). Without --admin it reads the URL the serve wrote next
// to the store (DB.admin).
#include <httplib.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/cli_commands.h"
#include "control/serve.h"

namespace strangler {
namespace {

constexpr const char* kStatusFooter =
    R"(Columns, per route, over the last 60 s (up to 65 s: 5 s slots):
  PERCENT   the share of the route's requests its rules send to --to
  SHARE     the share that went there (fallbacks count for --to)
  REQUESTS  requests the route matched
  TO, ELSE  each side's backend: 5XX rate (a fallback counts as a --to 5xx),
            P50 and P99 latency (upper bound of a histogram bucket, ~19% wide)
  PARITY    mirrored copies whose answer equalled the client's (- : none)
  RAMP      the route's ramp: its state, and its target while it runs
The token is a 'read' or 'write' token of serve's --admin-token-file (made by
'strangler token add'); none is needed when serve runs with --admin-public-read.
--json prints GET /api/v1/live's document as is.)";

struct StatusArgs {
  std::string admin;
  std::string token;
  bool json = false;
};

// "http://h:p" as given, "h:p" -> "http://h:p".
std::string AdminBase(std::string url) {
  while (!url.empty() && url.back() == '/') url.pop_back();
  if (url.find("://") == std::string::npos) url = "http://" + url;
  return url;
}

Result<std::string> FindAdmin(const CliContext& ctx, const StatusArgs& a) {
  if (!a.admin.empty()) return AdminBase(a.admin);
  const std::string file = AdminAddressFile(ctx.db_path);
  std::ifstream in(file);
  std::string url;
  if (!in || !std::getline(in, url) || url.empty()) {
    return Status::NotFound("no running serve with --admin found for store " + ctx.db_path + " (" +
                            file +
                            " is missing): start serve with --admin HOST:PORT, or "
                            "give 'strangler status --admin URL'");
  }
  return AdminBase(url);
}

std::string Pct(const Json& v) {
  if (!v.is_number()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f%%", v.get<double>());
  return buf;
}

std::string Ms(const Json& v) {
  if (!v.is_number()) return "-";
  double ms = v.get<double>();
  char buf[32];
  if (ms < 10) {
    std::snprintf(buf, sizeof(buf), "%.2fms", ms);
  } else if (ms < 1000) {
    std::snprintf(buf, sizeof(buf), "%.0fms", ms);
  } else {
    std::snprintf(buf, sizeof(buf), "%.1fs", ms / 1000);
  }
  return buf;
}

std::string Str(const Json& v) {
  if (v.is_string()) return v.get<std::string>();
  return v.is_null() ? "-" : v.dump();
}

std::string RampText(const Json& ramp) {
  if (!ramp.is_object()) return "-";
  std::string s = Str(ramp["state"]);
  if (ramp["state"] == "running" || ramp["state"] == "paused") {
    s += " -> " + Str(ramp["target"]) + "%";
  }
  return s;
}

std::string LiveTable(const Json& live) {
  std::vector<std::vector<std::string>> rows;
  for (const Json& r : live["routes"]) {
    const Json& to = r["sides"]["to"];
    const Json& other = r["sides"]["else"];
    const Json& mirror = r["mirror"];
    rows.push_back({Str(r["route"]), Str(r["percent"]) + "%", Pct(r["observed_share"]),
                    Str(r["requests"]), Str(to["backend"]), Pct(to["error_rate"]), Ms(to["p50_ms"]),
                    Ms(to["p99_ms"]), Str(other["backend"]), Pct(other["error_rate"]),
                    Ms(other["p50_ms"]), Ms(other["p99_ms"]),
                    mirror.is_object() ? Pct(mirror["parity"]) : "-", RampText(r["ramp"])});
  }
  if (rows.empty()) return "no routes: add one with 'strangler route add NAME --to BACKEND'\n";
  return FormatTable({"ROUTE", "PERCENT", "SHARE", "REQUESTS", "TO", "5XX", "P50", "P99", "ELSE",
                      "5XX", "P50", "P99", "PARITY", "RAMP"},
                     rows);
}

Status ShowStatus(CliContext& ctx, const StatusArgs& a) {
  auto base = FindAdmin(ctx, a);
  if (!base.ok()) return base.status();
  std::string token = a.token;
  if (token.empty()) {
    if (const char* env = std::getenv("STRANGLER_TOKEN")) token = env;
  }
  httplib::Client client(*base);
  if (!client.is_valid())
    return Status::Usage("bad --admin '" + *base + "': give http://HOST:PORT");
  client.set_connection_timeout(5, 0);
  client.set_read_timeout(10, 0);
  httplib::Headers headers;
  if (!token.empty()) headers.emplace("Authorization", "Bearer " + token);
  auto res = client.Get("/api/v1/live", headers);
  if (!res) {
    return Status::Io("cannot reach the admin listener at " + *base + " (" +
                      httplib::to_string(res.error()) + "): is serve running with --admin?");
  }
  Json body = Json::parse(res->body, nullptr, false);
  if (res->status != 200) {
    std::string why = body.is_object() && body.contains("error")
                          ? Str(body["error"])
                          : "HTTP " + std::to_string(res->status);
    if (res->status == 401) {
      why += "; give a token with --token TOKEN or $STRANGLER_TOKEN";
    }
    return Status::Io(*base + "/api/v1/live: " + why);
  }
  if (!body.is_object() || !body.contains("routes")) {
    return Status::Io(*base + "/api/v1/live did not answer with the live document");
  }
  if (a.json) {
    *ctx.out << body.dump(2) << "\n";
    return Status::Ok();
  }
  *ctx.out << "last " << Str(body["window_s"]) << " s at " << *base << ", ruleset "
           << Str(body["ruleset"]) << ":\n"
           << LiveTable(body);
  return Status::Ok();
}

}  // namespace

void RegisterStatusCommand(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<StatusArgs>();
  CLI::App* cmd = app.add_subcommand(
      "status",
      "Show each route's last minute on a running serve: requests, the share sent to --to "
      "against its percent, both sides' 5xx rates and latencies, mirror parity, ramp");
  cmd->add_option("--admin", a->admin,
                  "the serve's admin listener, http://HOST:PORT (default: the URL the serve "
                  "on this store wrote to DB.admin)")
      ->type_name("URL");
  cmd->add_option("--token", a->token, "a read token of the control API (default $STRANGLER_TOKEN)")
      ->type_name("TOKEN");
  cmd->add_flag("--json", a->json, "GET /api/v1/live's JSON document");
  cmd->footer(kStatusFooter);
  cmd->callback([&ctx, a] { ctx.action = [&ctx, a] { return ShowStatus(ctx, *a); }; });
}

}  // namespace strangler
