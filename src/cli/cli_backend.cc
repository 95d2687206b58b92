// `strangler backend add|set|list|show|rm`.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/time.h"
#include "cli/cli.h"
#include "cli/cli_commands.h"

namespace strangler {

namespace {

constexpr const char* kBackendFooter = R"(Backends:
  NAME matches [a-z0-9][a-z0-9_-]{0,63}. URL is http[s]://host:port[/base-path];
  several URLs are instances of one backend, used in turn. Exactly one backend
  is the default (the monolith): unmatched traffic goes there. The first
  backend added is the default until another is marked with --default.
  A backend that a route points at (--to or --else) cannot be removed.
  Protecting a backend: --max-conns caps each instance's upstream connections;
  a request that finds every instance at its cap waits in a FIFO queue (one per
  instance; at most --max-queue requests for the backend, each at most
  --queue-timeout) and is answered 503 when its wait
  ends or the queue is full. A pooled connection carries another request only
  once it has been quiet --reuse-quiet-ms since its answer (default 1 ms).
  Requests go to a backend's instances in turn, skipping ejected ones: after
  --eject-after consecutive failures (refused, reset or timed out) an instance
  is out for --eject-for, doubling while it keeps failing (at most 5m). When
  every instance is out, requests go to all of them in turn again (panic mode,
  logged as "instances":"all_down"); a --fallback route goes to --else at once.
  A connect that fails is tried once on another instance, whatever the method.
  With --health-path, each instance is also checked off the request path:
  3 failing checks take it out, 2 passing ones bring it back (also from an
  ejection).
  https:// instances speak TLS (1.2 or 1.3; SNI from the host; sessions
  resumed): the certificate must match the host and be signed by one of the
  system's CAs, or of --ca FILE's; --tls-insecure checks none. A certificate
  refused is a 502 saying why, and the instance's last failure.
  'backend show' prints what running serves report of each instance: in
  rotation or not and why (last failure, last check), connections open, idle
  and in use, requests queued; 'backend list' how many are in rotation.)";

// How recent a serve's report of instance load must be to be shown; serve
// writes one about once a second.
constexpr int64_t kLoadFreshMs = 10000;

struct BackendArgs {
  std::string name;
  std::vector<std::string> urls;
  bool make_default = false;
  int timeout_ms = 0;
  int connect_timeout_ms = 0;
  int max_conns = 0;
  int max_queue = 0;
  std::string queue_timeout;
  int reuse_quiet_ms = 0;
  int eject_after = 0;
  std::string eject_for;
  std::string health_path;
  std::string health_every;
  std::string ca_file;
  bool tls_insecure = false;
  bool tls_verify = false;
  bool json = false;
  // CLI::Option::count() says whether each was given.
  std::map<std::string, CLI::Option*> opts;

  bool given(const std::string& o) const {
    auto it = opts.find(o);
    return it != opts.end() && it->second->count() > 0;
  }
  BackendFlags flags() const {
    BackendFlags f;
    f.urls = urls;
    f.make_default = make_default;
    if (given("--timeout-ms")) f.timeout_ms = timeout_ms;
    if (given("--connect-timeout-ms")) f.connect_timeout_ms = connect_timeout_ms;
    if (given("--max-conns")) f.max_conns = max_conns;
    if (given("--max-queue")) f.max_queue = max_queue;
    if (given("--queue-timeout")) f.queue_timeout = queue_timeout;
    if (given("--reuse-quiet-ms")) f.reuse_quiet_ms = reuse_quiet_ms;
    if (given("--eject-after")) f.eject_after = eject_after;
    if (given("--eject-for")) f.eject_for = eject_for;
    if (given("--health-path")) f.health_path = health_path;
    if (given("--health-every")) f.health_every = health_every;
    if (given("--ca")) f.ca_file = ca_file;
    if (tls_insecure) f.tls_insecure = true;
    if (tls_verify) f.tls_insecure = false;
    return f;
  }
};

std::string AddHint(const std::string& name) {
  return "add it with 'strangler backend add " + name + " URL'";
}

std::string Summary(const Backend& b) {
  std::string s = b.name + " ";
  for (size_t i = 0; i < b.urls.size(); ++i) s += (i ? "," : "") + b.urls[i];
  if (b.is_default) s += " (default)";
  return s;
}

Status Add(CliContext& ctx, const BackendArgs& a) {
  Backend b;
  b.name = a.name;
  STRANGLER_RETURN_IF_ERROR(ApplyBackendFlags(a.flags(), &b));
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  Status s = (*store)->AddBackend(b, ctx.change());
  if (!s.ok()) {
    return WithHint(s, s.code() == Code::kConflict
                           ? "change it with 'strangler backend set " + b.name + " ...'"
                           : "");
  }
  auto stored = (*store)->GetBackend(b.name);
  *ctx.out << "added backend " << Summary(stored.ok() ? stored.value() : b) << "\n";
  return Status::Ok();
}

