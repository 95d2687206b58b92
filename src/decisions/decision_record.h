// The decision-log line's one schema: the fields of a line, their names and
// the order they are written in. decision_line.h writes a DecisionRecord as a
// line and reads a line back into one; nothing else spells a field's name.
// A plain value: the views must outlive it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace strangler {

struct DecisionRecord {
  // Request start, ms since the Unix epoch (UTC); -1 read from a line without a valid ts.
  int64_t ts_ms = 0;
  std::string_view request_id;
  std::string_view method;
  std::string_view path;
  std::string_view route;  // "" -> null (no route matched: the default backend)
  std::string_view backend;  // "" -> null (the router's own answer: reason "refused")
  std::string_view reason;
  int bucket = -1;  // -1 -> null
  int status = 0;
  double upstream_ms = 0;
  double total_ms = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  std::string_view client;
  int64_t ruleset = 0;
  std::string_view fallback;  // why --to was left (reason "fallback"); "" -> no field
  double queue_ms = -1;  // time waited for a connection under --max-conns; < 0 -> no field
  // "all_down": every instance of the backend was out of rotation, so the
  // request went to them in turn anyway (panic mode); "" -> no field.
  std::string_view instances;
};

// The fields of a line, in the order a line holds them.
enum class DecisionField {
  kTs,
  kRequestId,
  kMethod,
  kPath,
  kRoute,
  kBackend,
  kReason,
  kBucket,
  kStatus,
  kUpstreamMs,
  kTotalMs,
  kBytesIn,
  kBytesOut,
  kClient,
  kRuleset,
  kFallback,
  kQueueMs,
  kInstances,
};
inline constexpr size_t kDecisionFieldCount = 18;
static_assert(static_cast<size_t>(DecisionField::kInstances) + 1 == kDecisionFieldCount);

// The names of the fields in a line, by DecisionField.
inline constexpr std::array<std::string_view, kDecisionFieldCount> kDecisionFieldNames = {
    "ts",     "request_id",  "method",   "path",     "route",     "backend", "reason",  "bucket",
    "status", "upstream_ms", "total_ms", "bytes_in", "bytes_out", "client",  "ruleset", "fallback",
    "queue_ms", "instances",
};

}  // namespace strangler
