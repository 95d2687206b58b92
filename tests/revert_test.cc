// Store::Revert refuses what it cannot do, writing nothing: the object was
// removed or its name taken again since the change, or undoing a default
// would leave the store with none. Each refusal says what to do instead.
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "store/store.h"
#include "test_util.h"

namespace strangler {
namespace {

using testing::TempDir;

const ChangeContext kCtx{"alice", "ticket-7"};

Backend MakeBackend(const std::string& name, int port, bool is_default = false) {
  Backend b;
  b.name = name;
  b.urls = {"http://127.0.0.1:" + std::to_string(port)};
  b.is_default = is_default;
  return b;
}

Route MakeRoute(const std::string& name, const std::string& to, const std::string& path) {
  Route r;
  r.name = name;
  r.to = to;
  r.path = path;
  return r;
}

void Ok(const Status& st) {
  INFO(st.message());
  REQUIRE(st.ok());
}

// The id of the newest change of `name`.
int64_t LastChange(Store& s, const std::string& name) {
  auto h = s.History(name, 1);
  REQUIRE(h.ok());
  REQUIRE(h->size() == 1);
  return h->front().id;
}

// Everything a refused revert must leave as it was.
std::string State(Store& s) {
  auto rules = s.Load();
  REQUIRE(rules.ok());
  Json j;
  for (const Backend& b : rules->backends) j["backends"].push_back(ToJson(b));
  for (const Route& r : rules->routes) j["routes"].push_back(ToJson(r));
  j["version"] = rules->version;
  auto h = s.History("", 0);
  REQUIRE(h.ok());
  j["history"] = h->size();
  return j.dump();
}

TEST_CASE("revert: refused when the object changed since, and nothing is written") {
  struct Case {
    std::string name;
    // Makes the change to revert (returns its id), then what happened since.
    std::function<int64_t(Store&)> change;
    std::function<void(Store&)> since;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"a backend's add, the backend removed since",
       [](Store& s) {
         Ok(s.AddBackend(MakeBackend("b", 9002), kCtx));
         return LastChange(s, "b");
       },
       [](Store& s) { Ok(s.RemoveBackend("b", kCtx)); },
       "backend 'b' no longer exists (removed since)"},
      {"a backend's removal, its name taken again since",
       [](Store& s) {
         Ok(s.AddBackend(MakeBackend("b", 9002), kCtx));
         Ok(s.RemoveBackend("b", kCtx));
         return LastChange(s, "b");
       },
       [](Store& s) { Ok(s.AddBackend(MakeBackend("b", 9003), kCtx)); },
       "a backend named 'b' exists again (added since): remove or rename it first"},
      {"a backend's set, the backend removed since",
       [](Store& s) {
         Ok(s.AddBackend(MakeBackend("b", 9002), kCtx));
         Ok(s.SetBackend(MakeBackend("b", 9004), kCtx));
         return LastChange(s, "b");
       },
       [](Store& s) { Ok(s.RemoveBackend("b", kCtx)); },
       "backend 'b' was removed since: revert its removal first (see `strangler history b`)"},
      {"a backend made the default, the old default removed since",
       [](Store& s) {
         Ok(s.AddBackend(MakeBackend("b", 9002), kCtx));
         Ok(s.SetBackend(MakeBackend("b", 9002, /*is_default=*/true), kCtx));
         return LastChange(s, "b");
       },
       [](Store& s) { Ok(s.RemoveBackend("legacy", kCtx)); },
       "backend 'b' would no longer be the default and no other backend would be"},
      {"a route's removal, its name taken again since",
       [](Store& s) {
         Ok(s.AddRoute(MakeRoute("r", "legacy", "/r"), kCtx));
         Ok(s.RemoveRoute("r", kCtx));
         return LastChange(s, "r");
       },
       [](Store& s) { Ok(s.AddRoute(MakeRoute("r", "legacy", "/other"), kCtx)); },
       "a route named 'r' exists again (added since): remove or rename it first"},
      {"a route's set, the route removed since",
       [](Store& s) {
         Ok(s.AddRoute(MakeRoute("r", "legacy", "/r"), kCtx));
         Ok(s.SetRoute(MakeRoute("r", "legacy", "/r2"), kCtx));
         return LastChange(s, "r");
       },
       [](Store& s) { Ok(s.RemoveRoute("r", kCtx)); },
       "route 'r' was removed since: revert its removal first (see `strangler history r`)"},
      {"a route's add, the route removed since",
       [](Store& s) {
         Ok(s.AddRoute(MakeRoute("r", "legacy", "/r"), kCtx));
         return LastChange(s, "r");
       },
       [](Store& s) { Ok(s.RemoveRoute("r", kCtx)); },
       "route 'r' no longer exists (removed since)"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    TempDir dir;
    auto opened = Store::Open(dir.File("s.db"));
    REQUIRE(opened.ok());
    Store& s = **opened;
    Ok(s.AddBackend(MakeBackend("legacy", 9001), kCtx));  // the default
    const int64_t id = c.change(s);
    c.since(s);
    const std::string before = State(s);
    for (Store::Mode mode : {Store::Mode::kDryRun, Store::Mode::kWrite}) {
      auto r = s.Revert(id, kCtx, mode);
      REQUIRE_FALSE(r.ok());
      CHECK(r.status().code() == Code::kConflict);
      CHECK_MESSAGE(r.status().message().find(c.why) != std::string::npos, r.status().message());
    }
    CHECK(State(s) == before);
  }
}

}  // namespace
}  // namespace strangler
