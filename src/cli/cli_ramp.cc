// `strangler ramp NAME --to P --step S --every D ...` and
// `strangler ramp list|pause|resume|abort`: gradual cut-overs that a running
// `serve` advances (store.h, "Life of a ramp").
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/time.h"
#include "cli/cli.h"
#include "cli/cli_commands.h"

namespace strangler {

namespace {

constexpr const char* kRampFooter =
    R"(Forms:
  strangler ramp NAME --to P --step S --every DURATION [--max-error-rate R]
                 [--min-requests N] [--on-breach rollback|freeze]
  strangler ramp list [--json] | pause NAME | resume NAME | abort NAME

A ramp raises a route's --percent by S every DURATION until P. A running
'strangler serve' takes the steps (the first at its next tick); each step is a
route.set change in the history with actor 'ramp'. Several serves on one store
take each step once.

Before each step after the first, serve judges the window since the last one:
  - fewer than --min-requests requests went to the route's --to backend: the
    window is extended by DURATION and judged again;
  - the --to backend's 5xx rate is above --max-error-rate AND above the 5xx
    rate of the route's --else traffic in the same window: a breach. The ramp
    stops; --on-breach rollback (default) sets the percent to 0, freeze keeps
    it. The reason, with the numbers, is in 'strangler history NAME';
  - otherwise the next step (or, once at P, the ramp is done).
Reaching P takes a step; the ramp is done one window later, once that last
window was judged fine.

  P, S        percents as 'route --percent' takes them: 30, 12.5, 30%
  DURATION    1500ms, 30s, 5m, 1h, 1h30m (at least 1s)
  R           a rate 0.05 or a percent 5%; without it no window is a breach
A route named like a command (list, pause, diff, ...) goes after '--':
  strangler ramp --to 50 --step 10 --every 1m -- list

Examples:
  strangler ramp orders --to 100 --step 10 --every 5m --max-error-rate 1% \
      --min-requests 200 -m "orders cut-over"
  strangler ramp list
  strangler ramp pause orders; strangler ramp resume orders
  strangler ramp abort orders          # the percent stays where it is)";

constexpr const char* kStartOptions[] = {
    "--to", "--step", "--every", "--max-error-rate", "--min-requests", "--on-breach"};

struct RampArgs {
  std::string name;
  std::string to, step, every, max_error_rate;
  std::string on_breach = ToString(OnBreach::kRollback);
  int64_t min_requests = 0;
  bool json = false;
  std::map<std::string, CLI::Option*> opts;

