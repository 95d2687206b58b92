#include "control/explain.h"

#include <random>

#include "base/text.h"
#include "store/store.h"

namespace strangler {
namespace {

uint64_t RandomDraw() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ static_cast<uint64_t>(rd());
}

}  // namespace

Result<ExplainTarget> ParseExplainTarget(const std::vector<std::string>& positionals) {
  ExplainTarget t;
  std::string target;
  if (positionals.size() == 1) {
    target = positionals[0];
  } else if (positionals.size() == 2) {
    auto m = ParseMethod(positionals[0]);
    if (!m.ok() || positionals[0].empty()) {
      return Status::Usage("bad METHOD '" + positionals[0] +
                           "'; give an HTTP method such as GET or POST before the path");
    }
    t.method = m.value();
    target = positionals[1];
  } else {
    return Status::Usage(
        "explain takes [METHOD] PATH[?QUERY]; e.g. strangler explain POST "
        "/api/orders?v=2");
  }
  if (target.empty() || target[0] != '/') {
    return Status::Usage("bad PATH '" + target + "': it must start with '/'; e.g. /api/orders/7");
  }
  size_t q = target.find('?');
  if (q == std::string::npos) {
    t.path = target;
  } else {
    t.path = target.substr(0, q);
    t.query = target.substr(q + 1);
  }
  return t;
}

Result<std::pair<std::string, std::string>> ParseHeaderArg(std::string_view text) {
  size_t colon = text.find(':');
  std::string_view name = colon == std::string_view::npos ? text : Trim(text.substr(0, colon));
  bool token = !name.empty();
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
    token = token && ok;
  }
  if (colon == std::string_view::npos || !token) {
    return Status::Usage("bad -H '" + std::string(text) +
                         "'; give a header as 'Name: value', e.g. -H 'X-User-Id: 42'");
  }
  return std::make_pair(std::string(name), std::string(Trim(text.substr(colon + 1))));
}

Json ExplanationJson(const RouteTable& table, const Explanation& e, std::string_view method,
                     std::string_view path) {
  const Decision& d = e.decision;
  Json j = Json::object();
  j["method"] = std::string(method);
  j["path"] = std::string(path);
  j["route"] = d.route >= 0 && d.route < static_cast<int>(table.routes().size())
                   ? Json(table.routes()[d.route].name)
                   : Json();
  j["backend"] = d.backend >= 0 && d.backend < static_cast<int>(table.backends().size())
                     ? Json(table.backends()[d.backend].name)
                     : Json();
  j["reason"] = std::string(ReasonName(d.reason));
  j["bucket"] = d.bucket >= 0 ? Json(d.bucket) : Json();
  j["ruleset"] = table.version();
  Json tried = Json::array();
  for (const auto& t : e.tried) {
    tried.push_back({{"route", t.route}, {"matched", t.matched}, {"why", t.why}});
  }
  j["tried"] = tried;
  return j;
}

Result<ExplainOutcome> ExplainStored(Store& store, const ExplainQuery& q) {
  auto rules = store.Load();
  if (!rules.ok()) return rules.status();
  auto table = RouteTable::Compile(rules.value());
  if (!table.ok()) {
    return WithHint(table.status(),
                    "the stored rules do not compile; fix them with 'strangler route set' or "
                    "'strangler backend add'");
  }
  const RouteTable& t = *table.value();

  std::string scratch;
  std::string_view path = NormalizePath(q.target.path, &scratch);
  std::vector<HeaderView> views;
  views.reserve(q.headers.size());
  for (const auto& [name, value] : q.headers) views.push_back(HeaderView{name, value});
  RequestView view;
  view.method = q.target.method;
  view.path = path;
  view.query = q.target.query;
  view.headers = views.data();
  view.header_count = views.size();
  view.client_ip = q.ip;

  Explanation e = t.Explain(view, RandomDraw());
  ExplainOutcome out;
  out.json = ExplanationJson(t, e, q.target.method, path);
  const Decision& d = e.decision;
  if (d.route >= 0 && d.bucket >= 0) {
    const Route& r = t.routes()[d.route];
    std::string else_name =
        r.else_backend.empty() ? t.backends()[t.default_backend()].name : r.else_backend;
    out.split =
        "buckets below " + std::to_string(r.percent_bp) + " (" + FormatPercent(r.percent_bp) +
        "%) go to " + r.to + ", the rest to " + else_name + "; bucket " +
        (r.sticky.empty() ? "drawn at random" : "from " + r.sticky + " (at random when absent)");
  }
  return out;
}

}  // namespace strangler
