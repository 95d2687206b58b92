// RouteTable: the compiled, immutable snapshot of a RuleSet that answers
// "where does this request go?". Built once per store version, then shared
// read-only between threads as std::shared_ptr<const RouteTable>; every const
// member is safe to call concurrently. A request keeps the snapshot it started
// with, so a reload in the middle of a request is harmless.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "rules/request.h"
#include "rules/rules.h"

namespace strangler {

enum class Reason { kDefault, kRoute, kSplit, kFallback, kShadow, kOverride };
std::string_view ReasonName(Reason r);

struct Decision {
  int route = -1;    // index into routes(); -1 = no route matched
  int backend = -1;  // index into backends(); always valid in a decision
  Reason reason = Reason::kDefault;
  int bucket = -1;   // 0..9999 when the route splits (percent < 100); else -1
};

// Why one route did or did not match, for `explain`.
struct RouteTrace {
  std::string route;
  bool matched = false;
  std::string why;  // "path /x does not match prefix /api", "" when matched
};

struct Explanation {
  Decision decision;
  std::vector<RouteTrace> tried;  // in evaluation order, up to the winner
};

class RouteTable {
 public:
  // Fails on an invalid rule set (the caller keeps its previous snapshot).
  static Result<std::shared_ptr<const RouteTable>> Compile(const RuleSet& rules);
  ~RouteTable();

  // Pure: no I/O, no locks. `random` is used only for a split without a
  // sticky key (or whose key the request lacks).
  Decision Decide(const RequestView& req, uint64_t random) const;
  // Same decision as Decide(), walking every enabled route in order and
  // saying why each was passed over.
  Explanation Explain(const RequestView& req, uint64_t random) const;

  const std::vector<Backend>& backends() const { return rules_.backends; }
  const std::vector<Route>& routes() const { return rules_.routes; }  // in evaluation order
  int default_backend() const { return default_backend_; }
  // Where route `route` sends what does not go to `to`: its else backend,
  // or the default (the fallback target of --fallback).
  int ElseBackend(int route) const;
  int64_t version() const { return rules_.version; }

  struct Compiled;  // implementation detail, public for the .cc helpers

 private:
  RouteTable() = default;
  RuleSet rules_;
  int default_backend_ = -1;
  std::unique_ptr<Compiled> compiled_;
};

// FNV-1a 64 over salt, one 0x00 byte, key.
uint64_t Fnv1a64(std::string_view salt, std::string_view key);
// fnv1a64(...) % 10000
int Bucket(std::string_view salt, std::string_view key);

// Routing path from a raw target path, so that no spelling of a path can
// skip the route that names it: percent-encoded unreserved characters
// decoded, %2F, %5C and '\' read as '/', other escapes kept (hex in upper
// case), path parameters (";..." in a segment) dropped, repeated slashes
// merged, dot segments resolved (RFC 3986 5.2.4). "/a//b/" stays
// "/a/b/": a trailing slash is kept. Returns `raw` itself when nothing
// changes; otherwise writes into *scratch and returns a view of it.
// *ambiguous (when given) is set when the path holds ';' or a backslash
// beside a dot segment: backends resolve such paths differently
// ("/admin/..;/x"), so the router refuses them. *dot_segments (when given)
// is set when the path held a "." or ".." segment (spelled in any way).
std::string_view NormalizePath(std::string_view raw, std::string* scratch,
                               bool* ambiguous = nullptr, bool* dot_segments = nullptr);

}  // namespace strangler
