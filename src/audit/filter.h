// Which decision lines `strangler audit` keeps: a time window, a route, a
// backend, a status code or class, a path prefix and a request id; every
// condition given must hold. A plain value: once built, safe to share.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "base/status.h"
#include "decisions/decision_record.h"

namespace strangler {

// How audit names the requests no route matched (route null): the value of
// --route for them, and their group with --by route.
inline constexpr const char* kDefaultGroup = "(default)";
// The router's own answers (reason "refused": no route, backend null): their
// group with --by route and with --by backend, and their --route/--backend.
inline constexpr const char* kRefusedGroup = "(refused)";
inline constexpr const char* kRouterGroup = "(router)";
inline constexpr std::string_view kRefusedReason = "refused";

// The group a line falls in, by route or by backend.
std::string_view RouteGroup(const DecisionRecord& r);
std::string_view BackendGroup(const DecisionRecord& r);

struct AuditFilter {
  int64_t since_ms = std::numeric_limits<int64_t>::min();  // ts >= since
  int64_t until_ms = std::numeric_limits<int64_t>::max();  // ts < until
  std::optional<std::string> route;    // as RouteGroup names it
  std::optional<std::string> backend;  // as BackendGroup names it
  std::optional<std::string> path_prefix;  // segment prefix, as a route's --path
  std::optional<std::string> request_id;   // the id, or a prefix of it
  int status_lo = 0;  // inclusive range; 0/0 = any
  int status_hi = 0;

  bool Matches(const DecisionRecord& r) const;
};

// "404" -> [404, 404]; "5xx" -> [500, 599]. Usage error otherwise.
Status ParseStatusFilter(std::string_view text, AuditFilter* f);
// `/api/orders` matches /api/orders and /api/orders/7, not /api/ordersX;
// a prefix ending in '/' matches anything below it.
bool PathHasPrefix(std::string_view path, std::string_view prefix);

}  // namespace strangler
