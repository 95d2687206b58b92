#include "rules/rule_file.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <string>
#include <vector>

#include "store/store.h"
#include "test_util.h"

namespace strangler {
namespace {

TEST_SUITE_BEGIN("rule_file");

using testing::TempDir;

const ChangeContext kCtx{"tester", "because"};

constexpr const char* kGood = R"({
  "backends": [
    {"name": "legacy", "urls": ["http://127.0.0.1:9001"], "default": true},
    {"name": "orders", "urls": ["http://127.0.0.1:9002"], "timeout_ms": 5000}
  ],
  "routes": [
    {"name": "orders", "to": "orders", "path": "/api/orders", "percent": 5,
     "sticky": "header:X-User-Id"},
    {"name": "beta", "to": "orders", "headers": ["X-Beta=1"], "priority": 10, "methods": ["get"]}
  ]
})";

RuleFile MustParse(const std::string& text) {
  std::vector<std::string> problems;
  RuleFile f = ParseRuleFile(text, &problems);
  std::string all;
  for (const auto& p : problems) all += p + "\n";
  INFO(all);
  REQUIRE(problems.empty());
  return f;
}

std::string Joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& p : v) s += p + "\n";
  return s;
}

TEST_CASE("ParseRuleFile reads a valid file with CLI defaults for omitted fields") {
  RuleFile f = MustParse(kGood);
  REQUIRE(f.backends.size() == 2);
  REQUIRE(f.routes.size() == 2);
  CHECK(f.backends[0].is_default);
  CHECK(f.backends[0].timeout_ms == kDefaultTimeoutMs);
  CHECK(f.backends[1].timeout_ms == 5000);
  CHECK(f.routes[0].percent_bp == 500);
  CHECK(f.routes[1].methods == std::vector<std::string>{"GET"});
  CHECK(f.routes[1].percent_bp == kFullPercentBp);
  CHECK(f.routes[1].enabled);
}

TEST_CASE("ParseRuleFile refuses a bad file whole, listing every problem") {
  struct Case {
    const char* name;
    std::string text;
    std::vector<std::string> expect;  // substrings, each in some problem
  };
  std::vector<Case> cases = {
      {"bad JSON with line and column",
       "{\"backends\": [\n  {\"name\": \"a\",, }\n]}",
       {"not valid JSON", "line 2"}},
      {"not an object", "[1,2]", {"must be a JSON object"}},
      {"unknown top-level field",
       R"({"backends": [], "routes": [], "rutes": []})",
       {"unknown top-level field 'rutes'"}},
      {"unknown backend in to and else",
       R"({"backends":[{"name":"a","urls":["http://h:1"],"default":true}],
           "routes":[{"name":"r","to":"b","else":"c"}]})",
       {"to: unknown backend 'b'", "else: unknown backend 'c'"}},
      {"bad patterns, each field reported",
       R"({"backends":[{"name":"a","urls":["http://h:1"],"default":true}],
           "routes":[{"name":"r","to":"a","path":"~(open","cookies":["a b"],"sticky":"hdr:x"}]})",
       {"path:", "cookies:", "sticky:"}},
      {"bad names and unknown fields",
       R"({"backends":[{"name":"A!","urls":["http://h:1"],"default":true,"weight":3}],
           "routes":[{"name":"-x","to":"a"}]})",
       {"name: bad backend name", "unknown field 'weight'", "routes[0] (-x): name:"}},
      {"duplicates",
       R"({"backends":[{"name":"a","urls":["http://h:1"],"default":true},
                                    {"name":"a","urls":["http://h:2"]}],
                      "routes":[{"name":"r","to":"a"},{"name":"r","to":"a"}]})",
       {"duplicate backend name 'a'", "duplicate route name 'r'"}},
      {"no default",
       R"({"backends":[{"name":"a","urls":["http://h:1"]}]})",
       {"exactly one backend must have \"default\": true (found 0)"}},
      {"two defaults",
       R"({"backends":[{"name":"a","urls":["http://h:1"],"default":true},
                                      {"name":"b","urls":["http://h:2"],"default":true}]})",
       {"(found 2)"}},
      {"missing fields",
       R"({"backends":[{"name":"a","default":true}],"routes":[{"name":"r"}]})",
       {"backends[0] (a): missing field 'urls'", "routes[0] (r): missing field 'to'"}},
      {"wrong types",
       R"({"backends":{"name":"a"},"routes":[{"name":"r","to":"a","percent":"x"}]})",
       {"\"backends\" must be an array", "percent:"}},
  };
  for (const Case& c : cases) {
    std::vector<std::string> problems;
    RuleFile f = ParseRuleFile(c.text, &problems);
    INFO(c.name, "\n", Joined(problems));
    CHECK(!problems.empty());
    CHECK(f.backends.empty());
    CHECK(f.routes.empty());
    for (const std::string& e : c.expect) {
      CHECK_MESSAGE(Joined(problems).find(e) != std::string::npos, "missing: ", e);
    }
  }
}

