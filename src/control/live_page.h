// GET /api/v1/live (and so `strangler status`): each route's last minute as
// the running router saw it (PRODUCT.md "Operating a running router"). Counts
// come from the workers' live windows (metrics/live_window.h) and the
// mirror's; the configured side from the current snapshot. Call from any
// thread but a data-plane worker's.
#pragma once

#include "rules/rules.h"

namespace strangler {

class Proxy;

// {"window_s", "ruleset", "generated_at", "routes": [{"route", "to", "else",
// "percent", "requests", "observed_share", "fallbacks", "sides": {"to",
// "else"}: {"backend", "requests", "errors_5xx", "error_rate", "p50_ms",
// "p99_ms"}, "mirror": null | {"backend", "compared", "equal", "parity",
// "failed", "dropped"}}]}. Percentages (share, error rate, parity) are
// 0..100, null when nothing was counted; latencies are the upper bound of
// the histogram bucket the quantile falls in (buckets about 19% wide).
Json RenderLive(Proxy& proxy);

}  // namespace strangler