Status Set(CliContext& ctx, const BackendArgs& a) {
  BackendFlags f = a.flags();
  if (f.changes_nothing()) {
    return Status::Usage("nothing to change for backend '" + a.name +
                         "'; give URLs, --default, --timeout-ms N, --connect-timeout-ms N, "
                         "--max-conns N, --max-queue N, --queue-timeout D, --reuse-quiet-ms N, "
                         "--eject-after N, --eject-for D, --health-path P, "
                         "--health-every D, --ca FILE, --tls-insecure or --tls-verify");
  }
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  auto cur = (*store)->GetBackend(a.name);
  if (!cur.ok()) return WithHint(cur.status(), AddHint(a.name));
  Backend b = cur.value();
  STRANGLER_RETURN_IF_ERROR(ApplyBackendFlags(f, &b));
  std::string change = ChangeSummary(ToJson(cur.value()), ToJson(b));
  if (change == "no change") {  // idempotent: nothing written, nothing recorded
    *ctx.out << "backend " << b.name << " unchanged\n";
    return Status::Ok();
  }
  STRANGLER_RETURN_IF_ERROR((*store)->SetBackend(b, ctx.change()));
  *ctx.out << "updated backend " << b.name << ": " << change << "\n";
  return Status::Ok();
}

Status List(CliContext& ctx, const BackendArgs& a) {
  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  auto list = (*store)->ListBackends();
  if (!list.ok()) return list.status();
  if (a.json) {
    Json arr = Json::array();
    for (const auto& b : list.value()) arr.push_back(ToJson(b));
    *ctx.out << arr.dump(2) << "\n";
  } else if (list->empty()) {
    *ctx.out << "no backends yet; add one with 'strangler backend add NAME URL'\n";
  } else {
    auto load = (*store)->ReadInstanceLoad("", NowUnixMs() - kLoadFreshMs);
    if (!load.ok()) return load.status();
    *ctx.out << BackendTable(list.value(), load.value());
  }
  return Status::Ok();
}

Status Show(CliContext& ctx, const BackendArgs& a) {
  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  auto b = (*store)->GetBackend(a.name);
  if (!b.ok()) return WithHint(b.status(), "list them with 'strangler backend list'");
  auto load = (*store)->ReadInstanceLoad(a.name, NowUnixMs() - kLoadFreshMs);
  if (!load.ok()) return load.status();
  if (a.json) {
    Json j = ToJson(b.value());
    j["load"] = LoadJson(load.value());
    *ctx.out << j.dump(2) << "\n";
  } else {
    *ctx.out << DescribeBackend(b.value(), load.value());
  }
  return Status::Ok();
}

Status Remove(CliContext& ctx, const BackendArgs& a) {
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  Status s = (*store)->RemoveBackend(a.name, ctx.change());
  if (!s.ok()) {
    std::string hint;
    if (s.code() == Code::kNotFound) hint = "list them with 'strangler backend list'";
    if (s.code() == Code::kConflict) {
      hint =
          "point those routes elsewhere or remove them first, or mark another backend "
          "--default ('strangler route list')";
    }
    return WithHint(s, hint);
  }
  *ctx.out << "removed backend " << a.name << "\n";
  return Status::Ok();
}

using Handler = Status (*)(CliContext&, const BackendArgs&);

void OnRun(CLI::App* cmd, CliContext& ctx, std::shared_ptr<BackendArgs> args, Handler h) {
  cmd->callback([&ctx, args, h] { ctx.action = [&ctx, args, h] { return h(ctx, *args); }; });
}