TEST_CASE("ExportRuleFile is sorted, indented, and reads back to the same objects") {
  RuleSet rules;
  RuleFile f = MustParse(kGood);
  rules.backends = {f.backends[1], f.backends[0]};
  rules.routes = f.routes;  // orders, beta: not sorted
  std::string out = ExportRuleFile(rules);
  CHECK(out.find("\n  \"backends\": [\n    {\n      \"name\": \"legacy\"") != std::string::npos);
  CHECK(out.find("\"beta\"") < out.find("\"orders\",\n      \"to\""));
  CHECK(out.back() == '\n');
  RuleFile again = MustParse(out);
  REQUIRE(again.backends.size() == 2);
  CHECK(again.backends[0].name == "legacy");
  CHECK(again.routes[0].name == "beta");
  RuleSet again_rules{again.backends, again.routes, 0};
  CHECK(ExportRuleFile(again_rules) == out);
}

TEST_CASE("PlanApply: adds, field-by-field changes, removes only with prune") {
  RuleFile f = MustParse(kGood);
  RuleSet current;
  Backend legacy = f.backends[0];
  Backend old;
  old.name = "old";
  old.urls = {"http://h:3"};
  current.backends = {legacy, old};
  Route orders = f.routes[0];
  orders.percent_bp = 3000;
  Route stale;
  stale.name = "stale";
  stale.to = "old";
  current.routes = {orders, stale};
  // (the file's "orders" backend is new; "old" is not in the file)

  SUBCASE("without prune") {
    ApplyPlan p = PlanApply(current, f, Prune::kNo);
    std::string text = FormatPlan(p);
    INFO(text);
    CHECK(p.adds == 2);  // backend orders, route beta
    CHECK(p.changes == 1);
    CHECK(p.removes == 0);
    CHECK(p.kept == 2);
    CHECK(text.find("change route orders: percent 30 → 5\n") != std::string::npos);
    CHECK(text.find("add backend orders: urls [http://127.0.0.1:9002], timeout_ms 5000\n") !=
          std::string::npos);
    CHECK(text.find("keep route stale (not in file; --prune removes)") != std::string::npos);
    CHECK(text.find("keep backend old (not in file; --prune removes)") != std::string::npos);
  }
  SUBCASE("with prune: routes removed before backends, backends added before routes") {
    ApplyPlan p = PlanApply(current, f, Prune::kYes);
    INFO(FormatPlan(p));
    CHECK(p.removes == 2);
    CHECK(p.kept == 0);
    std::vector<std::string> order;
    for (const auto& s : p.steps) {
      order.push_back(std::string(PlanActionName(s.action)) + " " + ObjectKindName(s.kind) + " " +
                      s.name);
    }
    CHECK(order == std::vector<std::string>{"add backend orders", "remove route stale",
                                            "add route beta", "change route orders",
                                            "remove backend old"});
    Json j = PlanJson(p);
    CHECK(j[3]["fields"][0]["field"] == "percent");
    CHECK(j[3]["fields"][0]["before"] == 30);
    CHECK(j[3]["fields"][0]["after"] == 5);
  }
  SUBCASE("the same rules plan nothing") {
    RuleSet same{f.backends, f.routes, 3};
    ApplyPlan p = PlanApply(same, f, Prune::kYes);
    CHECK_FALSE(p.has_writes());
    CHECK(p.steps.empty());
  }
}

