#include "safety/ramp.h"

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "base/time.h"
#include "rules/rules.h"

namespace strangler {

namespace {

// Each value with its text: one table for both directions.
template <typename E>
using Names = std::pair<E, const char*>;
constexpr Names<OnBreach> kOnBreachNames[] = {{OnBreach::kRollback, "rollback"},
                                              {OnBreach::kFreeze, "freeze"}};
constexpr Names<RampState> kRampStateNames[] = {
    {RampState::kRunning, "running"}, {RampState::kPaused, "paused"},
    {RampState::kDone, "done"},       {RampState::kRolledBack, "rolled_back"},
    {RampState::kFrozen, "frozen"},   {RampState::kAborted, "aborted"}};

template <typename E, size_t N>
std::string NameOf(const Names<E> (&names)[N], E value) {
  for (const auto& [v, name] : names) {
    if (v == value) return name;
  }
  return "?";
}

template <typename E, size_t N>
std::optional<E> ValueOf(const Names<E> (&names)[N], std::string_view text) {
  for (const auto& [v, name] : names) {
    if (text == name) return v;
  }
  return std::nullopt;
}

double Rate(int64_t part, int64_t whole) {
  return whole > 0 ? static_cast<double>(part) / static_cast<double>(whole) : 0.0;
}

std::string RatePercent(double rate) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f%%", rate * 100);
  return buf;
}

// "new 5xx 12/40 = 30.00%"
std::string FiveXx(const std::string& backend, int64_t errors, int64_t n) {
  return backend + " 5xx " + std::to_string(errors) + "/" + std::to_string(n) + " = " +
         RatePercent(Rate(errors, n));
}

bool Breached(const RampSpec& spec, const RampCounts& c) {
  if (!spec.max_error_rate || c.to_n == 0) return false;
  double to_rate = Rate(c.to_5xx, c.to_n);
  return to_rate > *spec.max_error_rate && to_rate > Rate(c.else_5xx, c.else_n);
}

}  // namespace

std::string ToString(OnBreach b) { return NameOf(kOnBreachNames, b); }
std::string ToString(RampState s) { return NameOf(kRampStateNames, s); }
std::optional<OnBreach> ParseOnBreach(std::string_view text) {
  return ValueOf(kOnBreachNames, text);
}
std::optional<RampState> ParseRampState(std::string_view text) {
  return ValueOf(kRampStateNames, text);
}

RampVerdict JudgeRamp(const RampSpec& spec, const RampFacts& f) {
  using Kind = RampVerdict::Kind;
  RampVerdict v;
  v.percent_bp = f.percent_bp;
  v.step = f.step;
  v.next_at_ms = f.next_at_ms;
  if (!f.route_exists) {
    v.kind = Kind::kAbortRouteGone;
    v.state = RampState::kAborted;
    v.note = "route removed";
    v.message = "route '" + spec.route + "' was removed";
    return v;
  }

  std::string window;  // " (last window: ...)" once a window was judged
  if (f.step > 0) {
    const RampCounts& c = f.window;
    if (c.to_n < spec.min_requests) {
      v.kind = Kind::kWait;
      v.next_at_ms = f.now_ms + spec.every_ms;
      v.note = "waiting for " + std::to_string(spec.min_requests) + " requests to " + f.to_backend +
               " in this window (have " + std::to_string(c.to_n) + ")";
      v.message = v.note;
      return v;
    }
    v.last = c;
    if (Breached(spec, c)) {
      std::string why = "error budget breached: " + FiveXx(f.to_backend, c.to_5xx, c.to_n) + " > " +
                        RatePercent(*spec.max_error_rate) + " (" +
                        FiveXx(f.else_backend, c.else_5xx, c.else_n) + ")";
      if (spec.on_breach == OnBreach::kRollback) {
        v.kind = Kind::kBreachRollback;
        v.state = RampState::kRolledBack;
        v.percent_bp = 0;
        v.route_reason = why + "; rolled back to 0%";
        v.note = why + "; rolled back from " + FormatPercent(f.percent_bp) + "% to 0%";
      } else {
        v.kind = Kind::kBreachFreeze;
        v.state = RampState::kFrozen;
        v.note = why + "; frozen at " + FormatPercent(f.percent_bp) + "%";
      }
      v.message = v.note;
      return v;
    }
    window = " (last window: " + f.to_backend + " 5xx " + std::to_string(c.to_5xx) + "/" +
             std::to_string(c.to_n) + ", " + f.else_backend + " 5xx " + std::to_string(c.else_5xx) +
             "/" + std::to_string(c.else_n) + ")";
  }

  if (f.percent_bp >= spec.target_bp) {
    v.kind = Kind::kDone;
    v.state = RampState::kDone;
    v.note = "reached " + FormatPercent(spec.target_bp) + "%";
    v.message = v.note + window;
    return v;
  }
  v.kind = Kind::kStep;
  v.percent_bp = std::min(f.percent_bp + spec.step_bp, spec.target_bp);
  v.step = f.step + 1;
  v.next_at_ms = f.now_ms + spec.every_ms;
  v.message = "step " + std::to_string(v.step) + ": " + FormatPercent(f.percent_bp) + "% -> " +
              FormatPercent(v.percent_bp) + "%" + window;
  v.route_reason = "ramp " + v.message;
  return v;
}