// The options of `backend add` and `backend set` after the URLs.
void AddBackendOptions(CLI::App* cmd, BackendArgs* a) {
  auto add = [&](const char* flag, auto* value, const char* type, const std::string& help) {
    a->opts[flag] = cmd->add_option(flag, *value, help)->type_name(type);
  };
  add("--timeout-ms", &a->timeout_ms, "N",
      "upstream timeout in ms (default " + std::to_string(kDefaultTimeoutMs) + ")");
  add("--connect-timeout-ms", &a->connect_timeout_ms, "N",
      "connect timeout in ms: an upstream connection must be established within N (or "
      "--timeout-ms when that is shorter); one not made in time is tried on the next instance "
      "(default " +
          std::to_string(kDefaultConnectTimeoutMs) + ")");
  add("--max-conns", &a->max_conns, "N",
      "at most N upstream connections per instance; requests beyond wait in a FIFO queue "
      "(default 0: no cap)");
  add("--max-queue", &a->max_queue, "N",
      "at most N requests wait in the backend's queues for a connection; one more gets a 503 "
      "(default 0: no bound)");
  add("--queue-timeout", &a->queue_timeout, "D",
      "how long a request may wait in the queue before a 503: 500ms, 5s, 1m (default " +
          FormatDurationMs(kDefaultQueueTimeoutMs) + ")");
  add("--reuse-quiet-ms", &a->reuse_quiet_ms, "N",
      "a pooled connection carries another request only once it has been quiet N ms since its "
      "answer, so that bytes the backend writes just after an answer close it instead of "
      "reaching the next client; 0 reuses at once (a backend trusted never to write past an "
      "answer: more throughput at a saturated --max-conns) (default " +
          std::to_string(kDefaultReuseQuietMs) + ", at most 1000)");
  add("--eject-after", &a->eject_after, "N",
      "N consecutive connection failures, resets or timeouts of an instance take it out of "
      "rotation for --eject-for (default " +
          std::to_string(kDefaultEjectAfter) + "; 0: never, at most 1000)");
  add("--eject-for", &a->eject_for, "D",
      "how long an ejected instance stays out; doubled each time it fails again once back, at "
      "most 5m (default " +
          FormatDurationMs(kDefaultEjectForMs) + ")");
  add("--health-path", &a->health_path, "P",
      "active checks: GET P on each instance every --health-every; 3 failing checks in a row "
      "(refused, no status line in time, a status outside 2xx/3xx) take it out of rotation, "
      "2 passing ones bring it back ('' turns checks off; default none)");
  add("--health-every", &a->health_every, "D",
      "how often each instance is checked; a check has at most that long, or --timeout-ms when "
      "shorter (default " +
          FormatDurationMs(kDefaultHealthEveryMs) + ")");
  add("--ca", &a->ca_file, "FILE",
      "https:// instances: accept only certificates signed by the CAs in FILE (PEM; kept as an "
      "absolute path, read by serve when it connects) instead of the system's; '' goes back to "
      "the system's");
  a->opts["--tls-insecure"] =
      cmd->add_flag("--tls-insecure", a->tls_insecure,
                    "https:// instances: check no certificate at all (encrypted, not "
                    "authenticated; 'backend show' says so). For tests and private networks only");
  a->opts["--tls-verify"] =
      cmd->add_flag("--tls-verify", a->tls_verify, "undo --tls-insecure: check certificates again");
  a->opts["--tls-verify"]->excludes(a->opts["--tls-insecure"]);
}

}  // namespace

void RegisterBackendCommands(CLI::App& app, CliContext& ctx) {
  CLI::App* group = app.add_subcommand("backend", "Add, change, list and remove backends");
  group->require_subcommand(1);
  group->footer(kBackendFooter);

  auto name_opt = [](CLI::App* cmd, BackendArgs* a) {
    cmd->add_option("NAME", a->name, "backend name")->required();
  };
  {
    auto a = std::make_shared<BackendArgs>();
    CLI::App* cmd = group->add_subcommand("add", "Add a backend with one or more instance URLs");
    name_opt(cmd, a.get());
    cmd->add_option("URL", a->urls, "http[s]://host:port[/base-path]; several = used in turn")
        ->required();
    cmd->add_flag("--default", a->make_default, "make it the default backend (unmatched traffic)");
    AddBackendOptions(cmd, a.get());
    cmd->footer(kBackendFooter);
    OnRun(cmd, ctx, a, Add);
  }
  {
    auto a = std::make_shared<BackendArgs>();
    CLI::App* cmd = group->add_subcommand(
        "set", "Change a backend: only the options given change (URLs given replace the list)");
    name_opt(cmd, a.get());
    cmd->add_option("URL", a->urls, "new instance URLs (replace the current ones)");
    cmd->add_flag("--default", a->make_default,
                  "make it the default backend (the previous default stops being one)");
    AddBackendOptions(cmd, a.get());
    cmd->footer(kBackendFooter);
    OnRun(cmd, ctx, a, Set);
  }
  {
    auto a = std::make_shared<BackendArgs>();
    CLI::App* cmd = group->add_subcommand(
        "list",
        "List backends (NAME, DEFAULT, TIMEOUT, MAX-CONNS per instance, IN-ROTATION: instances "
        "no running serve reports ejected or down, URLS)");
    cmd->add_flag("--json", a->json, "print a JSON array of backend objects");
    OnRun(cmd, ctx, a, List);
  }
  {
    auto a = std::make_shared<BackendArgs>();
    CLI::App* cmd = group->add_subcommand(
        "show",
        "Show one backend: its settings, and the load of each instance as every running serve "
        "reported it in the last " +
            FormatDurationMs(kLoadFreshMs));
    name_opt(cmd, a.get());
    cmd->add_flag("--json", a->json,
                  "print the backend object (as in rule files) with \"load\": one object per "
                  "instance per running serve");
    OnRun(cmd, ctx, a, Show);
  }
  {
    auto a = std::make_shared<BackendArgs>();
    CLI::App* cmd = group->add_subcommand(
        "rm", "Remove a backend (refused while a route points at it, or if it is the default)");
    name_opt(cmd, a.get());
    OnRun(cmd, ctx, a, Remove);
  }
}

}  // namespace strangler