TEST_CASE("rule files carry the backend options: export order, plan lines, problems") {
  constexpr const char* kWithOptions = R"({
  "backends": [
    {"name": "legacy", "urls": ["http://127.0.0.1:9001"], "default": true},
    {"name": "orders", "urls": ["http://127.0.0.1:9002"], "max_queue": 50,
     "queue_timeout_ms": 1500, "max_conns": 10, "connect_timeout_ms": 250}
  ]
})";
  RuleFile f = MustParse(kWithOptions);
  REQUIRE(f.backends.size() == 2);
  const Backend& orders = f.backends[1];
  CHECK(orders.connect_timeout_ms == 250);
  CHECK(orders.max_conns == 10);
  CHECK(orders.max_queue == 50);
  CHECK(orders.queue_timeout_ms == 1500);
  CHECK(f.backends[0].max_conns == 0);

  RuleSet rules{f.backends, {}, 0};
  std::string out = ExportRuleFile(rules);
  INFO(out);
  // In the order of the CLI's options, after timeout_ms; defaults left out.
  CHECK(out.find(R"("timeout_ms": 30000,
      "connect_timeout_ms": 250,
      "max_conns": 10,
      "max_queue": 50,
      "queue_timeout_ms": 1500
    })") != std::string::npos);
  CHECK(out.find(R"("name": "legacy",
      "urls": [
        "http://127.0.0.1:9001"
      ],
      "default": true,
      "timeout_ms": 30000
    })") != std::string::npos);
  RuleFile again = MustParse(out);
  CHECK(ExportRuleFile(RuleSet{again.backends, {}, 0}) == out);

  SUBCASE("an added backend's plan line names the options set") {
    RuleSet current{{f.backends[0]}, {}, 1};
    std::string text = FormatPlan(PlanApply(current, f, Prune::kNo));
    CHECK(text ==
          "add backend orders: urls [http://127.0.0.1:9002], connect_timeout_ms 250, "
          "max_conns 10, max_queue 50, queue_timeout_ms 1500\n");
  }
  SUBCASE("a change names each option changed") {
    Backend before = orders;
    before.max_conns = 20;
    before.max_queue = 0;
    RuleSet current{{f.backends[0], before}, {}, 1};
    ApplyPlan p = PlanApply(current, f, Prune::kNo);
    CHECK(FormatPlan(p) == "change backend orders: max_conns 20 → 10, max_queue - → 50\n");
    Json j = PlanJson(p);
    CHECK(j[0]["fields"][1]["field"] == "max_queue");
    CHECK(j[0]["fields"][1]["before"].is_null());
    CHECK(j[0]["fields"][1]["after"] == 50);
  }
  SUBCASE("a bad option is a problem naming the backend, the field and the flag") {
    std::vector<std::string> problems;
    ParseRuleFile(R"({"backends": [{"name": "a", "urls": ["http://h:1"], "default": true,
                      "max_conns": -1, "queue_timeout_ms": "5s"}]})",
                  &problems);
    std::string all = Joined(problems);
    INFO(all);
    CHECK(problems.size() == 2);
    CHECK(all.find("backends[0] (a): max_conns: bad --max-conns -1 for backend 'a'") !=
          std::string::npos);
    CHECK(all.find("backends[0] (a): queue_timeout_ms: field 'queue_timeout_ms' must be an "
                   "integer") != std::string::npos);
  }
}

// --- the store side: apply and revert ---------------------------------------

std::unique_ptr<Store> OpenStore(const TempDir& dir) {
  auto s = Store::Open(dir.File("s.db"));
  REQUIRE(s.ok());
  return std::move(s.value());
}

