#include "safety/ramp.h"

#include <cstddef>
#include <utility>

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

}  // namespace

std::string ToString(OnBreach b) { return NameOf(kOnBreachNames, b); }
std::string ToString(RampState s) { return NameOf(kRampStateNames, s); }
std::optional<OnBreach> ParseOnBreach(std::string_view text) {
  return ValueOf(kOnBreachNames, text);
}
std::optional<RampState> ParseRampState(std::string_view text) {
  return ValueOf(kRampStateNames, text);
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

}  // namespace strangler
