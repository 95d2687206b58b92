// `strangler route add|set|rm|enable|disable|list|show`.
#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/cli_commands.h"
#include "rules/route_table.h"

namespace strangler {

namespace {

constexpr const char* kRouteFooter =
    R"(Matching (all options given must hold; none given matches every request):
  --path P      /api/orders    segment prefix: /api/orders, /api/orders/7, not /api/ordersX
                =/health       exact path
                /api/*/items   glob: * is one segment
                /static/**     glob: ** is the rest of the path
                ~^/v[0-9]+/    regular expression over the path (RE2)
  --method      GET,POST (comma-separated)
  --header, --query, --cookie SPEC (each repeatable):
                Name=value     equals          Name~regex   matches (RE2)
                Name           present         !Name        absent
                Header names are case-insensitive.
Splitting:
  --percent P   share of matched requests sent to --to, 0 to 100 with up to two
                decimals (default 100); the rest go to --else (default: the
                default backend).
  --sticky KEY  bucket requests by header:NAME, cookie:NAME, query:NAME or ip;
                without it, or when the request lacks the key, at random.
  --salt S      default: the route's name. Routes sharing a salt put a user in
                the same bucket, so a cohort moves together across routes.
Order: enabled routes are tried by --priority (higher first), then specificity
(exact, then prefix/glob by literal length, then regex, then no path), then name.
The first route whose conditions all hold wins.
With 'route set', only options given change. Clear with: --path '' (any path),
--method '' (any method), --else '' (default backend), --sticky '' (random),
--salt '' (route name), --no-headers, --no-query, --no-cookies. A --header,
--query or --cookie given replaces that whole list.
Migrating safely:
  --fallback    when --to fails before answering, an idempotent request goes to
                --else instead (--fallback-on-5xx: a 5xx answer counts too).
  --mirror B    a copy of matched GET/HEAD/OPTIONS requests (all methods with
                --mirror-writes) goes to B after the client is answered, marked
                X-Strangler-Mirror: 1; B's answer is compared with the client's
                (status, body: JSON as values, and --compare-header headers),
                leaving out --ignore-field paths. See 'strangler diff'.
  Gradual ramps with an error budget: see 'strangler ramp --help'.)";

struct RouteArgs {
  std::string name;
  bool json = false;
  // Raw option values; CLI::Option::count() says whether each was given.
  std::string to, else_backend, path, methods, percent, sticky, salt;
  std::vector<std::string> headers, query, cookies;
  bool no_headers = false, no_query = false, no_cookies = false;
  bool disabled = false, enabled = false;
  bool fallback = false, no_fallback = false, fallback_on_5xx = false;
  std::string mirror, mirror_percent;
  std::vector<std::string> compare_headers, ignore_fields;
  bool no_mirror = false, mirror_writes = false, no_mirror_writes = false;
  bool no_compare_headers = false, no_ignore_fields = false;
  int keep_diffs = kDefaultKeepDiffs;
  int priority = 0;
  std::map<std::string, CLI::Option*> opts;

  bool given(const std::string& o) const {
    auto it = opts.find(o);
    return it != opts.end() && it->second->count() > 0;
  }
  RouteFlags flags() const {
    RouteFlags f;
    if (given("--to")) f.to = to;
    if (given("--else")) f.else_backend = else_backend;
    if (given("--path")) f.path = path;
    if (given("--method")) f.methods = methods;
    if (given("--percent")) f.percent = percent;
    if (given("--sticky")) f.sticky = sticky;
    if (given("--salt")) f.salt = salt;
    if (given("--priority")) f.priority = priority;
    f.headers = headers;
    f.query = query;
    f.cookies = cookies;
    f.clear_headers = no_headers;
    f.clear_query = no_query;
    f.clear_cookies = no_cookies;
    if (disabled) f.enabled = false;
    if (enabled) f.enabled = true;
    if (fallback) f.fallback = true;
    if (no_fallback) f.fallback = false;
    if (fallback_on_5xx) f.fallback_on_5xx = true;
    if (given("--mirror")) f.mirror = mirror;
    if (no_mirror) f.mirror = "";
    if (given("--mirror-percent")) f.mirror_percent = mirror_percent;
    if (mirror_writes) f.mirror_writes = true;
    if (no_mirror_writes) f.mirror_writes = false;
    f.compare_headers = compare_headers;
    f.ignore_fields = ignore_fields;
    f.clear_compare_headers = no_compare_headers;
    f.clear_ignore_fields = no_ignore_fields;
    if (given("--keep-diffs")) f.keep_diffs = keep_diffs;
    return f;
  }
};

std::string NotFoundHint(const std::string& name) {
  return "list routes with 'strangler route list' or add it with 'strangler route add " + name +
         " --to BACKEND'";
}

Status Add(CliContext& ctx, const RouteArgs& a) {
  Route r;
  r.name = a.name;
  STRANGLER_RETURN_IF_ERROR(ApplyRouteFlags(a.flags(), &r));
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  Status s = (*store)->AddRoute(r, ctx.change());
  if (!s.ok()) {
    return WithHint(s, s.code() == Code::kConflict
                           ? "change it with 'strangler route set " + r.name + " ...'"
                           : "");
  }
  std::string split = SplitSummary(r);
  *ctx.out << "added route " << r.name << " -> " << r.to
           << (split.empty() ? "" : " (" + split + ")") << "\n";
  if (r.path.empty() && r.methods.empty() && r.headers.empty() && r.query.empty() &&
      r.cookies.empty()) {
    *ctx.err << "strangler: warning: route " << r.name
             << " has no match option (--path, --method, --header, --query, --cookie): it takes "
                "every request that no route before it takes\n";
  }
  return Status::Ok();
}

Status Set(CliContext& ctx, const RouteArgs& a) {
  if (a.enabled && a.disabled) {
    return Status::Usage("--enabled and --disabled contradict each other; give one of them");
  }
  RouteFlags f = a.flags();
  if (!f.to && !f.else_backend && !f.path && !f.methods && f.headers.empty() && f.query.empty() &&
      f.cookies.empty() && !f.clear_headers && !f.clear_query && !f.clear_cookies && !f.percent &&
      !f.sticky && !f.salt && !f.priority && !f.enabled && !f.fallback && !f.fallback_on_5xx &&
      !f.mirror && !f.mirror_percent && !f.mirror_writes && f.compare_headers.empty() &&
      f.ignore_fields.empty() && !f.clear_compare_headers && !f.clear_ignore_fields &&
      !f.keep_diffs) {
    return Status::Usage("nothing to change for route '" + a.name +
                         "'; give at least one option (see 'strangler route set --help')");
  }
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  auto cur = (*store)->GetRoute(a.name);
  if (!cur.ok()) return WithHint(cur.status(), NotFoundHint(a.name));
  Route r = cur.value();
  STRANGLER_RETURN_IF_ERROR(ApplyRouteFlags(f, &r));
  std::string change = ChangeSummary(ToJson(cur.value()), ToJson(r));
  if (change == "no change") {  // idempotent: nothing written, nothing recorded
    *ctx.out << "route " << r.name << " unchanged\n";
    return Status::Ok();
  }
  STRANGLER_RETURN_IF_ERROR((*store)->SetRoute(r, ctx.change()));
  *ctx.out << "updated route " << r.name << ": " << change << "\n";
  return Status::Ok();
}

Status Remove(CliContext& ctx, const RouteArgs& a) {
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  Status s = (*store)->RemoveRoute(a.name, ctx.change());
  if (!s.ok()) return WithHint(s, s.code() == Code::kNotFound ? NotFoundHint(a.name) : "");
  *ctx.out << "removed route " << a.name << "\n";
  return Status::Ok();
}

Status SetEnabled(CliContext& ctx, const RouteArgs& a, bool enabled) {
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  Status s = (*store)->SetRouteEnabled(a.name, enabled, ctx.change());
  if (!s.ok()) return WithHint(s, s.code() == Code::kNotFound ? NotFoundHint(a.name) : "");
  *ctx.out << (enabled ? "enabled" : "disabled") << " route " << a.name << "\n";
  return Status::Ok();
}
Status Enable(CliContext& ctx, const RouteArgs& a) { return SetEnabled(ctx, a, true); }
Status Disable(CliContext& ctx, const RouteArgs& a) { return SetEnabled(ctx, a, false); }

// Enabled routes in evaluation order, then disabled ones by name. Falls back
// to the store's order (by name) when the rules do not compile.
std::vector<Route> EvaluationOrder(Store& store, std::vector<Route> by_name) {
  auto rules = store.Load();
  if (!rules.ok()) return by_name;
  auto table = RouteTable::Compile(rules.value());
  if (!table.ok()) return by_name;
  std::map<std::string, size_t> rank;
  for (const auto& r : table.value()->routes()) rank.emplace(r.name, rank.size());
  std::stable_sort(by_name.begin(), by_name.end(), [&](const Route& x, const Route& y) {
    auto rx = x.enabled && rank.count(x.name) ? rank[x.name] : rank.size();
    auto ry = y.enabled && rank.count(y.name) ? rank[y.name] : rank.size();
    return rx < ry;
  });
  return by_name;
}

Status List(CliContext& ctx, const RouteArgs& a) {
  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  auto list = (*store)->ListRoutes();
  if (!list.ok()) return list.status();
  if (a.json) {
    Json arr = Json::array();
    for (const auto& r : list.value()) arr.push_back(ToJson(r));
    *ctx.out << arr.dump(2) << "\n";
  } else if (list->empty()) {
    *ctx.out << "no routes yet: all traffic goes to the default backend; add one with "
                "'strangler route add NAME --to BACKEND'\n";
  } else {
    *ctx.out << RoutesTable(EvaluationOrder(**store, std::move(list).value()));
  }
  return Status::Ok();
}

Status Show(CliContext& ctx, const RouteArgs& a) {
  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  auto r = (*store)->GetRoute(a.name);
  if (!r.ok()) return WithHint(r.status(), NotFoundHint(a.name));
  *ctx.out << (a.json ? ToJson(r.value()).dump(2) + "\n" : DescribeRoute(r.value()));
  return Status::Ok();
}

using Handler = Status (*)(CliContext&, const RouteArgs&);

void OnRun(CLI::App* cmd, CliContext& ctx, std::shared_ptr<RouteArgs> args, Handler h) {
  cmd->callback([&ctx, args, h] { ctx.action = [&ctx, args, h] { return h(ctx, *args); }; });
}

// The options shared by `route add` and `route set`.
void AddRouteOptions(CLI::App* cmd, RouteArgs* a, bool is_set) {
  auto& o = a->opts;
  o["--to"] =
      cmd->add_option("--to", a->to, "backend that matched traffic goes to")->type_name("BACKEND");
  if (!is_set) o["--to"]->required();
  o["--else"] = cmd->add_option("--else", a->else_backend,
                                "backend for the rest of a split (default: the default backend)")
                    ->type_name("BACKEND");
  o["--path"] = cmd->add_option("--path", a->path,
                                "path pattern: /prefix, =/exact, /a/*/b, "
                                "/static/**, ~regex")
                    ->type_name("P");
  o["--method"] = cmd->add_option("--method", a->methods, "methods, comma-separated: GET,POST")
                      ->type_name("M[,M...]");
  cmd->add_option("--header", a->headers, "header condition (repeatable)")
      ->type_name("SPEC")
      ->allow_extra_args(false);
  cmd->add_option("--query", a->query, "query parameter condition (repeatable)")
      ->type_name("SPEC")
      ->allow_extra_args(false);
  cmd->add_option("--cookie", a->cookies, "cookie condition (repeatable)")
      ->type_name("SPEC")
      ->allow_extra_args(false);
  o["--percent"] = cmd->add_option("--percent", a->percent,
                                   "share sent to --to, 0-100, up to two decimals (default 100)")
                       ->type_name("P");
  o["--sticky"] =
      cmd->add_option("--sticky", a->sticky, "bucket by header:NAME, cookie:NAME, query:NAME or ip")
          ->type_name("KEY");
  o["--salt"] = cmd->add_option("--salt", a->salt, "bucketing salt (default: the route name)")
                    ->type_name("S");
  o["--priority"] = cmd->add_option("--priority", a->priority, "higher is tried first (default 0)")
                        ->type_name("N");
  cmd->add_flag("--disabled", a->disabled, "store the route disabled");
  cmd->add_flag("--fallback", a->fallback,
                "when --to fails before answering (refused, reset, timeout), send an idempotent "
                "request without a body (GET, HEAD, OPTIONS) to --else instead");
  cmd->add_flag("--fallback-on-5xx", a->fallback_on_5xx,
                "also fall back when --to answers 5xx (implies --fallback)");
  o["--mirror"] = cmd->add_option("--mirror", a->mirror,
                                  "send a copy of matched requests to BACKEND too, off the "
                                  "request path, and compare its answer with the client's")
                      ->type_name("BACKEND");
  o["--mirror-percent"] =
      cmd->add_option("--mirror-percent", a->mirror_percent,
                      "share of matched requests mirrored, 0-100 (default 100)")
          ->type_name("P");
  cmd->add_flag("--mirror-writes", a->mirror_writes,
                "mirror every method, not only GET, HEAD and OPTIONS (the mirror backend must "
                "not write where the primary does)");
  cmd->add_option("--compare-header", a->compare_headers,
                  "also compare this response header (repeatable)")
      ->type_name("NAME")
      ->allow_extra_args(false);
  cmd->add_option("--ignore-field", a->ignore_fields,
                  "leave this JSON field out of the comparison: a.b, items[].updated_at "
                  "(repeatable)")
      ->type_name("PATH")
      ->allow_extra_args(false);
  o["--keep-diffs"] = cmd->add_option("--keep-diffs", a->keep_diffs,
                                      "mismatches kept in the store for 'strangler diff' "
                                      "(default 100)")
                          ->type_name("N");
  if (is_set) {
    cmd->add_flag("--no-mirror", a->no_mirror, "stop mirroring (clears every mirror option)");
    cmd->add_flag("--no-mirror-writes", a->no_mirror_writes, "mirror GET, HEAD and OPTIONS only");
    cmd->add_flag("--no-compare-headers", a->no_compare_headers, "clear --compare-header");
    cmd->add_flag("--no-ignore-fields", a->no_ignore_fields, "clear --ignore-field");
    cmd->add_flag("--enabled", a->enabled, "enable the route");
    cmd->add_flag("--no-fallback", a->no_fallback, "turn fallback (and fallback on 5xx) off");
    cmd->add_flag("--no-headers", a->no_headers, "clear the header conditions");
    cmd->add_flag("--no-query", a->no_query, "clear the query conditions");
    cmd->add_flag("--no-cookies", a->no_cookies, "clear the cookie conditions");
  }
}

}  // namespace

