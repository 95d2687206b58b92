// How `strangler audit` prints what audit/ computed: a matched line for
// humans, and group rows as an aligned table or JSON. Pure: callers print
// the strings.
#pragma once

#include <string>
#include <vector>

#include "audit/summary.h"
#include "decisions/decision_line.h"
#include "rules/rules.h"

namespace strangler {

// The table has columns GROUP COUNT SHARE ERRORS P50_MS P99_MS (GROUP named
// after `by`); JSON is an array of objects with the group's field (`route`
// null for the default, `status` a number), `count`, `share`, `error_rate`,
// `p50_ms`, `p99_ms`.
std::string SummaryTable(GroupBy by, const std::vector<GroupRow>& rows);
Json SummaryJson(GroupBy by, const std::vector<GroupRow>& rows);
// One matched line for humans:
// "2026-11-28T04:13:55.123Z 200 GET /api/orders/7 -> new (split, route orders) 1.234ms id=r1"
std::string HumanLine(const DecisionLine& line);

}  // namespace strangler
