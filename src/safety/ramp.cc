#include "safety/ramp.h"

#include "rules/rules.h"

namespace strangler {

Json ToJson(const RampCounts& c) {
  return Json{
      {"to_n", c.to_n}, {"to_5xx", c.to_5xx}, {"else_n", c.else_n}, {"else_5xx", c.else_5xx}};
}

Json ToJson(const Ramp& r) {
  return Json{{"route", r.spec.route},
              {"state", r.state},
              {"target", PercentJson(r.spec.target_bp)},
              {"step", PercentJson(r.spec.step_bp)},
              {"every_ms", r.spec.every_ms},
              {"max_error_rate", r.spec.max_error_rate ? Json(*r.spec.max_error_rate) : Json()},
              {"min_requests", r.spec.min_requests},
              {"on_breach", r.spec.on_breach},
              {"steps", r.step},
              {"next_at_ms", r.next_at_ms},
              {"started_at", r.started_at},
              {"updated_at", r.updated_at},
              {"last", ToJson(r.last)},
              {"note", r.note}};
}

}  // namespace strangler