Json ToJson(const RampCounts& c) {
  return Json{
      {"to_n", c.to_n}, {"to_5xx", c.to_5xx}, {"else_n", c.else_n}, {"else_5xx", c.else_5xx}};
}

Json ToJson(const Ramp& r) {
  return Json{{"route", r.spec.route},
              {"state", ToString(r.state)},
              {"target", PercentJson(r.spec.target_bp)},
              {"step", PercentJson(r.spec.step_bp)},
              {"every_ms", r.spec.every_ms},
              {"max_error_rate", r.spec.max_error_rate ? Json(*r.spec.max_error_rate) : Json()},
              {"min_requests", r.spec.min_requests},
              {"on_breach", ToString(r.spec.on_breach)},
              {"steps", r.step},
              {"next_at_ms", r.next_at_ms},
              {"started_at", r.started_at},
              {"updated_at", r.updated_at},
              {"last", ToJson(r.last)},
              {"note", r.note}};
}

Result<int> ParsePercentArg(std::string_view text) {
  std::string_view number = text;
  if (!number.empty() && number.back() == '%') number.remove_suffix(1);
  // (ParsePercent's message, which the API and rule files give too.)
  return ParsePercent(number);
}

Result<double> ParseErrorRate(std::string_view text) {
  auto bad = [&] {
    return Status::Usage("bad --max-error-rate '" + std::string(text) +
                         "': give a rate from 0 to 1 (0.05) or a percent (5%)");
  };
  if (!text.empty() && text.back() == '%') {
    auto p = ParsePercent(text.substr(0, text.size() - 1));
    if (!p.ok()) return bad();
    return static_cast<double>(*p) / kFullPercentBp;
  }
  // Digits with at most one '.', nothing else (no sign, exponent or space).
  bool digit = false, dot = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      digit = true;
    } else if (c == '.' && !dot) {
      dot = true;
    } else {
      return bad();
    }
  }
  if (!digit) return bad();
  double rate = std::strtod(std::string(text).c_str(), nullptr);
  if (!(rate >= 0 && rate <= 1)) return bad();
  return rate;
}

Result<RampSpec> ParseRampSpec(const RampFields& f) {
  const char* missing = !f.to      ? "--to P"
                        : !f.step  ? "--step S"
                        : !f.every ? "--every DURATION"
                                   : nullptr;
  if (missing != nullptr) {
    return Status::Usage("ramp " + f.route + " needs " + missing +
                         " (see 'strangler ramp --help')");
  }
  Status name = ValidateName("route", f.route);
  if (!name.ok()) return Status::Usage(name.message());
  RampSpec spec;
  spec.route = f.route;
  auto to = ParsePercentArg(*f.to);
  if (!to.ok()) return Status::Usage("--to: " + to.status().message());
  if (*to == 0) return Status::Usage("--to must be above 0%");
  spec.target_bp = *to;
  auto step = ParsePercentArg(*f.step);
  if (!step.ok()) return Status::Usage("--step: " + step.status().message());
  if (*step == 0) return Status::Usage("--step must be above 0%");
  spec.step_bp = *step;
  auto every = ParseDurationMs(*f.every);
  if (!every.ok()) return Status::Usage("--every: " + every.status().message());
  if (*every < 1000) {
    return Status::Usage("--every " + *f.every + " is too short: a window lasts at least 1s");
  }
  spec.every_ms = *every;
  if (f.max_error_rate) {
    auto rate = ParseErrorRate(*f.max_error_rate);
    if (!rate.ok()) return rate.status();
    spec.max_error_rate = *rate;
  }
  if (f.min_requests < 0) return Status::Usage("--min-requests must be 0 or more");
  spec.min_requests = f.min_requests;
  const std::string on_breach_text = f.on_breach.value_or(ToString(OnBreach::kRollback));
  std::optional<OnBreach> on_breach = ParseOnBreach(on_breach_text);
  if (!on_breach) {
    return Status::Usage("bad --on-breach '" + on_breach_text + "': give rollback or freeze");
  }
  spec.on_breach = *on_breach;
  return spec;
}

}  // namespace strangler
