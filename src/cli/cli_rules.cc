// `strangler export`, `strangler apply` and `strangler revert`: rule files
// kept in git, and undoing one change from the history.
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/cli_commands.h"
#include "rules/rule_file.h"

namespace strangler {

void RegisterRuleFileCommands(CLI::App& app, CliContext& ctx);

namespace {

constexpr const char* kApplyFooter =
    R"(A rule file is {"backends": [...], "routes": [...]}, with the objects that
'strangler export', 'backend list --json' and 'route list --json' print.
Omitted fields take the CLI's defaults. The file must define every backend its
routes name, and exactly one backend must have "default": true.

apply checks the whole file first and refuses it (exit 1, nothing written)
listing every problem. Then it makes the store match the file in one
transaction and prints each step: add / change (field by field) / remove, and
objects in the store but not in the file, which are kept unless --prune.
Each object changed is one history row, with --actor and -m (default reason
"apply FILE"). Applying the same file again changes nothing and records
nothing. FILE '-' reads stdin.

Examples:
  strangler export > rules/prod.json
  strangler apply rules/prod.json --dry-run
  strangler apply rules/prod.json -m "orders to 30%")";

constexpr const char* kRevertFooter =
    R"(Restores the object of change ID (see 'strangler history') to its state
before that change, as a new change: an add is undone by removing the object,
a removal by adding it back, any other change by writing the old state back
(whatever changed since). The new rows use the ordinary actions (route.set,
backend.add, ...) with the reason "revert of change ID" (plus -m when given),
so a revert is itself in the history and can be reverted.
Refused (exit 1, nothing written) when it cannot be done: the object was
removed since (revert the removal first), its name is taken again, a backend
it needs is gone, or routes still use a backend it would remove.)";

struct RulesArgs {
  std::string file;
  bool json = false;
  bool dry_run = false;
  bool prune = false;
  int64_t change_id = 0;
};

