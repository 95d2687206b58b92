// The rule model: backends and routes as operators write them, with the
// parsers that validate each field. Pure values; no I/O, no sockets, no SQL.
// Compiled forms (tries, RE2 objects) live in route_table.h.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/status.h"

namespace strangler {

using Json = nlohmann::json;

inline constexpr int kDefaultTimeoutMs = 30000;
inline constexpr int kDefaultConnectTimeoutMs = 2000;
inline constexpr int kDefaultQueueTimeoutMs = 5000;
inline constexpr int kDefaultReuseQuietMs = 1;
inline constexpr int kDefaultEjectAfter = 5;
inline constexpr int kDefaultEjectForMs = 10000;
inline constexpr int kMaxEjectForMs = 5 * 60 * 1000;  // also the cap of the doubling
inline constexpr int kDefaultHealthEveryMs = 5000;
inline constexpr int kFullPercentBp = 10000;  // 100.00 % in basis points
inline constexpr int kDefaultKeepDiffs = 100;
inline constexpr int kMaxKeepDiffs = 10000;

struct Backend {
  std::string name;
  std::vector<std::string> urls;  // http[s]://host:port[/base-path], used in turn
  bool is_default = false;
  int timeout_ms = kDefaultTimeoutMs;  // the whole answer, from the request sent
  // Protecting the backend (PRODUCT.md "Backends in production"): a connect
  // must complete within connect_timeout_ms; each instance takes at most
  // max_conns connections (0: no cap); a request over the cap waits in a
  // FIFO queue for at most queue_timeout_ms, and at most max_queue requests
  // wait (0: no bound).
  int connect_timeout_ms = kDefaultConnectTimeoutMs;
  int max_conns = 0;
  int max_queue = 0;
  int queue_timeout_ms = kDefaultQueueTimeoutMs;
  // A pooled connection is reused once it has been quiet this long since
  // its answer (0: at once, for a backend trusted never to write past one).
  int reuse_quiet_ms = kDefaultReuseQuietMs;
  // Passive ejection: eject_after consecutive connection failures, resets or
  // timeouts take an instance out of rotation for eject_for_ms, doubling
  // each time it fails again once back, at most kMaxEjectForMs (0: never).
  int eject_after = kDefaultEjectAfter;
  int eject_for_ms = kDefaultEjectForMs;
  // Active checks: GET health_path on each instance every health_every_ms
  // ("": none). 3 failing checks in a row take an instance out of rotation,
  // 2 passing ones bring it back.
  std::string health_path{};
  int health_every_ms = kDefaultHealthEveryMs;
  // https:// instances: certificates are checked against the system's CAs,
  // or only ca_file's when set; not at all with tls_insecure.
  std::string ca_file{};
  bool tls_insecure = false;
};

// One instance URL of a backend, split into what the forwarder needs.
struct Url {
  std::string host;       // name or address, without brackets for IPv6
  uint16_t port = 80;     // 443 for https when none is given
  bool tls = false;       // https://
  std::string base_path;  // "" or "/x/y" (no trailing slash)
};

struct Route {
  std::string name;
  std::string to;
  std::string else_backend;          // "" = the default backend
  std::string path;                  // as written; "" = any path
  std::vector<std::string> methods;  // upper case; empty = any
  std::vector<std::string> headers;  // SPEC strings, see ParseMatchSpec
  std::vector<std::string> query;
  std::vector<std::string> cookies;
  int percent_bp = kFullPercentBp;   // 0..10000
  std::string sticky;                // "" = random; header:N cookie:N query:N ip
  std::string salt;                  // "" = the route's name
  int priority = 0;
  bool enabled = true;
  // Migrating safely: when `to` fails before any byte of its answer reached
  // the client, an idempotent request (GET, HEAD, OPTIONS) without a body is
  // sent to the else backend instead. fallback_on_5xx also counts a 5xx
  // answer as a failure (and implies fallback).
  bool fallback = false;
  bool fallback_on_5xx = false;
  // Mirror and compare: a copy of matched requests (GET, HEAD, OPTIONS unless
  // mirror_writes; mirror_percent_bp of them) goes to `mirror` off the request
  // path; its answer is compared with the one the client got.
  std::string mirror;                        // "" = no mirror
  int mirror_percent_bp = kFullPercentBp;
  bool mirror_writes = false;
  std::vector<std::string> compare_headers;  // header names also compared
  std::vector<std::string> ignore_fields;    // JSON paths left out: a.b[].c
  int keep_diffs = kDefaultKeepDiffs;        // mismatches kept in the store

