// Helpers shared by the libFuzzer targets in this directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "rules/route_table.h"
#include "rules/rules.h"

namespace strangler {
namespace fuzz {

// Fails the run (libFuzzer records the input) when an invariant is broken.
// (A debugging harness may define its own FUZZ_CHECK first.)
#ifndef FUZZ_CHECK
#define FUZZ_CHECK(cond)           \
  do {                             \
    if (!(cond)) __builtin_trap(); \
  } while (0)
#endif

inline std::vector<std::string_view> SplitLines(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    size_t nl = s.find('\n');
    out.push_back(s.substr(0, nl));
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return out;
}

// Three backends; "legacy" is the default.
inline std::vector<Backend> FixedBackends() {
  std::vector<Backend> b(3);
  b[0].name = "legacy";
  b[0].urls = {"http://127.0.0.1:9001"};
  b[0].is_default = true;
  b[1].name = "orders";
  b[1].urls = {"http://127.0.0.1:9002"};
  b[2].name = "users";
  b[2].urls = {"http://127.0.0.1:9003/base"};
  return b;
}

// Decide() and Explain() must pick the same route, backend, reason and
// bucket for the same request and random value.
inline void CheckAgreement(const RouteTable& t, const RequestView& req, uint64_t random) {
  Decision d = t.Decide(req, random);
  Explanation e = t.Explain(req, random);
  FUZZ_CHECK(d.route == e.decision.route);
  FUZZ_CHECK(d.backend == e.decision.backend);
  FUZZ_CHECK(d.reason == e.decision.reason);
  FUZZ_CHECK(d.bucket == e.decision.bucket);
  FUZZ_CHECK(d.backend >= 0 && d.backend < static_cast<int>(t.backends().size()));
  FUZZ_CHECK(d.route >= -1 && d.route < static_cast<int>(t.routes().size()));
  FUZZ_CHECK(d.bucket >= -1 && d.bucket < kFullPercentBp);
  if (d.route == -1) FUZZ_CHECK(d.backend == t.default_backend() && d.reason == Reason::kDefault);
  if (!e.tried.empty() && d.route >= 0) FUZZ_CHECK(e.tried.back().matched);
  (void)ReasonName(d.reason);
}

// A request from a method, a raw target (path[?query]) and headers; the
// path is normalised as the proxy does. Keeps its strings alive.
struct OwnedRequest {
  std::string method = "GET";
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string client_ip = "10.0.0.1";

  std::string scratch;
  std::vector<HeaderView> views;
  RequestView view;

  const RequestView& Build() {
    std::string_view t = target;
    size_t q = t.find('?');
    view.method = method;
    view.path = NormalizePath(t.substr(0, q), &scratch);
    view.query = q == std::string_view::npos ? std::string_view() : t.substr(q + 1);
    views.clear();
    for (const auto& h : headers) views.push_back(HeaderView{h.first, h.second});
    view.headers = views.data();
    view.header_count = views.size();
    view.client_ip = client_ip;
    return view;
  }
};

}  // namespace fuzz
}  // namespace strangler
