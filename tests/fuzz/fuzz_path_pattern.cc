// Fuzzes ParsePathPattern (the --path syntax) and NormalizePath. A pattern
// that parses must compile in a one-route rule set, and Decide() must agree
// with Explain() on a few fixed paths and on the input as a path.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.h"

using namespace strangler;
using namespace strangler::fuzz;

namespace {

void CheckNormalize(std::string_view raw) {
  std::string scratch;
  std::string_view n = NormalizePath(raw, &scratch);
  FUZZ_CHECK(!n.empty() || raw.empty());
  FUZZ_CHECK(n.size() <= raw.size() || raw.empty());
  if (!raw.empty() && raw[0] == '/') {
    FUZZ_CHECK(n[0] == '/');
    // Not checked: idempotence. Decoding is one pass, so "/%7%33" becomes
    // "/%73", which a second pass would decode again (by design; see
    // tests/fuzz_regressions_test.cc). No dot segments remain.
    std::string copy(n);
    FUZZ_CHECK(copy.find("/./") == std::string::npos);
    FUZZ_CHECK(copy.find("/../") == std::string::npos);
    FUZZ_CHECK(copy.size() < 2 || copy.compare(copy.size() - 2, 2, "/.") != 0);
    FUZZ_CHECK(copy.size() < 3 || copy.compare(copy.size() - 3, 3, "/..") != 0);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckNormalize(text);

  auto parsed = ParsePathPattern(text);
  if (!parsed.ok()) return 0;
  const PathPattern& p = parsed.value();
  if (p.kind == PathKind::kNone) FUZZ_CHECK(text.empty());
  FUZZ_CHECK(p.literal_chars >= 0);

  RuleSet rules;
  rules.backends = FixedBackends();
  Route r;
  r.name = "r";
  r.to = "orders";
  r.path = std::string(text);
  rules.routes.push_back(r);
  // A second, overlapping route so the trie has more than one entry.
  Route r2 = r;
  r2.name = "r2";
  r2.to = "users";
  r2.path = "/api";
  rules.routes.push_back(r2);
  auto table = RouteTable::Compile(rules);
  FUZZ_CHECK(table.ok());  // ValidateRoute accepted the same pattern

  static const char* const kPaths[] = {
      "/", "", "/api", "/api/", "/api/orders", "/api/orders/7", "/static/a/b.css",
      "/health", "//", "/a//b", "/x/y/z/w/v",
  };
  OwnedRequest req;
  for (const char* path : kPaths) {
    req.target = path;
    CheckAgreement(*table.value(), req.Build(), 42);
  }
  // The pattern's own text as a request path (a literal pattern should match it).
  req.target = std::string(text);
  const RequestView& v = req.Build();
  CheckAgreement(*table.value(), v, 7);
  // An exact or prefix pattern matches its own literal text as a path, when
  // that text is already a normalised path without a query.
  if (p.kind == PathKind::kExact || p.kind == PathKind::kPrefix) {
    std::string literal(p.kind == PathKind::kExact ? text.substr(1) : text);
    req.target = literal;
    const RequestView& lv = req.Build();
    if (literal.find('?') == std::string::npos && lv.path == literal) {
      FUZZ_CHECK(table.value()->Decide(lv, 1).route != -1);
    }
  }
  return 0;
}
