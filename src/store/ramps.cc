// Ramps: starting, pausing, resuming and aborting them, and RampTick, which
// counts their windows and judges and advances the ones that are due (see
// "Life of a ramp" in safety/ramp.h).
#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/time.h"
#include "store/ramp_rows.h"
#include "store/rule_rows.h"
#include "store/rule_writes.h"
#include "store/sql.h"
#include "store/store.h"
#include "store/write.h"

namespace strangler {
using namespace store_internal;

namespace {

constexpr int64_t kMinEveryMs = 1000;

Status ValidateRampSpec(const RampSpec& s) {
  STRANGLER_RETURN_IF_ERROR(ValidateName("route", s.route));
  if (s.target_bp < 1 || s.target_bp > kFullPercentBp) {
    return Status::Usage("bad ramp target " + FormatPercent(std::max(s.target_bp, 0)) +
                         "%: give a percent above 0 and at most 100");
  }
  if (s.step_bp < 1 || s.step_bp > kFullPercentBp) {
    return Status::Usage("bad ramp step " + FormatPercent(std::max(s.step_bp, 0)) +
                         "%: give a percent above 0 and at most 100");
  }
  if (s.every_ms < kMinEveryMs) {
    return Status::Usage("bad ramp interval " + std::to_string(s.every_ms) +
                         "ms: a window must last at least 1s");
  }
  if (s.max_error_rate && !(*s.max_error_rate >= 0 && *s.max_error_rate <= 1)) {
    return Status::Usage("bad ramp error budget " + std::to_string(*s.max_error_rate) +
                         ": give a rate from 0 to 1 (0.05) or a percent (5%)");
  }
  if (s.min_requests < 0) {
    return Status::Usage("bad ramp minimum " + std::to_string(s.min_requests) +
                         ": min requests must be 0 or more");
  }
  return Status::Ok();
}

bool RampEnded(const Ramp& r) {
  return r.state != RampState::kRunning && r.state != RampState::kPaused;
}

Status NoRamp(const std::string& route) {
  return Status::NotFound("route '" + route + "' has no ramp: start one with 'strangler ramp " +
                          route + " --to P --step S --every DURATION'");
}

// "done: reached 50%", "aborted by alice".
std::string EndedWhy(const Ramp& r) {
  const std::string state = ToString(r.state);
  if (r.note.empty()) return state;
  if (r.note.rfind(state, 0) == 0) return r.note;
  return state + ": " + r.note;
}

std::string ResumeCommand(const std::string& route) { return "strangler ramp resume " + route; }

enum class RampAction { kPause, kResume, kAbort };

// Pause, resume or abort the ramp of `route`, refusing a state the action
// does not apply to.
Status TransitionRamp(Write* w, const std::string& route, RampAction action) {
  Result<std::optional<Ramp>> found = FindRamp(w->db, route);
  if (!found.ok()) return found.status();
  if (!found->has_value()) return NoRamp(route);
  const Ramp before = **found;
  Ramp r = before;
  const std::string which = "the ramp of route '" + route + "'";
  const char* name = "";
  switch (action) {
    case RampAction::kPause:
      name = "ramp.pause";
      if (r.state == RampState::kPaused) {
        return Status::Conflict(which + " is already paused; resume it with '" +
                                ResumeCommand(route) + "'");
      }
      if (r.state != RampState::kRunning) {
        return Status::Conflict(which + " has ended (" + EndedWhy(r) + "): nothing to pause");
      }
      r.state = RampState::kPaused;
      r.note = "paused by " + w->ctx.actor;
      break;
    case RampAction::kResume:
      name = "ramp.resume";
      if (r.state == RampState::kRunning) {
        return Status::Conflict(which + " is running, not paused");
      }
      if (r.state != RampState::kPaused) {
        return Status::Conflict(which + " has ended (" + EndedWhy(r) +
                                "): start a new one with 'strangler ramp " + route +
                                " --to P --step S --every DURATION'");
      }
      r.state = RampState::kRunning;
      r.note.clear();
      r.next_at_ms = w->now_ms + r.spec.every_ms;  // a whole fresh window
      STRANGLER_RETURN_IF_ERROR(ClearWindows(w->db, route, kEveryWindow));
      break;
    case RampAction::kAbort:
      name = "ramp.abort";
      if (RampEnded(r)) {
        return Status::Conflict(which + " has already ended (" + EndedWhy(r) + ")");
      }
      r.state = RampState::kAborted;
      r.note = "aborted by " + w->ctx.actor;
      STRANGLER_RETURN_IF_ERROR(ClearWindows(w->db, route, kEveryWindow));
      break;
  }
  r.updated_at = w->ts;
  STRANGLER_RETURN_IF_ERROR(WriteRamp(w->db, r));
  return RecordChange(w, name, "ramp", route, ToJson(before), ToJson(r), Bump::kNo);
}

Result<std::string> DefaultBackendName(sqlite3* db) {
  Stmt s;
  STRANGLER_RETURN_IF_ERROR(s.Prepare(db, "SELECT name FROM backends WHERE is_default = 1"));
  Result<bool> row = s.Step();
  if (!row.ok()) return row.status();
  return *row ? s.Text(0) : std::string("(default)");
}

// Ends `r` (already changed to its final state and note) and records `action`
// with `reason`.
Result<RampEvent> EndRamp(Write* w, const Ramp& before, const Ramp& r, std::string_view action,
                          const std::string& reason, std::string what) {
  STRANGLER_RETURN_IF_ERROR(ClearWindows(w->db, r.spec.route, kEveryWindow));
  STRANGLER_RETURN_IF_ERROR(WriteRamp(w->db, r));
  w->ctx.reason = reason;
  STRANGLER_RETURN_IF_ERROR(
      RecordChange(w, action, "ramp", r.spec.route, ToJson(before), ToJson(r), Bump::kNo));
  return RampEvent{r.spec.route, std::move(what), reason};
}

// Judges and advances one running ramp that is due (see "Life of a ramp" in
// safety/ramp.h), inside the tick's write: reads what JudgeRamp needs and
// writes what it says.
Result<RampEvent> AdvanceRamp(Write* w, Ramp* r, int64_t now_ms) {
  const Ramp before = *r;
  const std::string& name = r->spec.route;
  r->updated_at = w->ts;
  Result<std::optional<Route>> found = FindRoute(w->db, name);
  if (!found.ok()) return found.status();
  RampFacts facts;
  facts.step = r->step;
  facts.next_at_ms = r->next_at_ms;
  facts.now_ms = now_ms;
  facts.route_exists = found->has_value();
  Route route;
  if (facts.route_exists) {
    route = **found;
    facts.percent_bp = route.percent_bp;
    facts.to_backend = route.to;
    facts.else_backend = route.else_backend;
    if (facts.else_backend.empty()) {
      Result<std::string> d = DefaultBackendName(w->db);
      if (!d.ok()) return d.status();
      facts.else_backend = *d;
    }
    if (r->step > 0) {
      Result<RampCounts> counts = WindowCounts(w->db, name, r->step);
      if (!counts.ok()) return counts.status();
      facts.window = *counts;
    }
  }

  const RampVerdict v = JudgeRamp(r->spec, facts);
  r->state = v.state;
  r->step = v.step;
  r->next_at_ms = v.next_at_ms;
  if (v.last) r->last = *v.last;
  r->note = v.note;
  using Kind = RampVerdict::Kind;
  switch (v.kind) {
    case Kind::kAbortRouteGone:
      return EndRamp(w, before, *r, "ramp.abort", v.message, ToString(r->state));
    case Kind::kWait:
      STRANGLER_RETURN_IF_ERROR(WriteRamp(w->db, *r));
      return RampEvent{name, "waiting", v.message};
    case Kind::kBreachRollback:
      route.percent_bp = v.percent_bp;
      w->ctx.reason = v.route_reason;
      STRANGLER_RETURN_IF_ERROR(SetRouteIn(w, route, "route.set"));
      return EndRamp(w, before, *r, "ramp.breach", v.message, ToString(r->state));
    case Kind::kBreachFreeze:
      return EndRamp(w, before, *r, "ramp.breach", v.message, ToString(r->state));
    case Kind::kDone:
      return EndRamp(w, before, *r, "ramp.done", v.message, ToString(r->state));
    case Kind::kStep:
      route.percent_bp = v.percent_bp;
      w->ctx.reason = v.route_reason;
      STRANGLER_RETURN_IF_ERROR(SetRouteIn(w, route, "route.set"));
      STRANGLER_RETURN_IF_ERROR(ClearWindows(w->db, name, r->step));
      STRANGLER_RETURN_IF_ERROR(WriteRamp(w->db, *r));
      return RampEvent{name, "step", v.message};
  }
  return Status::Internal("ramp of route '" + name + "': unknown verdict");
}

// Sums `counted` per route, keeping only routes with a running ramp and
// something counted.
std::map<std::string, RampCounts> CountsOfRunning(
    const std::vector<std::pair<std::string, RampCounts>>& counted,
    const std::vector<Ramp>& running) {
  std::set<std::string> names;
  for (const Ramp& r : running) names.insert(r.spec.route);
  std::map<std::string, RampCounts> sums;
  for (const auto& [route, c] : counted) {
    if (c.empty() || names.count(route) == 0) continue;
    RampCounts& sum = sums[route];
    sum.to_n += c.to_n;
    sum.to_5xx += c.to_5xx;
    sum.else_n += c.else_n;
    sum.else_5xx += c.else_5xx;
  }
  return sums;
}

void FillRunning(const std::vector<Ramp>& ramps, RampTickResult* out) {
  for (const Ramp& r : ramps) {
    if (r.state != RampState::kRunning) continue;
    out->running.push_back(r.spec.route);
    out->next_due_ms = std::min(out->next_due_ms, r.next_at_ms);
  }
}

}  // namespace

Status Store::StartRamp(const RampSpec& spec, const ChangeContext& ctx) {
  STRANGLER_RETURN_IF_ERROR(ValidateRampSpec(spec));
  return RunWrite(db_, ctx, [&](Write* w) -> Status {
    Result<std::optional<Route>> route = FindRoute(w->db, spec.route);
    if (!route.ok()) return route.status();
    if (!route->has_value()) return UnknownRoute(spec.route);
    const int percent = (*route)->percent_bp;
    if (spec.target_bp <= percent) {
      return Status::Conflict("route " + spec.route + " is already at " + FormatPercent(percent) +
                              "%, not below the target " + FormatPercent(spec.target_bp) +
                              "%; a ramp only raises the percent: use 'strangler route set " +
                              spec.route + " --percent P' to lower it");
    }
    Result<std::optional<Ramp>> old = FindRamp(w->db, spec.route);
    if (!old.ok()) return old.status();
    if (old->has_value() && !RampEnded(**old)) {
      const Ramp& o = **old;
      return Status::Conflict("route " + spec.route + " already has a " + ToString(o.state) +
                              " ramp (to " + FormatPercent(o.spec.target_bp) +
                              "%): abort it first with 'strangler ramp abort " + spec.route + "'");
    }
    Ramp r;
    r.spec = spec;
    r.state = RampState::kRunning;
    r.next_at_ms = w->now_ms;  // the first step needs no window: take it at the next tick
    r.started_at = w->ts;
    r.updated_at = w->ts;
    STRANGLER_RETURN_IF_ERROR(ClearWindows(w->db, spec.route, kEveryWindow));
    STRANGLER_RETURN_IF_ERROR(WriteRamp(w->db, r));
    return RecordChange(w, "ramp.start", "ramp", spec.route,
                        old->has_value() ? ToJson(**old) : Json(), ToJson(r), Bump::kNo);
  });
}

Status Store::PauseRamp(const std::string& route, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) { return TransitionRamp(w, route, RampAction::kPause); });
}

