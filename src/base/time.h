// Clock and time formats shared by the rooms: wall-clock milliseconds,
// RFC 3339 timestamps (written and read) and durations such as "15m" or
// "1h30m". Pure functions; all are thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/status.h"

namespace strangler {

// Wall-clock time, ms since the Unix epoch (UTC).
int64_t NowUnixMs();

// Appends "2026-11-28T04:13:55.123Z" (UTC, milliseconds) to *out. Fast
// enough for the request path: gmtime runs once per second per thread.
void AppendRfc3339Ms(int64_t ts_ms, std::string* out);

// RFC 3339 ("2026-11-28T04:13:55.123Z", "2026-11-28T06:13:55+02:00",
// "2026-11-28 04:13:55Z") or a date ("2026-11-28", midnight UTC) -> ms since
// the epoch. Usage error otherwise.
Result<int64_t> ParseRfc3339Ms(std::string_view text);

// "15m", "2h", "90s", "500ms", "1d", "1h30m" -> milliseconds. Usage error
// otherwise.
Result<int64_t> ParseDurationMs(std::string_view text);
// 1500 -> "1500ms", 30000 -> "30s", 5400000 -> "1h30m": what ParseDurationMs
// reads back.
std::string FormatDurationMs(int64_t ms);

// A --since/--until value: a duration (that long before now_ms) or an
// RFC 3339 time. Usage error otherwise.
Result<int64_t> ParseTimeArg(std::string_view text, int64_t now_ms);

}  // namespace strangler