void RegisterRouteCommands(CLI::App& app, CliContext& ctx) {
  CLI::App* group = app.add_subcommand("route", "Add, change, enable, list and remove routes");
  group->require_subcommand(1);
  group->footer(kRouteFooter);
  auto name_opt = [](CLI::App* cmd, RouteArgs* a) {
    cmd->add_option("NAME", a->name, "route name, [a-z0-9][a-z0-9_-]{0,63}")->required();
  };
  struct Simple {
    const char* name;
    const char* help;
    Handler handler;
  };
  {
    auto a = std::make_shared<RouteArgs>();
    CLI::App* cmd = group->add_subcommand("add", "Add a route: which requests go to which backend");
    name_opt(cmd, a.get());
    AddRouteOptions(cmd, a.get(), false);
    OnRun(cmd, ctx, a, Add);
  }
  {
    auto a = std::make_shared<RouteArgs>();
    CLI::App* cmd = group->add_subcommand(
        "set", "Change a route: only the options given change (see below to clear one)");
    name_opt(cmd, a.get());
    AddRouteOptions(cmd, a.get(), true);
    OnRun(cmd, ctx, a, Set);
  }
  const Simple simple[] = {
      {"rm", "Remove a route", Remove},
      {"enable", "Enable a route", Enable},
      {"disable", "Disable a route (kept in the store, not tried)", Disable},
  };
  for (const auto& s : simple) {
    auto a = std::make_shared<RouteArgs>();
    CLI::App* cmd = group->add_subcommand(s.name, s.help);
    name_opt(cmd, a.get());
    OnRun(cmd, ctx, a, s.handler);
  }
  {
    auto a = std::make_shared<RouteArgs>();
    CLI::App* cmd = group->add_subcommand(
        "list", "List routes, enabled ones in evaluation order, then disabled ones");
    cmd->add_flag("--json", a->json, "print a JSON array of route objects (as in rule files)");
    OnRun(cmd, ctx, a, List);
  }
  {
    auto a = std::make_shared<RouteArgs>();
    CLI::App* cmd = group->add_subcommand("show", "Show one route");
    name_opt(cmd, a.get());
    cmd->add_flag("--json", a->json, "print the route object (as in rule files)");
    OnRun(cmd, ctx, a, Show);
  }
}

}  // namespace strangler