Result<std::string> ReadInput(const std::string& path) {
  if (path == "-") {
    return std::string(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Io("cannot read rule file '" + path + "': check the path");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Status::Io("cannot read rule file '" + path + "'");
  return ss.str();
}

std::string Counts(const ApplyPlan& p) {
  return std::to_string(p.adds) + " to add, " + std::to_string(p.changes) + " to change, " +
         std::to_string(p.removes) + " to remove" +
         (p.kept > 0 ? ", " + std::to_string(p.kept) + " kept" : "");
}

Status Export(CliContext& ctx, const RulesArgs&) {
  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  auto rules = (*store)->Load();
  if (!rules.ok()) return rules.status();
  *ctx.out << ExportRuleFile(*rules);
  return Status::Ok();
}

Status Apply(CliContext& ctx, const RulesArgs& a) {
  auto text = ReadInput(a.file);
  if (!text.ok()) return text.status();
  std::vector<std::string> problems;
  RuleFile file = ParseRuleFile(*text, &problems);
  if (!problems.empty()) {
    for (const auto& p : problems) *ctx.err << "strangler: " << a.file << ": " << p << "\n";
    return Status::Invalid(a.file + " is invalid (" + std::to_string(problems.size()) +
                           (problems.size() == 1 ? " problem" : " problems") +
                           ", listed above); nothing was applied: fix the file and apply again");
  }
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  if (a.dry_run) {
    auto rules = (*store)->Load();
    if (!rules.ok()) return rules.status();
    ApplyPlan plan = PlanApply(*rules, file, a.prune ? Prune::kYes : Prune::kNo);
    *ctx.out << FormatPlan(plan);
    *ctx.out << (plan.has_writes()
                     ? "dry run: " + Counts(plan) + "; nothing written\n"
                     : "dry run: the store already matches " + a.file + "; nothing to do\n");
    return Status::Ok();
  }
  ChangeContext change = ctx.change();
  if (change.reason.empty()) change.reason = "apply " + a.file;
  auto result = (*store)->ApplyRuleFile(file, a.prune ? Prune::kYes : Prune::kNo, change);
  if (!result.ok()) {
    return WithHint(result.status(), "nothing was applied");
  }
  const ApplyPlan& plan = result->plan;
  *ctx.out << FormatPlan(plan);
  if (!plan.has_writes()) {
    *ctx.out << "no changes: the store already matches " << a.file << "\n";
  } else {
    auto version = (*store)->RulesetVersion();
    *ctx.out << "applied " << a.file << ": " << plan.adds << " added, " << plan.changes
             << " changed, " << plan.removes << " removed (" << result->recorded.size()
             << " history rows";
    if (version.ok()) *ctx.out << ", ruleset " << *version;
    *ctx.out << ")\n";
  }
  return Status::Ok();
}

Status Revert(CliContext& ctx, const RulesArgs& a) {
  if (a.change_id <= 0) return Status::Usage("ID must be a change id from 'strangler history'");
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  auto original = (*store)->GetChange(a.change_id);
  if (!original.ok()) return original.status();
  // Reverting puts the object back as it was before the change: later
  // changes to it are undone too: the warning names them (with --dry-run,
  // before anything is written).
  std::string name = original->object.substr(original->object.find('/') + 1);
  auto later = (*store)->History(name, 1000);
  if (!later.ok()) return later.status();
  std::string undone;
  for (const ChangeRow& r : *later) {
    if (r.id > a.change_id && r.object == original->object) {
      undone = std::to_string(r.id) + " (" + r.action + ")" + (undone.empty() ? "" : ", ") + undone;
    }
  }
  auto rows = (*store)->Revert(a.change_id, ctx.change(),
                               a.dry_run ? Store::Mode::kDryRun : Store::Mode::kWrite);
  if (!rows.ok()) return rows.status();
  if (rows->empty()) {
    *ctx.out << "nothing to revert: " << original->object << " is already as it was before change "
             << a.change_id << "\n";
    return Status::Ok();
  }
  if (!undone.empty()) {
    const bool several = undone.find(',') != std::string::npos;
    *ctx.err << "strangler: warning: " << original->object << " changed after change "
             << a.change_id << ": reverting it also undoes change" << (several ? "s " : " ")
             << undone << "\n";
  }
  *ctx.out << (a.dry_run ? "dry run: would revert change " : "reverted change ") << a.change_id
           << " (" << original->action << " " << original->object << "):\n";
  for (const ChangeRow& r : *rows) {
    *ctx.out << "  " << (a.dry_run ? std::string("-") : std::to_string(r.id)) << "  " << r.action
             << " " << r.object << ": " << ChangeSummary(r.before, r.after) << "\n";
  }
  if (a.dry_run) *ctx.out << "nothing was written\n";
  return Status::Ok();
}

using Handler = Status (*)(CliContext&, const RulesArgs&);

void OnRun(CLI::App* cmd, CliContext& ctx, std::shared_ptr<RulesArgs> args, Handler h) {
  cmd->callback([&ctx, args, h] { ctx.action = [&ctx, args, h] { return h(ctx, *args); }; });
}

}  // namespace

void RegisterRuleFileCommands(CLI::App& app, CliContext& ctx) {
  {
    auto a = std::make_shared<RulesArgs>();
    CLI::App* cmd = app.add_subcommand(
        "export", "Print the whole store as a rule file (JSON, sorted by name, for git)");
    cmd->add_flag("--json", a->json, "JSON (the only format; accepted for scripts)");
    cmd->footer("Example: strangler export > rules/prod.json; strangler apply rules/prod.json");
    OnRun(cmd, ctx, a, Export);
  }
  {
    auto a = std::make_shared<RulesArgs>();
    CLI::App* cmd = app.add_subcommand(
        "apply", "Make the store match a rule file, in one transaction, printing each change");
    cmd->add_option("FILE", a->file, "rule file ('-' for stdin)")->required();
    cmd->add_flag("--dry-run", a->dry_run, "print the plan, write nothing");
    cmd->add_flag("--prune", a->prune, "also remove backends and routes that the file lacks");
    cmd->footer(kApplyFooter);
    OnRun(cmd, ctx, a, Apply);
  }
  {
    auto a = std::make_shared<RulesArgs>();
    CLI::App* cmd =
        app.add_subcommand("revert", "Undo one change from the history, as a new change");
    cmd->add_option("ID", a->change_id, "change id (see 'strangler history')")->required();
    cmd->add_flag("--dry-run", a->dry_run, "print what it would change, write nothing");
    cmd->footer(kRevertFooter);
    OnRun(cmd, ctx, a, Revert);
  }
}

}  // namespace strangler
