// Fuzzes the rule-file reader: the input as JSON; when it is an object with
// "backends" / "routes" arrays, every element goes through BackendFromJson /
// RouteFromJson, the result through ValidateRuleSet and RouteTable::Compile,
// and one request through Decide() and Explain(). Also checks that ToJson of
// what was read reads back to the same object. The input also goes through
// ParseRuleFile: a file it accepts compiles,
// exports and reads back to the same objects, and plans no writes against
// itself.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "fuzz_common.h"
#include "rules/rule_file.h"

using namespace strangler;
using namespace strangler::fuzz;

namespace {

void CheckRoundTrip(const Backend& b) {
  Json j = ToJson(b);
  auto again = BackendFromJson(j);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(ToJson(again.value()) == j);
}

void CheckRoundTrip(const Route& r) {
  Json j = ToJson(r);
  auto again = RouteFromJson(j);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(ToJson(again.value()) == j);
}

bool SameObjects(const RuleFile& a, const RuleFile& b) {
  if (a.backends.size() != b.backends.size() || a.routes.size() != b.routes.size()) return false;
  // ExportRuleFile sorts by name; compare as sets keyed by name.
  auto key = [](const auto& v) {
    std::vector<std::pair<std::string, Json>> out;
    for (const auto& o : v) out.emplace_back(o.name, ToJson(o));
    std::sort(out.begin(), out.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    return out;
  };
  return key(a.backends) == key(b.backends) && key(a.routes) == key(b.routes);
}

// Finding (tests/fuzz_regressions_test.cc, fixed in 345231c): ParseRuleFile
// caught only json::parse_error, so a number literal out of double range
// ("1e999") escaped as json::out_of_range. True fuzzes past it.
constexpr bool kTolerateNumberOverflow = false;

void CheckRuleFile(std::string_view text) {
  std::vector<std::string> problems;
  RuleFile file;
  try {
    file = ParseRuleFile(text, &problems);
  } catch (const Json::out_of_range&) {
    if (!kTolerateNumberOverflow) throw;
    return;
  }
  for (const std::string& p : problems) FUZZ_CHECK(!p.empty());
  if (!problems.empty()) return;
  RuleSet rules;
  rules.backends = file.backends;
  rules.routes = file.routes;
  FUZZ_CHECK(ValidateRuleSet(rules).ok());
  if (!rules.backends.empty()) FUZZ_CHECK(RouteTable::Compile(rules).ok());

  std::string exported = ExportRuleFile(rules);
  std::vector<std::string> problems2;
  RuleFile again = ParseRuleFile(exported, &problems2);
  FUZZ_CHECK(problems2.empty());
  FUZZ_CHECK(SameObjects(file, again));

  ApplyPlan same = PlanApply(rules, file, Prune::kYes);
  FUZZ_CHECK(!same.has_writes());
  ApplyPlan fresh = PlanApply(RuleSet{}, file, Prune::kYes);
  FUZZ_CHECK(fresh.adds == static_cast<int>(file.backends.size() + file.routes.size()));
  (void)FormatPlan(fresh);
  (void)PlanJson(fresh).dump();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  CheckRuleFile(text);
  Json doc = Json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return 0;

  RuleSet rules;
  rules.version = 1;
  bool complete = true;  // every element read
  auto backends = doc.find("backends");
  if (backends != doc.end() && backends->is_array()) {
    for (const Json& j : *backends) {
      auto b = BackendFromJson(j);
      if (!b.ok()) {
        complete = false;
        continue;
      }
      if (ValidateBackend(b.value()).ok()) CheckRoundTrip(b.value());
      rules.backends.push_back(std::move(b.value()));
    }
  }
  auto routes = doc.find("routes");
  if (routes != doc.end() && routes->is_array()) {
    for (const Json& j : *routes) {
      auto r = RouteFromJson(j);
      if (!r.ok()) {
        complete = false;
        continue;
      }
      if (ValidateRoute(r.value()).ok()) CheckRoundTrip(r.value());
      rules.routes.push_back(std::move(r.value()));
    }
  }
  (void)complete;

  Status valid = ValidateRuleSet(rules);
  auto table = RouteTable::Compile(rules);
  if (!valid.ok() || rules.backends.empty()) {
    FUZZ_CHECK(!table.ok());
    return 0;
  }
  FUZZ_CHECK(table.ok());

  // One request built from the "request" member when there is one.
  OwnedRequest req;
  req.target = "/api/orders/7?user=42&debug=1";
  req.headers = {{"Host", "example.com"}, {"X-Beta", "1"}, {"Cookie", "uid=42; beta=yes"}};
  auto rq = doc.find("request");
  if (rq != doc.end() && rq->is_object()) {
    auto m = rq->find("method");
    if (m != rq->end() && m->is_string()) req.method = m->get<std::string>();
    auto t = rq->find("target");
    if (t != rq->end() && t->is_string()) req.target = t->get<std::string>();
    auto h = rq->find("headers");
    if (h != rq->end() && h->is_object()) {
      req.headers.clear();
      for (auto it = h->begin(); it != h->end(); ++it) {
        if (it.value().is_string()) req.headers.emplace_back(it.key(), it.value().get<std::string>());
      }
    }
  }
  const RouteTable& t = *table.value();
  CheckAgreement(t, req.Build(), 1234);
  CheckAgreement(t, req.Build(), 0);
  return 0;
}