  bool given(const std::string& o) const {
    auto it = opts.find(o);
    return it != opts.end() && it->second->count() > 0;
  }
  bool any_start_option() const {
    for (const char* o : kStartOptions) {
      if (given(o)) return true;
    }
    return false;
  }
};

std::string Pct(int bp) { return FormatPercent(bp) + "%"; }

Result<RampSpec> SpecFromArgs(const RampArgs& a) {
  RampFields f;
  f.route = a.name;
  auto given = [&](const char* o, const std::string& v) {
    return a.given(o) ? std::optional<std::string>(v) : std::nullopt;
  };
  f.to = given("--to", a.to);
  f.step = given("--step", a.step);
  f.every = given("--every", a.every);
  f.max_error_rate = given("--max-error-rate", a.max_error_rate);
  f.on_breach = a.on_breach;
  f.min_requests = a.min_requests;
  return ParseRampSpec(f);
}

std::string RouteHint(const std::string& name) {
  return "list routes with 'strangler route list' or add it with 'strangler route add " + name +
         " --to BACKEND'";
}

Status Start(CliContext& ctx, const RampArgs& a) {
  auto spec = SpecFromArgs(a);
  if (!spec.ok()) return spec.status();
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  auto before = (*store)->GetRoute(a.name);
  if (!before.ok()) return WithHint(before.status(), RouteHint(a.name));
  Status s = (*store)->StartRamp(*spec, ctx.change());
  if (!s.ok()) return s;
  const RampSpec& r = *spec;
  char rate[32] = "";
  if (r.max_error_rate) std::snprintf(rate, sizeof(rate), "%g%%", *r.max_error_rate * 100);
  std::string budget =
      r.max_error_rate
          ? "error budget " + std::string(rate) + " 5xx on " + before->to +
                (r.min_requests > 0 ? " (judged once " + std::to_string(r.min_requests) +
                                          " requests went there in a window)"
                                    : "") +
                ", on breach " + (r.on_breach == OnBreach::kRollback ? "roll back to 0%" : "freeze")
          : "no error budget";
  *ctx.out << "ramp " << a.name << ": from " << Pct(before->percent_bp) << " to "
           << Pct(r.target_bp) << " by " << Pct(r.step_bp) << " every "
           << FormatDurationMs(r.every_ms) << "; " << budget
           << "; a running 'strangler serve' takes the first step at its next tick\n";
  return Status::Ok();
}

Status List(CliContext& ctx, const RampArgs& a) {
  auto store = ctx.OpenStore(CliContext::Access::kRead);
  if (!store.ok()) return store.status();
  auto views = RampViews(**store);
  if (!views.ok()) return views.status();
  if (a.json) {
    *ctx.out << RampsJson(*views).dump(2) << "\n";
  } else if (views->empty()) {
    *ctx.out << "no ramps yet: start one with 'strangler ramp NAME --to P --step S --every "
                "DURATION'\n";
  } else {
    *ctx.out << RampsTable(*views, NowUnixMs());
  }
  return Status::Ok();
}

using StoreOp = Status (Store::*)(const std::string&, const ChangeContext&);

Status Transition(CliContext& ctx, const RampArgs& a, StoreOp op, const char* done) {
  auto store = ctx.OpenStore();
  if (!store.ok()) return store.status();
  STRANGLER_RETURN_IF_ERROR(((**store).*op)(a.name, ctx.change()));
  auto r = (*store)->GetRamp(a.name);
  if (!r.ok()) return r.status();
  *ctx.out << done << " ramp " << a.name << " at "
           << (r->percent_bp >= 0 ? Pct(r->percent_bp) : std::string("- (route removed)"))
           << " (target " << Pct(r->spec.target_bp) << ")";
  if (r->state == RampState::kRunning) {
    *ctx.out << "; next step judged in " << FormatDurationMs(r->spec.every_ms);
  } else if (r->state == RampState::kAborted) {
    *ctx.out << "; the percent stays: change it with 'strangler route set " << a.name
             << " --percent P'";
  }
  *ctx.out << "\n";
  return Status::Ok();
}

Status Pause(CliContext& ctx, const RampArgs& a) {
  return Transition(ctx, a, &Store::PauseRamp, "paused");
}
Status Resume(CliContext& ctx, const RampArgs& a) {
  return Transition(ctx, a, &Store::ResumeRamp, "resumed");
}
Status Abort(CliContext& ctx, const RampArgs& a) {
  return Transition(ctx, a, &Store::AbortRamp, "aborted");
}

using Handler = Status (*)(CliContext&, const RampArgs&);

std::string Counts(const std::string& to, const std::string& else_name, const RampCounts& c) {
  char to_rate[32], else_rate[32];
  std::snprintf(
      to_rate, sizeof(to_rate), "%.2f%%",
      c.to_n > 0 ? 100.0 * static_cast<double>(c.to_5xx) / static_cast<double>(c.to_n) : 0.0);
  std::snprintf(
      else_rate, sizeof(else_rate), "%.2f%%",
      c.else_n > 0 ? 100.0 * static_cast<double>(c.else_5xx) / static_cast<double>(c.else_n) : 0.0);
  return (to.empty() ? "to" : to) + " 5xx " + std::to_string(c.to_5xx) + "/" +
         std::to_string(c.to_n) + " = " + to_rate + ", " +
         (else_name.empty() ? "else" : else_name) + " " + std::to_string(c.else_5xx) + "/" +
         std::to_string(c.else_n) + " = " + else_rate;
}

std::string NextText(const Ramp& r, int64_t now_ms) {
  if (r.state != RampState::kRunning) return "-";
  int64_t in = r.next_at_ms - now_ms;
  if (in <= 0) return "due";
  return "in " + FormatDurationMs((in + 999) / 1000 * 1000);
}

}  // namespace

std::string RampsTable(const std::vector<RampView>& ramps, int64_t now_ms) {
  std::vector<std::vector<std::string>> rows;
  for (const RampView& v : ramps) {
    const Ramp& r = v.ramp;
    bool judged = r.last.to_n > 0 || r.last.else_n > 0;
    rows.push_back({r.spec.route, ToString(r.state),
                    (r.percent_bp >= 0 ? Pct(r.percent_bp) : "-") + " -> " + Pct(r.spec.target_bp),
                    std::to_string(r.step) + " x " + Pct(r.spec.step_bp),
                    FormatDurationMs(r.spec.every_ms), NextText(r, now_ms),
                    judged ? Counts(v.to, v.else_backend, r.last) : "-",
                    r.note.empty() ? "-" : r.note});
  }
  return FormatTable({"ROUTE", "STATE", "PERCENT", "STEPS", "EVERY", "NEXT", "LAST WINDOW", "NOTE"},
                     rows);
}

void RegisterRampCommands(CLI::App& app, CliContext& ctx) {
  auto a = std::make_shared<RampArgs>();
  CLI::App* cmd = app.add_subcommand(
      "ramp",
      "Raise a route's percent step by step while its --to backend stays within an error "
      "budget (taken by a running serve); or list, pause, resume, abort ramps");
  cmd->require_subcommand(0, 1);
  cmd->add_option("NAME", a->name, "route to ramp");
  auto& o = a->opts;
  o["--to"] = cmd->add_option("--to", a->to, "target percent (required)")->type_name("P");
  o["--step"] =
      cmd->add_option("--step", a->step, "percent added per step (required)")->type_name("S");
  o["--every"] =
      cmd->add_option("--every", a->every, "window between steps, e.g. 30s, 5m (required)")
          ->type_name("DURATION");
  o["--max-error-rate"] =
      cmd->add_option("--max-error-rate", a->max_error_rate,
                      "error budget: largest 5xx rate of --to traffic in a window, 0.05 or 5%")
          ->type_name("R");
  o["--min-requests"] =
      cmd->add_option("--min-requests", a->min_requests,
                      "requests to --to a window needs before it is judged (default 0)")
          ->type_name("N");
  o["--on-breach"] = cmd->add_option("--on-breach", a->on_breach,
                                     "rollback (percent to 0) or freeze (percent kept)")
                         ->type_name("rollback|freeze")
                         ->capture_default_str();
  cmd->footer(kRampFooter);

  struct Sub {
    const char* name;
    const char* help;
    Handler handler;
  };
  const Sub subs[] = {
      {"pause", "Pause a running ramp (no steps, no judging) until resumed", Pause},
      {"resume", "Resume a paused ramp; its next window starts now", Resume},
      {"abort", "Stop a ramp for good; the route keeps its current percent", Abort},
  };
  for (const Sub& s : subs) {
    auto sa = std::make_shared<RampArgs>();
    CLI::App* sub = cmd->add_subcommand(s.name, s.help);
    sub->add_option("NAME", sa->name, "route whose ramp to " + std::string(s.name))->required();
    Handler h = s.handler;
    sub->callback([&ctx, sa, h] { ctx.action = [&ctx, sa, h] { return h(ctx, *sa); }; });
  }
  {
    auto la = std::make_shared<RampArgs>();
    CLI::App* sub = cmd->add_subcommand(
        "list", "List ramps: state, percent now and target, next step, last window judged");
    sub->add_flag("--json", la->json,
                  "JSON array: the ramp's fields (times as RFC 3339 and Unix ms), percent now, "
                  "counts of the window in progress");
    sub->callback([&ctx, la] { ctx.action = [&ctx, la] { return List(ctx, *la); }; });
  }

  // Runs after a subcommand's callback: starts a ramp when none was given.
  cmd->callback([&ctx, a, cmd] {
    if (!cmd->get_subcommands().empty()) {
      if (!a->name.empty() || a->any_start_option()) {
        ctx.action = [] {
          return Status::Usage(
              "give either 'ramp NAME --to P --step S --every DURATION' or 'ramp "
              "list|pause|resume|abort ...', not both (see 'strangler ramp --help')");
        };
      }
      return;
    }
    if (a->name.empty()) {
      ctx.action = [] {
        return Status::Usage(
            "ramp needs a route NAME with --to P --step S --every DURATION, or one of list, "
            "pause, resume, abort (see 'strangler ramp --help')");
      };
      return;
    }
    ctx.action = [&ctx, a] { return Start(ctx, *a); };
  });
}

}  // namespace strangler