Status Store::ResumeRamp(const std::string& route, const ChangeContext& ctx) {
  return RunWrite(db_, ctx,
                  [&](Write* w) { return TransitionRamp(w, route, RampAction::kResume); });
}

Status Store::AbortRamp(const std::string& route, const ChangeContext& ctx) {
  return RunWrite(db_, ctx, [&](Write* w) { return TransitionRamp(w, route, RampAction::kAbort); });
}

Result<std::vector<Ramp>> Store::ListRamps() {
  Txn txn(db_);
  STRANGLER_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kRead));
  Result<std::vector<Ramp>> ramps = QueryRamps(db_, Which::kAll);
  if (!ramps.ok()) return ramps.status();
  for (Ramp& r : *ramps) STRANGLER_RETURN_IF_ERROR(FillRampViews(db_, &r));
  STRANGLER_RETURN_IF_ERROR(txn.Commit());
  return ramps;
}

Result<Ramp> Store::GetRamp(const std::string& route) {
  Txn txn(db_);
  STRANGLER_RETURN_IF_ERROR(txn.Begin(Txn::Kind::kRead));
  Result<std::optional<Ramp>> r = FindRamp(db_, route);
  if (!r.ok()) return r.status();
  if (!r->has_value()) return NoRamp(route);
  Ramp ramp = std::move(**r);
  STRANGLER_RETURN_IF_ERROR(FillRampViews(db_, &ramp));
  STRANGLER_RETURN_IF_ERROR(txn.Commit());
  return ramp;
}

