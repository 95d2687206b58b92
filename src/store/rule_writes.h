// Validated writes of backends and routes inside a Write: the checks
// (store.h, "Validated writes"), the rows and their history rows. Shared by
// the Store's own writes, applying a rule file, reverts and ramp steps.
// Private to src/store/; not thread-safe (one connection).
#pragma once

#include <string>
#include <string_view>

#include "base/status.h"
#include "rules/rules.h"
#include "store/write.h"

namespace strangler {
namespace store_internal {

// Each checks and writes as the Store's write of the same name (store.h). On
// failure it may have written part: the caller returns the error and the
// Write's transaction rolls back. A write that changes nothing records nothing.
Status AddBackendIn(Write* w, Backend b);
Status SetBackendIn(Write* w, const Backend& b);
Status RemoveBackendIn(Write* w, const std::string& name);
Status AddRouteIn(Write* w, const Route& requested);
// `action` names the history row: route.set, route.enable or route.disable.
Status SetRouteIn(Write* w, const Route& requested, std::string_view action);
Status RemoveRouteIn(Write* w, const std::string& name);

}  // namespace store_internal
}  // namespace strangler
