// Fuzzes Decide() over fuzzed rules and requests: Decide() (trie walk) and
// Explain() (route-by-route walk) must agree on route, backend, reason and
// bucket. The input is text, one directive per line (readable seeds):
//   rules (the current route is the last `r`; at most 12 routes):
//     r PATH        new route (PATH may be empty = any path)
//     m GET,POST    methods        h SPEC / q SPEC / c SPEC   conditions
//     p PERCENT     s STICKY       t SALT      P PRIORITY (integer)
//     e BACKEND     (else: legacy|orders|users)   o BACKEND (to)   d  (disabled)
//   request:
//     M METHOD      T TARGET (path?query)   H Name: value   I CLIENT-IP   X RANDOM
// A line whose value the field parser refuses is skipped, so most inputs
// give a rule set that compiles.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_common.h"

using namespace strangler;
using namespace strangler::fuzz;

namespace {

constexpr size_t kMaxRoutes = 12;
constexpr size_t kMaxHeaders = 16;

bool IsBackend(std::string_view s) { return s == "legacy" || s == "orders" || s == "users"; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  RuleSet rules;
  rules.backends = FixedBackends();
  OwnedRequest req;
  uint64_t random = 4242;
  static const char* const kTo[] = {"orders", "users", "legacy"};

  for (std::string_view line : SplitLines(text)) {
    if (line.empty()) continue;
    char op = line[0];
    std::string_view arg = line.size() >= 2 ? line.substr(2) : std::string_view();
    Route* cur = rules.routes.empty() ? nullptr : &rules.routes.back();
    switch (op) {
      case 'r':
        if (rules.routes.size() < kMaxRoutes && ParsePathPattern(arg).ok()) {
          Route r;
          r.name = "r" + std::to_string(rules.routes.size());
          r.to = kTo[rules.routes.size() % 3];
          r.path = std::string(arg);
          rules.routes.push_back(std::move(r));
        }
        break;
      case 'm':
        if (cur) {
          cur->methods.clear();
          std::string_view rest = arg;
          while (!rest.empty()) {
            size_t comma = rest.find(',');
            auto m = ParseMethod(rest.substr(0, comma));
            if (m.ok()) cur->methods.push_back(m.value());
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
          }
        }
        break;
      case 'h':
      case 'q':
      case 'c':
        if (cur && ParseMatchSpec(arg).ok()) {
          auto& list = op == 'h' ? cur->headers : op == 'q' ? cur->query : cur->cookies;
          if (list.size() < 4) list.emplace_back(arg);
        }
        break;
      case 'p':
        if (cur) {
          auto bp = ParsePercent(arg);
          if (bp.ok()) cur->percent_bp = bp.value();
        }
        break;
      case 's':
        if (cur && ParseSticky(arg).ok()) cur->sticky = std::string(arg);
        break;
      case 't':
        if (cur) cur->salt = std::string(arg);
        break;
      case 'P':
        if (cur) cur->priority = static_cast<int>(std::strtol(std::string(arg).c_str(), nullptr, 10) % 1000);
        break;
      case 'e':
        if (cur && IsBackend(arg)) cur->else_backend = std::string(arg);
        break;
      case 'o':
        if (cur && IsBackend(arg)) cur->to = std::string(arg);
        break;
      case 'd':
        if (cur) cur->enabled = false;
        break;
      case 'M':
        req.method = std::string(arg);
        break;
      case 'T':
        req.target = std::string(arg);
        break;
      case 'H':
        if (req.headers.size() < kMaxHeaders) {
          size_t colon = arg.find(':');
          std::string_view name = arg.substr(0, colon);
          std::string_view value =
              colon == std::string_view::npos ? std::string_view() : arg.substr(colon + 1);
          while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
          req.headers.emplace_back(std::string(name), std::string(value));
        }
        break;
      case 'I':
        req.client_ip = std::string(arg);
        break;
      case 'X':
        random = std::strtoull(std::string(arg).c_str(), nullptr, 10);
        break;
      default:
        break;
    }
  }

  auto table = RouteTable::Compile(rules);
  FUZZ_CHECK(table.ok());  // every field went through its parser
  const RouteTable& t = *table.value();
  const RequestView& v = req.Build();
  CheckAgreement(t, v, random);
  // The same request with the raw (unnormalised) path, as a client might
  // send one the proxy has not cleaned: still no disagreement.
  std::string_view raw = req.target;
  RequestView raw_view = v;
  raw_view.path = raw.substr(0, raw.find('?'));
  CheckAgreement(t, raw_view, random);
  // A sticky key gives the same bucket whatever the random value.
  Decision a = t.Decide(v, 1);
  Decision b = t.Decide(v, 2);
  FUZZ_CHECK(a.route == b.route);
  if (a.route >= 0) {
    auto sticky = ParseSticky(t.routes()[a.route].sticky);
    FUZZ_CHECK(sticky.ok());
    if (sticky.value().kind == StickyKind::kIp && !v.client_ip.empty()) FUZZ_CHECK(a.bucket == b.bucket);
  }
  return 0;
}