Result<RampTickResult> Store::RampTick(
    int64_t now_ms, const std::vector<std::pair<std::string, RampCounts>>& counted) {
  RampTickResult result;
  // A plain read first: most ticks have nothing to write.
  Result<std::vector<Ramp>> seen = QueryRamps(db_, Which::kRunning);
  if (!seen.ok()) return seen.status();
  const bool due = std::any_of(seen->begin(), seen->end(),
                               [&](const Ramp& r) { return r.next_at_ms <= now_ms; });
  if (!due && CountsOfRunning(counted, *seen).empty()) {
    FillRunning(*seen, &result);
    return result;
  }

  Txn txn(db_);
  Result<Write> w = BeginWrite(db_, &txn, ChangeContext{"ramp", ""});
  if (!w.ok()) return w.status();
  // Another serve may have advanced them meanwhile: judge what is there now.
  Result<std::vector<Ramp>> running = QueryRamps(db_, Which::kRunning);
  if (!running.ok()) return running.status();
  const std::map<std::string, RampCounts> sums = CountsOfRunning(counted, *running);
  for (const Ramp& r : *running) {
    auto it = sums.find(r.spec.route);
    if (it != sums.end()) {
      STRANGLER_RETURN_IF_ERROR(AddWindowCounts(db_, r.spec.route, r.step, it->second));
    }
  }
  for (Ramp& r : *running) {
    if (r.next_at_ms > now_ms) continue;
    Result<RampEvent> e = AdvanceRamp(&*w, &r, now_ms);
    if (!e.ok()) return e.status();
    result.events.push_back(std::move(*e));
  }
  STRANGLER_RETURN_IF_ERROR(FinishWrite(*w, &txn));
  FillRunning(*running, &result);
  return result;
}

