// `strangler explain` and `strangler history`: read-only views of what the
// rules decide and how they came to be.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "cli/cli.h"
#include "cli/cli_commands.h"
#include "rules/route_table.h"

namespace strangler {

namespace {

constexpr int kDefaultHistoryLimit = 20;

struct ExplainArgs {
  std::vector<std::string> positionals;
  std::vector<std::string> headers;
  std::string ip = "127.0.0.1";
  bool json = false;
};

struct HistoryArgs {
  std::string name;
  int limit = kDefaultHistoryLimit;
  int64_t ruleset = -1;  // -1: any
  bool json = false;
};

Status Explain(CliContext& ctx, const ExplainArgs& a) {
  ExplainQuery q;
  auto target = ParseExplainTarget(a.positionals);
  if (!target.ok()) return target.status();
  q.target = std::move(target).value();
  for (const auto& h : a.headers) {
    auto parsed = ParseHeaderArg(h);
    if (!parsed.ok()) return parsed.status();
    q.headers.push_back(std::move(parsed).value());
  }
  if (a.ip.empty()) return Status::Usage("--ip needs an address, e.g. --ip 10.0.0.7");
  q.ip = a.ip;

  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  auto outcome = ExplainStored(**store, q);
  if (!outcome.ok()) return outcome.status();
  if (a.json) {
    *ctx.out << outcome->json.dump() << "\n";
    return Status::Ok();
  }
  *ctx.out << FormatExplanation(outcome->json);
  if (!outcome->split.empty()) *ctx.out << "  split:    " << outcome->split << "\n";
  return Status::Ok();
}

Status History(CliContext& ctx, const HistoryArgs& a) {
  if (a.limit < 1) return Status::Usage("--limit must be at least 1");
  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  if (a.ruleset < -1) return Status::Usage("--ruleset must be 0 or more");
  // --ruleset: the changes that produced (or, ramp rows, ran under) the
  // version a decision-log line names.
  auto rows = (*store)->History(a.name, a.ruleset >= 0 ? -1 : a.limit);
  if (!rows.ok()) return rows.status();
  if (a.ruleset >= 0) {
    std::vector<ChangeRow> kept;
    for (ChangeRow& r : *rows) {
      if (r.ruleset == a.ruleset && static_cast<int>(kept.size()) < a.limit) kept.push_back(std::move(r));
    }
    *rows = std::move(kept);
  }
  if (a.json) {
    *ctx.out << ChangeRowsJson(rows.value()).dump(2) << "\n";
  } else if (rows->empty()) {
    *ctx.out << (a.name.empty() ? "no changes recorded yet\n"
                                : "no changes recorded for '" + a.name + "'\n");
  } else {
    *ctx.out << HistoryTable(rows.value());
  }
  return Status::Ok();
}

}  // namespace

void RegisterExplainCommands(CLI::App& app, CliContext& ctx) {
  {
    auto a = std::make_shared<ExplainArgs>();
    CLI::App* cmd = app.add_subcommand(
        "explain",
        "Show where the current rules send a request, and why each route before the winner did "
        "not match");
    cmd->add_option("REQUEST", a->positionals,
                    "[METHOD] PATH[?QUERY]; METHOD defaults to GET (quote a query for the shell)")
        ->required();
    cmd->add_option("-H,--header", a->headers, "request header 'Name: value' (repeatable)")
        ->type_name("'NAME: VALUE'")
        ->allow_extra_args(false);
    cmd->add_option("--ip", a->ip, "client address (for --sticky ip)")->capture_default_str();
    cmd->add_flag("--json", a->json,
                  "one JSON object: method, path, route, backend, reason, bucket, ruleset, tried");
    cmd->footer(
        "Examples:\n"
        "  strangler explain /api/orders/7\n"
        "  strangler explain POST '/api/orders?v=2' -H 'X-User-Id: 42' -H 'Cookie: beta=1'\n"
        "Cookies are read from a Cookie header. A split without a sticky key (or whose key\n"
        "the request lacks) draws its bucket at random, so repeated runs may differ.");
    cmd->callback([&ctx, a] { ctx.action = [&ctx, a] { return Explain(ctx, *a); }; });
  }
  {
    auto a = std::make_shared<HistoryArgs>();
    CLI::App* cmd = app.add_subcommand(
        "history", "Show the change history, newest first (all objects, or one by NAME)");
    cmd->add_option("NAME", a->name, "backend or route name");
    cmd->add_option("--limit", a->limit, "how many changes to show")->capture_default_str();
    cmd->add_option("--ruleset", a->ruleset,
                    "only the changes that made this ruleset version (the decision log's "
                    "'ruleset' field)")
        ->type_name("N");
    cmd->add_flag("--json", a->json,
                  "JSON array of {id, ts, actor, action, object, before, after, reason, ruleset}");
    cmd->callback([&ctx, a] { ctx.action = [&ctx, a] { return History(ctx, *a); }; });
  }
}

}  // namespace strangler
