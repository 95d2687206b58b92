// Rule files through the real CLI: apply every example in rules/, export ->
// apply round trips, idempotence, --dry-run and --prune, refused files, and
// revert of changes made by apply and by hand.
#include <dirent.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

// rules/ of the source tree: this file is tests/e2e/rules_e2e.cc.
std::string RulesDir() {
  std::string here = __FILE__;
  return here.substr(0, here.rfind("/tests/e2e/")) + "/rules";
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

size_t HistoryCount(Fixture& fx) {
  RunResult r = fx.MustCli({"history", "--limit", "100000", "--json"});
  Json j = Json::parse(r.out, nullptr, false);
  REQUIRE(j.is_array());
  return j.size();
}

bool Has(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_CASE("e2e: every rules/*.json applies, and re-applying it records nothing") {
  std::vector<std::string> files;
  DIR* d = opendir(RulesDir().c_str());
  REQUIRE(d != nullptr);
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 5 && n.substr(n.size() - 5) == ".json") files.push_back(n);
  }
  closedir(d);
  std::sort(files.begin(), files.end());
  REQUIRE(files.size() >= 3);
  Fixture steps;  // the numbered steps in order on one store
  for (const std::string& f : files) {
    INFO(f);
    std::string path = RulesDir() + "/" + f;
    Fixture fresh;
    RunResult r = fresh.MustCli({"apply", path});
    CHECK(Has(r.out, "applied " + path));
    size_t n = HistoryCount(fresh);
    RunResult again = fresh.MustCli({"apply", path});
    CHECK(Has(again.out, "no changes: the store already matches"));
    CHECK(HistoryCount(fresh) == n);
    // The export of what was applied reads back as the same store.
    std::string exported = fresh.MustCli({"export"}).out;
    Write(fresh.dir().File("export.json"), exported);
    CHECK(Has(fresh.MustCli({"apply", fresh.dir().File("export.json")}).out, "no changes"));
    if (f[0] >= '1' && f[0] <= '9') steps.MustCli({"apply", path, "--prune", "-m", "step " + f});
  }
  // After the cut-over with --prune: orders is the default, one route left.
  Json backends = Json::parse(steps.MustCli({"backend", "list", "--json"}).out);
  for (const Json& b : backends) CHECK(b["default"] == (b["name"] == "orders"));
  Json routes = Json::parse(steps.MustCli({"route", "list", "--json"}).out);
  REQUIRE(routes.size() == 1);
  CHECK(routes[0]["name"] == "legacy-admin");
  RunResult explain = steps.MustCli({"explain", "GET", "/api/orders/7"});
  CHECK(Has(explain.out, "->  orders"));
}

TEST_CASE("e2e: export -> apply to another store -> identical export") {
  Fixture a;
  a.MustCli({"apply", RulesDir() + "/2-beta-cohort.json"});
  a.MustCli(
      {"route", "set", "orders", "--percent", "12.5", "--method", "GET,POST", "--query", "v=2"});
  a.MustCli({"route", "disable", "beta"});
  std::string first = a.MustCli({"export", "--json"}).out;
  Json doc = Json::parse(first, nullptr, false);
  REQUIRE(doc.is_object());
  CHECK(doc["routes"][1]["percent"] == 12.5);
  Write(a.dir().File("rules.json"), first);

  Fixture b;
  b.MustCli({"apply", a.dir().File("rules.json")});
  CHECK(b.MustCli({"export"}).out == first);
}

TEST_CASE("e2e: apply prints field-by-field changes, --dry-run writes nothing, --prune removes") {
  Fixture fx;
  fx.MustCli({"apply", RulesDir() + "/1-first-step.json"});
  std::string file = fx.dir().File("next.json");
  Write(file, R"({"backends": [
      {"name": "legacy", "urls": ["http://127.0.0.1:9001"], "default": true},
      {"name": "orders", "urls": ["http://127.0.0.1:9003"], "timeout_ms": 5000}],
    "routes": [
      {"name": "orders", "to": "orders", "path": "/api/orders", "percent": 30,
       "sticky": "header:X-User-Id"}]})");
  fx.MustCli({"route", "add", "extra", "--to", "legacy", "--path", "/x"});
  size_t before = HistoryCount(fx);
  std::string exported = fx.MustCli({"export"}).out;

  RunResult dry = fx.MustCli({"apply", file, "--dry-run"});
  CHECK(Has(dry.out,
            "change backend orders: urls [http://127.0.0.1:9002] → [http://127.0.0.1:9003]"));
  CHECK(Has(dry.out, "change route orders: percent 5 → 30"));
  CHECK(Has(dry.out, "keep route extra (not in file; --prune removes)"));
  CHECK(Has(dry.out, "dry run: 0 to add, 2 to change, 0 to remove, 1 kept; nothing written"));
  CHECK(HistoryCount(fx) == before);
  CHECK(fx.MustCli({"export"}).out == exported);

  RunResult real = fx.Cli({"--actor", "alice", "apply", file, "-m", "orders to 30%"});
  REQUIRE(real.exit_code == 0);
  CHECK(Has(real.out, "change route orders: percent 5 → 30"));
  Json h = Json::parse(fx.MustCli({"history", "--json", "--limit", "2"}).out);
  REQUIRE(h.size() == 2);
  for (const Json& row : h) {
    CHECK(row["actor"] == "alice");
    CHECK(row["reason"] == "orders to 30%");
    for (const char* k : {"id", "ts", "action", "object", "before", "after"})
      CHECK(row.contains(k));
  }
  CHECK(h[0]["action"] == "route.set");
  CHECK(h[0]["before"]["percent"] == 5);
  CHECK(h[0]["after"]["percent"] == 30);
  CHECK(h[1]["action"] == "backend.set");

  RunResult pruned = fx.MustCli({"apply", file, "--prune"});
  CHECK(Has(pruned.out, "remove route extra"));
  CHECK(fx.Cli({"route", "show", "extra"}).exit_code == 1);
  // Default reason names the file.
  Json last = Json::parse(fx.MustCli({"history", "--json", "--limit", "1"}).out);
  CHECK(last[0]["reason"] == "apply " + file);
}