Result<std::vector<RampView>> RampViews(Store& store) {
  auto ramps = store.ListRamps();
  if (!ramps.ok()) return ramps.status();
  auto rules = store.Load();
  if (!rules.ok()) return rules.status();
  std::string default_backend;
  for (const Backend& b : rules->backends) {
    if (b.is_default) default_backend = b.name;
  }
  std::vector<RampView> out;
  for (Ramp& r : *ramps) {
    RampView v;
    for (const Route& route : rules->routes) {
      if (route.name != r.spec.route) continue;
      v.to = route.to;
      v.else_backend = route.else_backend.empty() ? default_backend : route.else_backend;
    }
    v.ramp = std::move(r);
    out.push_back(std::move(v));
  }
  return out;
}

Json RampsJson(const std::vector<RampView>& ramps) {
  Json arr = Json::array();
  for (const RampView& v : ramps) {
    const Ramp& r = v.ramp;
    Json j = ToJson(r);
    j["percent"] = r.percent_bp >= 0 ? PercentJson(r.percent_bp) : Json();
    j["current"] = ToJson(r.current);
    j["every"] = FormatDurationMs(r.spec.every_ms);
    if (r.state == RampState::kRunning) {
      std::string at;
      AppendRfc3339Ms(r.next_at_ms, &at);
      j["next_at"] = at;
    } else {
      j["next_at"] = nullptr;
    }
    j["to_backend"] = v.to.empty() ? Json() : Json(v.to);
    j["else_backend"] = v.else_backend.empty() ? Json() : Json(v.else_backend);
    arr.push_back(std::move(j));
  }
  return arr;
}

}  // namespace strangler