  const std::string& effective_salt() const { return salt.empty() ? name : salt; }
  // Backends the route names: to, else (when set), mirror (when set).
  std::vector<const std::string*> backend_refs() const {
    std::vector<const std::string*> refs{&to};
    if (!else_backend.empty()) refs.push_back(&else_backend);
    if (!mirror.empty()) refs.push_back(&mirror);
    return refs;
  }
};

// Everything a snapshot is compiled from, read in one transaction.
struct RuleSet {
  std::vector<Backend> backends;
  std::vector<Route> routes;
  int64_t version = 0;  // the store's ruleset version; logged as `ruleset`
};

// --- field parsers ---------------------------------------------------------

enum class PathKind { kNone, kExact, kPrefix, kGlob, kRegex };

// A parsed --path. For exact/prefix/glob, `segments` are the pieces between
// slashes ("*" and "**" are wildcards only in globs); for regex, `regex` holds
// the RE2 source.
struct PathPattern {
  PathKind kind = PathKind::kNone;
  std::vector<std::string> segments;
  std::string regex;
  int literal_chars = 0;  // specificity among prefix/glob patterns
};
Result<PathPattern> ParsePathPattern(std::string_view text);

enum class SpecOp { kEquals, kRegex, kPresent, kAbsent };
struct MatchSpec {
  std::string name;
  SpecOp op = SpecOp::kPresent;
  std::string value;  // equals value or regex source
};
// `Name=value`, `Name~regex`, `Name`, `!Name`.
Result<MatchSpec> ParseMatchSpec(std::string_view text);

enum class StickyKind { kNone, kHeader, kCookie, kQuery, kIp };
struct Sticky {
  StickyKind kind = StickyKind::kNone;
  std::string name;
};
Result<Sticky> ParseSticky(std::string_view text);

// "30", "12.5", "0.25" -> basis points. Refuses <0, >100, >2 decimals.
Result<int> ParsePercent(std::string_view text);
Result<int> PercentFromJson(const Json& j);
std::string FormatPercent(int bp);  // 3000 -> "30", 1250 -> "12.5"
Json PercentJson(int bp);           // 3000 -> 30, 1250 -> 12.5 (as rule files write it)

Status ValidateName(std::string_view what, std::string_view name);
Result<Url> ParseUrl(std::string_view text);
// ParseUrl, and a base path of plain segments only (RFC 3986 path
// characters, %XX of other bytes than '/', '.', '\' and controls; no empty,
// '.' or '..' segment; no ';' or '\'). For URLs being written: a store
// written before this check keeps loading.
Status CheckNewBackendUrl(std::string_view text);
Result<std::string> ParseMethod(std::string_view text);  // token, upper-cased

// A --ignore-field path into a JSON body, for mirror comparisons.
struct IgnoreField {
  static constexpr std::string_view kEveryElement = "[]";
  std::string text;                // as written, for messages
  std::vector<std::string> steps;  // "items[].price" -> {"items", "[]", "price"}
};
// Grammar: dot-separated keys, each optionally followed by one or more "[]";
// the path may also start with "[]" (a top-level array: "[].id"). A path that
// ends in "[]" ignores every element, so only the array's length still counts.
// Refuses anything else with a usage Status naming the text.
Result<IgnoreField> ParseIgnoreField(std::string_view text);

// Each checks every field of one object (not references between objects).
Status ValidateBackend(const Backend& b);
Status ValidateRoute(const Route& r);
// Whole-set checks: names unique, references resolve, exactly one default.
Status ValidateRuleSet(const RuleSet& rules);

// --- JSON (rule files, --json output, history before/after) ---------------
// A backend's options (every field but name, urls, default and timeout_ms)
// appear only when they differ from their defaults, so that objects written
// before an option existed read and compare the same.
Json ToJson(const Backend& b);
Json ToJson(const Route& r);
// Omitted fields take the CLI's defaults; unknown fields are refused.
Result<Backend> BackendFromJson(const Json& j);
Result<Route> RouteFromJson(const Json& j);
// The JSON fields of a backend and of a route, in export order. The readers
// above take exactly these; rule files and `export` use the same lists.
const std::vector<std::string>& BackendFields();
const std::vector<std::string>& RouteFields();

// A backend's options alone, as the store keeps them in one column
// (backends.options): BackendOptionsJson has those that differ from their
// defaults; ReadBackendOptions sets the options such an object holds (the
// others are left as they are) and refuses a field that is not an option.
// Neither validates (ValidateBackend does).
const std::vector<std::string>& BackendOptionFields();
Json BackendOptionsJson(const Backend& b);
Status ReadBackendOptions(const Json& j, Backend* b);

}  // namespace strangler