TEST_CASE("e2e: a bad file is refused whole, every problem listed, exit 1") {
  Fixture fx;
  fx.MustCli({"apply", RulesDir() + "/1-first-step.json"});
  std::string exported = fx.MustCli({"export"}).out;
  size_t before = HistoryCount(fx);
  struct Case {
    const char* name;
    const char* text;
    std::vector<const char*> expect;
  };
  std::vector<Case> cases = {
      {"bad JSON",
       "{\"backends\": [\n  {\"name\": \"legacy\" \"urls\": []}\n]}",
       {"not valid JSON", "line 2, column"}},
      {"unknown backend",
       R"({"backends":[{"name":"legacy","urls":["http://127.0.0.1:9001"],"default":true}],
           "routes":[{"name":"orders","to":"orders"}]})",
       {"routes[0] (orders): to: unknown backend 'orders'"}},
      {"bad pattern, and more",
       R"({"backends":[{"name":"legacy","urls":["http://127.0.0.1:9001"],"default":true}],
           "routes":[{"name":"re","to":"legacy","path":"~([a-z]"},
                     {"name":"hdr","to":"legacy","headers":["=x"],"percent":100.001}]})",
       {"routes[0] (re): path:", "routes[1] (hdr): headers:", "routes[1] (hdr): percent:",
        "(3 problems"}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    std::string file = fx.dir().File("bad.json");
    Write(file, c.text);
    for (bool dry : {false, true}) {
      std::vector<std::string> args = {"apply", file, "--prune"};
      if (dry) args.push_back("--dry-run");
      RunResult r = fx.Cli(args);
      INFO(r.err);
      CHECK(r.exit_code == 1);
      CHECK(r.out.empty());
      for (const char* e : c.expect) CHECK(Has(r.err, e));
      CHECK(Has(r.err, "nothing was applied"));
    }
  }
  CHECK(fx.Cli({"apply", fx.dir().File("missing.json")}).exit_code == 1);
  CHECK(HistoryCount(fx) == before);
  CHECK(fx.MustCli({"export"}).out == exported);
}

// The id of the newest change.
int64_t LastId(Fixture& fx) {
  Json h = Json::parse(fx.MustCli({"history", "--json", "--limit", "1"}).out);
  REQUIRE(h.size() == 1);
  return h[0]["id"].get<int64_t>();
}

TEST_CASE("e2e: revert of each kind of change restores the state before it") {
  Fixture fx;
  fx.MustCli({"apply", RulesDir() + "/2-beta-cohort.json"});
  const std::string start = fx.MustCli({"export"}).out;
  struct Case {
    const char* name;
    std::vector<std::string> change;
    const char* revert_action;
  };
  std::vector<Case> cases = {
      {"route set",
       {"route", "set", "orders", "--percent", "50", "--path", "/api/v2"},
       "route.set"},
      {"route disable", {"route", "disable", "beta"}, "route.enable"},
      {"route add", {"route", "add", "more", "--to", "legacy", "--path", "/more"}, "route.rm"},
      {"route rm", {"route", "rm", "beta"}, "route.add"},
      {"backend add", {"backend", "add", "spare", "http://127.0.0.1:9009"}, "backend.rm"},
      {"backend set",
       {"backend", "set", "orders", "http://127.0.0.1:9010", "--timeout-ms", "7"},
       "backend.set"},
      {"backend set --default", {"backend", "set", "orders", "--default"}, "backend.set"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    fx.MustCli(c.change);
    CHECK(fx.MustCli({"export"}).out != start);
    std::string id = std::to_string(LastId(fx));
    RunResult r = fx.MustCli({"revert", id, "-m", "oops"});
    CHECK(Has(r.out, "reverted change " + id));
    CHECK(fx.MustCli({"export"}).out == start);
    Json h = Json::parse(fx.MustCli({"history", "--json", "--limit", "1"}).out);
    CHECK(h[0]["action"] == c.revert_action);
    CHECK(h[0]["reason"] == "revert of change " + id + ": oops");
  }
  // A revert is a change like any other: reverting it redoes the change.
  fx.MustCli({"route", "set", "orders", "--percent", "40"});
  fx.MustCli({"revert", std::to_string(LastId(fx))});
  fx.MustCli({"revert", std::to_string(LastId(fx))});
  CHECK(Json::parse(fx.MustCli({"route", "show", "orders", "--json"}).out)["percent"] == 40);
  // A route's removal cannot be reverted once its backend is gone.
  fx.MustCli({"route", "rm", "beta"});
  std::string rm_beta = std::to_string(LastId(fx));
  fx.MustCli({"route", "rm", "orders"});
  fx.MustCli({"backend", "rm", "orders"});
  RunResult refused = fx.Cli({"revert", rm_beta});
  CHECK(refused.exit_code == 1);
  CHECK(Has(refused.err, "cannot revert change " + rm_beta));
  CHECK(Has(refused.err, "needs backend 'orders', which no longer exists"));
  RunResult none = fx.Cli({"revert", "99999"});
  CHECK(none.exit_code == 1);
  CHECK(Has(none.err, "no change with id 99999"));
  CHECK(fx.Cli({"revert", "abc"}).exit_code == 2);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