std::string Export(Store& s) {
  auto rules = s.Load();
  REQUIRE(rules.ok());
  return ExportRuleFile(*rules);
}

TEST_CASE("Store::ApplyRuleFile is one transaction, recorded per object, and idempotent") {
  TempDir dir;
  auto store = OpenStore(dir);
  RuleFile f = MustParse(kGood);
  auto r1 = store->ApplyRuleFile(f, Prune::kNo, kCtx);
  REQUIRE(r1.ok());
  CHECK(r1->recorded.size() == 4);
  CHECK(r1->recorded[0].action == "backend.add");
  CHECK(r1->recorded[0].actor == "tester");
  CHECK(r1->recorded[0].reason == "because");
  auto v1 = store->RulesetVersion();
  REQUIRE(v1.ok());
  CHECK(*v1 == 1);

  auto r2 = store->ApplyRuleFile(f, Prune::kNo, kCtx);
  REQUIRE(r2.ok());
  CHECK(r2->recorded.empty());
  CHECK_FALSE(r2->plan.has_writes());
  CHECK(*store->RulesetVersion() == 1);
  CHECK(store->History("", 0)->size() == 4);

  SUBCASE("export -> apply to another store -> identical export") {
    TempDir other;
    auto s2 = OpenStore(other);
    std::string exported = Export(*store);
    REQUIRE(s2->ApplyRuleFile(MustParse(exported), Prune::kNo, kCtx).ok());
    CHECK(Export(*s2) == exported);
  }
  SUBCASE("a new default and prune of the old default in one apply") {
    RuleFile g = MustParse(R"({"backends":[{"name":"new","urls":["http://h:7"],"default":true}],
                              "routes":[{"name":"all","to":"new"}]})");
    auto r = store->ApplyRuleFile(g, Prune::kYes, kCtx);
    REQUIRE(r.ok());
    auto rules = store->Load();
    REQUIRE(rules->backends.size() == 1);
    CHECK(rules->backends[0].name == "new");
    CHECK(rules->backends[0].is_default);
    CHECK(rules->routes.size() == 1);
    CHECK(*store->RulesetVersion() == 2);  // the whole apply is one version
  }
  SUBCASE("without prune a kept default gives the default to the file's") {
    RuleFile g = MustParse(R"({"backends":[{"name":"new","urls":["http://h:7"],"default":true}]})");
    auto r = store->ApplyRuleFile(g, Prune::kNo, kCtx);
    REQUIRE(r.ok());
    CHECK(FormatPlan(r->plan).find("change backend legacy: default true → false") !=
          std::string::npos);
    CHECK(store->GetBackend("new")->is_default);
    CHECK_FALSE(store->GetBackend("legacy")->is_default);
  }
}

// The id of the newest change.
int64_t Last(Store& s) {
  auto h = s.History("", 1);
  REQUIRE(h.ok());
  REQUIRE(!h->empty());
  return (*h)[0].id;
}

// The id of the oldest change `action` of `object` ("route/orders"), read
// back from the history.
int64_t ChangeId(Store& s, const std::string& action, const std::string& object) {
  auto h = s.History("", 1000);
  REQUIRE(h.ok());
  int64_t id = -1;
  for (const auto& c : *h) {  // newest first
    if (c.action == action && c.object == object) id = c.id;
  }
  INFO(action << " " << object);
  REQUIRE(id > 0);
  return id;
}

