// What the stored rules decide for a request, and why: `strangler explain`
// and GET /api/v1/explain (PRODUCT.md "Explaining and auditing"). The rules
// are compiled from the store as serve would compile them; nothing is sent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "rules/route_table.h"
#include "rules/rules.h"

namespace strangler {

class Store;

struct ExplainTarget {
  std::string method = "GET";
  std::string path;   // as given, before normalisation
  std::string query;  // after '?', without it
};
// [METHOD] PATH[?QUERY] -> target. Usage error when PATH does not start
// with '/' or METHOD is not a token.
Result<ExplainTarget> ParseExplainTarget(const std::vector<std::string>& positionals);
// "Name: value" -> {Name, value} (value trimmed). Usage error without ':'.
Result<std::pair<std::string, std::string>> ParseHeaderArg(std::string_view text);

struct ExplainQuery {
  ExplainTarget target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string ip = "127.0.0.1";
};
struct ExplainOutcome {
  Json json;          // ExplanationJson
  std::string split;  // a sentence on the percent split, "" when none applied
};
// Compiles the stored rules and explains `q` against them (a request
// without a sticky key draws its bucket at random, as serve would).
Result<ExplainOutcome> ExplainStored(Store& store, const ExplainQuery& q);

// The decision as the log names it, plus "tried": [{route, matched, why}].
Json ExplanationJson(const RouteTable& table, const Explanation& e, std::string_view method,
                     std::string_view path);

}  // namespace strangler
