// `strangler backend add|set|list|show|rm`.
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/cli_commands.h"

namespace strangler {

namespace {

constexpr const char* kBackendFooter = R"(Backends:
  NAME matches [a-z0-9][a-z0-9_-]{0,63}. URL is http://host:port[/base-path];
  several URLs are instances of one backend, used in turn. Exactly one backend
  is the default (the monolith): unmatched traffic goes there. The first
  backend added is the default until another is marked with --default.
  A backend that a route points at (--to or --else) cannot be removed.)";

struct BackendArgs {
  std::string name;
  std::vector<std::string> urls;
  bool make_default = false;
  int timeout_ms = 0;
  CLI::Option* timeout_opt = nullptr;
  bool json = false;

  BackendFlags flags() const {
    BackendFlags f;
    f.urls = urls;
    f.make_default = make_default;
    if (timeout_opt != nullptr && timeout_opt->count() > 0) f.timeout_ms = timeout_ms;
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
  if (f.urls.empty() && !f.make_default && !f.timeout_ms) {
    return Status::Usage("nothing to change for backend '" + a.name +
                         "'; give URLs, --default or --timeout-ms N");
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
    *ctx.out << BackendTable(list.value());
  }
  return Status::Ok();
}

Status Show(CliContext& ctx, const BackendArgs& a) {
  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  auto b = (*store)->GetBackend(a.name);
  if (!b.ok()) return WithHint(b.status(), "list them with 'strangler backend list'");
  *ctx.out << (a.json ? ToJson(b.value()).dump(2) + "\n" : DescribeBackend(b.value()));
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
    cmd->add_option("URL", a->urls, "http://host:port[/base-path]; several = used in turn")
        ->required();
    cmd->add_flag("--default", a->make_default, "make it the default backend (unmatched traffic)");
    a->timeout_opt = cmd->add_option(
        "--timeout-ms", a->timeout_ms,
        "upstream timeout in ms (default " + std::to_string(kDefaultTimeoutMs) + ")");
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
    a->timeout_opt = cmd->add_option("--timeout-ms", a->timeout_ms, "upstream timeout in ms");
    cmd->footer(kBackendFooter);
    OnRun(cmd, ctx, a, Set);
  }
  {
    auto a = std::make_shared<BackendArgs>();
    CLI::App* cmd = group->add_subcommand("list", "List backends (NAME, DEFAULT, TIMEOUT, URLS)");
    cmd->add_flag("--json", a->json, "print a JSON array of backend objects");
    OnRun(cmd, ctx, a, List);
  }
  {
    auto a = std::make_shared<BackendArgs>();
    CLI::App* cmd = group->add_subcommand("show", "Show one backend");
    name_opt(cmd, a.get());
    cmd->add_flag("--json", a->json, "print the backend object {name, urls, default, timeout_ms}");
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