TEST_CASE("Store::Revert restores the state before each kind of change") {
  TempDir dir;
  auto store = OpenStore(dir);
  REQUIRE(store->ApplyRuleFile(MustParse(kGood), Prune::kNo, kCtx).ok());
  const std::string start = Export(*store);

  auto revert_last = [&]() {
    int64_t id = Last(*store);
    auto rows = store->Revert(id, ChangeContext{"ops", ""});
    INFO(rows.status().message());
    REQUIRE(rows.ok());
    REQUIRE(!rows->empty());
    CHECK(rows->back().reason == "revert of change " + std::to_string(id));
    CHECK(rows->back().actor == "ops");
  };

  SUBCASE("route.set") {
    Route r = *store->GetRoute("orders");
    r.percent_bp = 3000;
    r.path = "/api/v2/orders";
    REQUIRE(store->SetRoute(r, kCtx).ok());
    revert_last();
    CHECK(Export(*store) == start);
  }
  SUBCASE("route.disable and route.enable") {
    REQUIRE(store->SetRouteEnabled("beta", false, kCtx).ok());
    revert_last();
    CHECK(Export(*store) == start);
    CHECK(store->History("beta", 1)->at(0).action == "route.enable");
  }
  SUBCASE("route.add") {
    Route r;
    r.name = "extra";
    r.to = "orders";
    REQUIRE(store->AddRoute(r, kCtx).ok());
    revert_last();
    CHECK(Export(*store) == start);
    CHECK(store->History("extra", 1)->at(0).action == "route.rm");
  }
  SUBCASE("route.rm, and the revert of that revert") {
    REQUIRE(store->RemoveRoute("orders", kCtx).ok());
    revert_last();
    CHECK(Export(*store) == start);
    CHECK(store->History("orders", 1)->at(0).action == "route.add");
    revert_last();  // reverting the re-add removes it again
    CHECK_FALSE(store->GetRoute("orders").ok());
  }
  SUBCASE("backend.set") {
    Backend b = *store->GetBackend("orders");
    b.urls = {"http://127.0.0.1:9999"};
    b.timeout_ms = 100;
    REQUIRE(store->SetBackend(b, kCtx).ok());
    revert_last();
    CHECK(Export(*store) == start);
  }
  SUBCASE("backend.set --default gives the default back") {
    Backend b = *store->GetBackend("orders");
    b.is_default = true;
    REQUIRE(store->SetBackend(b, kCtx).ok());
    revert_last();
    CHECK(Export(*store) == start);
  }
  SUBCASE("backend.add and backend.rm") {
    Backend b;
    b.name = "spare";
    b.urls = {"http://h:5"};
    REQUIRE(store->AddBackend(b, kCtx).ok());
    revert_last();
    CHECK(Export(*store) == start);
    revert_last();  // revert the removal: back again
    CHECK(store->GetBackend("spare").ok());
  }
  SUBCASE("refused: re-adding a route whose backend was removed") {
    REQUIRE(store->RemoveRoute("orders", kCtx).ok());
    int64_t rm = Last(*store);
    REQUIRE(store->RemoveRoute("beta", kCtx).ok());
    REQUIRE(store->RemoveBackend("orders", kCtx).ok());
    auto version = *store->RulesetVersion();
    auto r = store->Revert(rm, kCtx);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("needs backend 'orders', which no longer exists") !=
          std::string::npos);
    CHECK(*store->RulesetVersion() == version);  // nothing written
  }
  SUBCASE("refused: removing a backend that routes use") {
    int64_t add_orders = ChangeId(*store, "backend.add", "backend/orders");
    auto r = store->Revert(add_orders, kCtx);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("used by route(s) beta, orders") != std::string::npos);
  }
  SUBCASE("refused: the name is taken again, the object was removed, no such change") {
    REQUIRE(store->RemoveRoute("beta", kCtx).ok());
    int64_t rm = Last(*store);
    Route again;
    again.name = "beta";
    again.to = "legacy";
    REQUIRE(store->AddRoute(again, kCtx).ok());
    auto r = store->Revert(rm, kCtx);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("exists again") != std::string::npos);

    REQUIRE(store->RemoveRoute("orders", kCtx).ok());
    // The route's add: the route was removed since.
    auto gone = store->Revert(ChangeId(*store, "route.add", "route/orders"), kCtx);
    REQUIRE_FALSE(gone.ok());
    CHECK(gone.status().message().find("no longer exists") != std::string::npos);

    auto none = store->Revert(999, kCtx);
    REQUIRE_FALSE(none.ok());
    CHECK(none.status().code() == Code::kNotFound);
  }
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
