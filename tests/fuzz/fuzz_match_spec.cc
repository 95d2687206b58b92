// Fuzzes the small field parsers: ParseMatchSpec (--header/--query/--cookie),
// ParseSticky, ParsePercent (+ FormatPercent round trip), ParseMethod,
// ParseUrl and ValidateName, each on every line of the input. A spec that
// parses must compile as a header, query and cookie condition, and Decide()
// must agree with Explain() on a request that carries the spec's name.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.h"

using namespace strangler;
using namespace strangler::fuzz;

namespace {

void CheckSpec(std::string_view line) {
  auto spec = ParseMatchSpec(line);
  if (!spec.ok()) return;
  const MatchSpec& m = spec.value();
  FUZZ_CHECK(!m.name.empty());
  FUZZ_CHECK(m.name.find('=') == std::string::npos && m.name.find('~') == std::string::npos);

  RuleSet rules;
  rules.backends = FixedBackends();
  Route r;
  r.name = "spec";
  r.to = "orders";
  r.headers = {std::string(line)};
  r.query = {std::string(line)};
  r.cookies = {std::string(line)};
  rules.routes.push_back(r);
  Route sticky = r;
  sticky.name = "sticky";
  sticky.headers.clear();
  sticky.percent_bp = 5000;
  sticky.sticky = "header:" + m.name;
  if (!ParseSticky(sticky.sticky).ok()) sticky.sticky.clear();
  rules.routes.push_back(sticky);
  auto table = RouteTable::Compile(rules);
  FUZZ_CHECK(table.ok());

  OwnedRequest req;
  std::string value = m.op == SpecOp::kEquals ? m.value : "x";
  req.target = "/p?" + m.name + "=" + value;
  req.headers = {{m.name, value}, {"Cookie", m.name + "=" + value}};
  CheckAgreement(*table.value(), req.Build(), 9999);
  req.headers.clear();
  req.target = "/p";
  CheckAgreement(*table.value(), req.Build(), 0);
}

void CheckPercent(std::string_view line) {
  auto bp = ParsePercent(line);
  if (!bp.ok()) return;
  FUZZ_CHECK(bp.value() >= 0 && bp.value() <= kFullPercentBp);
  std::string formatted = FormatPercent(bp.value());
  auto again = ParsePercent(formatted);
  FUZZ_CHECK(again.ok() && again.value() == bp.value());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  for (std::string_view line : SplitLines(text)) {
    CheckSpec(line);
    CheckPercent(line);
    auto sticky = ParseSticky(line);
    if (sticky.ok() && sticky.value().kind != StickyKind::kNone &&
        sticky.value().kind != StickyKind::kIp) {
      FUZZ_CHECK(!sticky.value().name.empty());
    }
    auto method = ParseMethod(line);
    if (method.ok()) FUZZ_CHECK(!method.value().empty());
    (void)ParseUrl(line);
    (void)ValidateName("route", line);
    // The percent as a JSON value, the way rule files carry it.
    Json j = Json::parse(line, nullptr, false);
    if (!j.is_discarded()) (void)PercentFromJson(j);
  }
  return 0;
}
