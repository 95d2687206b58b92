// GET /metrics of the admin listener: the running router as Prometheus text
// (PRODUCT.md "Operating a running router"). Counts come from the workers'
// shards (RequestMetrics), the mirror's and the log's totals; gauges from
// the current snapshot and the instances' state. Labels are route and
// backend names only (bounded), never paths or users. Call from any thread
// but a data-plane worker's.
#pragma once

#include <cstdint>
#include <string>

namespace strangler {

class DecisionLog;
class Proxy;

std::string RenderMetrics(Proxy& proxy, const DecisionLog& log, uint64_t reload_errors);

}  // namespace strangler
