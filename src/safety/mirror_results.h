// Mirror results as values: the running tally per route and a stored
// mismatch. Counted by the mirror, kept by the store, shown by the CLI.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace strangler {

using Json = nlohmann::json;

// --- Mirror comparisons --------------------------------------------------------

// Running totals per route since the first result.
struct MirrorTally {
  int64_t compared = 0, equal = 0;
  int64_t dropped = 0;  // copies not sent: the mirror queue was full
  int64_t failed = 0;   // the mirror refused, timed out or broke

  MirrorTally& operator+=(const MirrorTally& t) {
    compared += t.compared;
    equal += t.equal;
    dropped += t.dropped;
    failed += t.failed;
    return *this;
  }
};

struct DiffStats {
  std::string route;
  MirrorTally tally;
  std::string since, last_at;  // RFC 3339 UTC
};

// A mismatch (or a failed copy) as stored. `result` is ToJson(Comparison)
// (compare.h) or {"error": "..."} for a copy that got no answer.
struct DiffRecord {
  int64_t id = 0;  // assigned by the store
  std::string route, ts, request_id, method, target, primary_backend, mirror_backend;
  Json result;
};

}  // namespace strangler
