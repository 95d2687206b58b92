// Response comparison for "mirror and compare": a copy of a request goes to a
// new backend, and its answer is compared with the one the client got from the
// primary backend. Pure functions over captured values: no I/O, no threads, no
// shared state, so everything here is safe to call from any thread.
//
// What is compared: the status, the headers the operator named
// (--compare-header) and the body. The body is compared as JSON values when it
// is JSON (key order, number spelling and --ignore-field paths do not count),
// otherwise as text or as bytes. Headers that are not named never count.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"
#include "rules/rules.h"

namespace strangler {

// The same alias as rules.h, declared here so comparison does not depend on
// the rule model.
using Json = nlohmann::json;

inline constexpr size_t kMaxDiffs = 20;           // diffs listed per comparison
inline constexpr size_t kMaxDiffLineBytes = 200;  // a text diff shows this much of a line
inline constexpr int kMaxJsonDepth = 100;         // deeper bodies are compared as text

// Streaming 64-bit FNV-1a over a body that arrives in pieces. Not a
// cryptographic hash: it only tells two bodies apart.
class BodyHasher {
 public:
  void Update(const void* data, size_t n);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  uint64_t value() const { return hash_; }

 private:
  uint64_t hash_ = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
};

// One captured response. `body` holds at most the capture limit; when the body
// was longer, `truncated` is true and body_bytes/body_hash (BodyHasher over
// every byte) describe the whole body. When `truncated` is false they are not
// read: the whole body is in `body`.
struct CapturedResponse {
  int status = 0;
  // Name as received, value. May hold only the headers named for comparison.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type;  // value of Content-Type, "" if none
  std::string body;          // decoded (no chunk framing), possibly truncated
  bool truncated = false;
  uint64_t body_bytes = 0;
  uint64_t body_hash = 0;
};

// A parsed --ignore-field such as "items[].price". Each step is a key (an
// object member) or kEveryElement (every element of the array there); keys
// are never empty and never contain '.', '[' or ']', so the two cannot be
// confused. A path that meets something else on the way (a missing key, a
// number where an object was expected) ignores nothing there.

// One difference. `where` is "status", "header NAME" (NAME as the operator
// wrote it), "body" (binary or hash comparison), "body line N" (text,
// 1-based) or a JSON path: "$" is the root, "$.items[2].price", and a key that
// is not identifier-like is quoted: $["odd key"]. A side flagged missing had
// nothing there (no such key, element, header or line); its value is null and
// means nothing.
struct FieldDiff {
  std::string where;
  Json primary;
  Json mirror;
  bool primary_missing = false;
  bool mirror_missing = false;
};

struct Comparison {
  bool equal = true;
  // How the body was compared: "json", "text", "binary", or "hash" when a
  // side was truncated (size and hash of the whole body only; --ignore-field
  // cannot apply then). Two empty bodies are "text".
  std::string kind;
  std::vector<FieldDiff> diffs;  // at most kMaxDiffs, in order: status, headers, body
  size_t more = 0;               // differences found beyond those listed
};

struct CompareOptions {
  std::vector<IgnoreField> ignore;   // applied only when the body is compared as JSON
  std::vector<std::string> headers;  // names to compare, case-insensitive
};

Comparison CompareResponses(const CapturedResponse& primary, const CapturedResponse& mirror,
                            const CompareOptions& opts);

// The stored form: {"equal":B,"kind":S,"diffs":[{"where":S,"primary":V,"mirror":V}],"more":N}.
// A missing side is left out of its diff object, so a JSON null stays a value.
Json ToJson(const Comparison& c);
// The inverse of ToJson. Never throws; refuses a malformed document.
Result<Comparison> ComparisonFromJson(const Json& j);

}  // namespace strangler
