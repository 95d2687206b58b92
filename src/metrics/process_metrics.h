// The standard process_* metrics every Prometheus client library exports
// (CPU seconds, resident and virtual memory, open and allowed descriptors,
// start time), read from /proc/self at scrape time. Linux only.
#pragma once

#include "metrics/exposition.h"

namespace strangler {

// Appends the process_* families to *out. A file that cannot be read leaves
// its families out rather than report a false zero.
void AppendProcessMetrics(Exposition* out);

}  // namespace strangler
