#include "store/store.h"

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "store/migrations.h"
#include "test_util.h"

namespace strangler {
namespace {

TEST_SUITE_BEGIN("store");

using testing::RawExec;
using testing::RawInt;
using testing::TempDir;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

std::unique_ptr<Store> MustOpen(const std::string& path) {
  auto s = Store::Open(path);
  INFO(path, ": ", s.status().message());
  REQUIRE(s.ok());
  return std::move(*s);
}

Backend MakeBackend(const std::string& name, int port, bool is_default = false) {
  Backend b;
  b.name = name;
  b.urls = {"http://127.0.0.1:" + std::to_string(port)};
  b.is_default = is_default;
  return b;
}

Route MakeRoute(const std::string& name, const std::string& to) {
  Route r;
  r.name = name;
  r.to = to;
  r.path = "/api/" + name;
  return r;
}

const ChangeContext kCtx{"alice", "ticket-42"};

void RequireOk(const Status& st) {
  INFO(st.message());
  REQUIRE(st.ok());
}

// The whole visible state, to show that a refused write changed nothing.
std::string Snapshot(Store& s) {
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

// legacy (default) + orders-svc, and route `orders` to orders-svc else legacy.
void Seed(Store& s) {
  RequireOk(s.AddBackend(MakeBackend("legacy", 9001), kCtx));
  RequireOk(s.AddBackend(MakeBackend("orders-svc", 9002), kCtx));
  Route r = MakeRoute("orders", "orders-svc");
  r.else_backend = "legacy";
  RequireOk(s.AddRoute(r, kCtx));
}

TEST_CASE("store: create migrates to the newest version and reopening is idempotent") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  const int newest = Migrations().back().version;
  CHECK(newest == 4);
  {
    auto s = MustOpen(path);
    CHECK(s->schema_version() == newest);
    auto v = s->RulesetVersion();
    REQUIRE(v.ok());
    CHECK(*v == 0);
  }
  CHECK(RawInt(path, "SELECT count(*) FROM schema_migrations") == newest);
  CHECK(RawInt(path, "SELECT max(version) FROM schema_migrations") == newest);
  CHECK(RawInt(path,
               "SELECT count(*) FROM schema_migrations WHERE name = '0001_init' "
               "AND applied_at LIKE '____-__-__T__:__:__.___Z'") == 1);
  {
    auto s = MustOpen(path);
    CHECK(s->schema_version() == newest);
    RequireOk(s->AddBackend(MakeBackend("legacy", 9001), kCtx));
  }
  auto s = MustOpen(path);
  CHECK(s->schema_version() == newest);
  CHECK(RawInt(path, "SELECT count(*) FROM schema_migrations") == newest);
  auto b = s->ListBackends();
  REQUIRE(b.ok());
  CHECK(b->size() == 1);
  // WAL is persistent in the file header (bytes 18 and 19 are 2).
  std::string header = ReadBytes(path).substr(0, 20);
  CHECK(header[18] == 2);
  CHECK(header[19] == 2);
}

TEST_CASE("store: concurrent first opens apply each migration once") {
  // Rounds make the race likely: switching a new file to WAL while another
  // opener reads it once failed at once with "store is locked" (SQLite does
  // not call the busy handler there).
  for (int round = 0; round < 20; ++round) {
    CAPTURE(round);
    TempDir dir;
    const std::string path = dir.File("s.db");
    std::vector<std::thread> threads;
    std::vector<std::string> errors(4);
    for (size_t i = 0; i < errors.size(); ++i) {
      threads.emplace_back([&, i] {
        auto s = Store::Open(path);
        if (!s.ok())
          errors[i] = s.status().message();
        else if ((*s)->schema_version() != Migrations().back().version)
          errors[i] = "wrong schema version";
      });
    }
    for (auto& t : threads) t.join();
    for (const std::string& e : errors) CHECK(e == "");
    CHECK(RawInt(path, "SELECT count(*) FROM schema_migrations") ==
          static_cast<int64_t>(Migrations().size()));
    CHECK(RawInt(path, "SELECT count(*) FROM meta") == 1);
  }
}

TEST_CASE("store: a newer schema is refused and the file is left untouched") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  SUBCASE("rollback-journal file from elsewhere") {
    RawExec(path,
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
            "applied_at TEXT NOT NULL);"
            "INSERT INTO schema_migrations VALUES (999, '0999_future', 'x');");
  }
  SUBCASE("WAL store written by this binary, then upgraded by a newer one") {
    MustOpen(path);
    RawExec(path, "INSERT INTO schema_migrations VALUES (999, '0999_future', 'x');");
  }
  const std::string before = ReadBytes(path);
  REQUIRE(!before.empty());
  auto s = Store::Open(path);
  REQUIRE(!s.ok());
  INFO(s.status().message());
  CHECK(s.status().message().find("store " + path + " has schema version 999") !=
        std::string::npos);
  CHECK(s.status().message().find("knows up to " + std::to_string(Migrations().back().version) +
                                  "): upgrade strangler") != std::string::npos);
  CHECK(ReadBytes(path) == before);
}

TEST_CASE("store: a file that is not a database is refused and not changed") {
  TempDir dir;
  const std::string path = dir.File("notes.txt");
  const std::string text(4096, 'x');
  WriteBytes(path, text);
  auto s = Store::Open(path);
  REQUIRE(!s.ok());
  CHECK(s.status().code() == Code::kIo);
  CHECK(s.status().message() == path + " is not a strangler store: file is not a database");
  CHECK(ReadBytes(path) == text);
}

TEST_CASE("store: an SQLite database of something else is refused and not changed") {
  TempDir dir;
  const std::string path = dir.File("other.db");
  RawExec(path, "CREATE TABLE users (id INTEGER PRIMARY KEY);");
  const std::string before = ReadBytes(path);
  auto s = Store::Open(path);
  REQUIRE(!s.ok());
  CHECK(s.status().message().find("is not a strangler store") != std::string::npos);
  CHECK(ReadBytes(path) == before);
}

TEST_CASE("store: an unopenable path is refused with the path in the message") {
  TempDir dir;
  for (const std::string& path : {dir.File("missing/dir/s.db"), dir.File("")}) {
    auto s = Store::Open(path);
    INFO(path);
    REQUIRE(!s.ok());
    CHECK(s.status().code() == Code::kIo);
    CHECK(s.status().message().find(path) != std::string::npos);
    CHECK(s.status().message().find('\n') == std::string::npos);
  }
}

TEST_CASE("store: backend add, list, get, set and remove round-trip") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Backend legacy = MakeBackend("legacy", 9001);
  legacy.urls.push_back("http://10.0.0.2:8080/base");
  legacy.timeout_ms = 1500;
  RequireOk(s->AddBackend(legacy, kCtx));
  RequireOk(s->AddBackend(MakeBackend("a-svc", 9002), kCtx));

  auto list = s->ListBackends();
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].name == "a-svc");  // by name
  CHECK((*list)[1].name == "legacy");

  auto got = s->GetBackend("legacy");
  REQUIRE(got.ok());
  legacy.is_default = true;  // the first backend added
  CHECK(ToJson(*got) == ToJson(legacy));

  legacy.urls = {"http://127.0.0.1:7000"};
  legacy.timeout_ms = 2500;
  RequireOk(s->SetBackend(legacy, kCtx));
  got = s->GetBackend("legacy");
  REQUIRE(got.ok());
  CHECK(ToJson(*got) == ToJson(legacy));

  RequireOk(s->RemoveBackend("a-svc", kCtx));
  auto missing = s->GetBackend("a-svc");
  REQUIRE(!missing.ok());
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(missing.status().message() ==
        "unknown backend 'a-svc': add it with `strangler backend add a-svc URL`");

  CHECK(s->SetBackend(MakeBackend("nope", 1), kCtx).code() == Code::kNotFound);
  CHECK(s->RemoveBackend("nope", kCtx).code() == Code::kNotFound);
  // The only backend stays the default; removing it is allowed when nothing uses it.
  RequireOk(s->RemoveBackend("legacy", kCtx));
  list = s->ListBackends();
  REQUIRE(list.ok());
  CHECK(list->empty());
}

TEST_CASE("store: route add, list, get, set and remove round-trip") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  RequireOk(s->AddBackend(MakeBackend("legacy", 9001), kCtx));
  RequireOk(s->AddBackend(MakeBackend("new", 9002), kCtx));

  Route r = MakeRoute("orders", "new");
  r.else_backend = "legacy";
  r.methods = {"GET", "POST"};
  r.headers = {"X-Beta=1", "!X-Legacy"};
  r.query = {"v~^2"};
  r.cookies = {"session"};
  r.percent_bp = 1250;
  r.sticky = "header:X-User";
  r.salt = "cohort-a";
  r.priority = 7;
  RequireOk(s->AddRoute(r, kCtx));
  RequireOk(s->AddRoute(MakeRoute("billing", "new"), kCtx));

  auto got = s->GetRoute("orders");
  REQUIRE(got.ok());
  CHECK(ToJson(*got) == ToJson(r));

  auto list = s->ListRoutes();
  REQUIRE(list.ok());
  REQUIRE(list->size() == 2);
  CHECK((*list)[0].name == "billing");
  CHECK((*list)[1].name == "orders");

  r.percent_bp = 29;
  r.else_backend = "";
  r.path = "=/health";
  RequireOk(s->SetRoute(r, kCtx));
  got = s->GetRoute("orders");
  REQUIRE(got.ok());
  CHECK(ToJson(*got) == ToJson(r));
  CHECK(got->percent_bp == 29);

  RequireOk(s->SetRouteEnabled("orders", false, kCtx));
  got = s->GetRoute("orders");
  REQUIRE(got.ok());
  CHECK(!got->enabled);

  auto rules = s->Load();
  REQUIRE(rules.ok());
  CHECK(rules->backends.size() == 2);
  CHECK(rules->routes.size() == 2);
  CHECK(rules->version == 6);

  RequireOk(s->RemoveRoute("orders", kCtx));
  auto missing = s->GetRoute("orders");
  CHECK(missing.status().code() == Code::kNotFound);
  CHECK(s->SetRoute(r, kCtx).code() == Code::kNotFound);
  CHECK(s->RemoveRoute("orders", kCtx).code() == Code::kNotFound);
  CHECK(s->SetRouteEnabled("orders", true, kCtx).code() == Code::kNotFound);
}

TEST_CASE("store: methods are stored as serve reads them") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  RequireOk(s->AddBackend(MakeBackend("legacy", 9001), kCtx));
  Route r = MakeRoute("orders", "legacy");
  r.methods = {"get"};
  RequireOk(s->AddRoute(r, kCtx));
  auto got = s->GetRoute("orders");
  REQUIRE(got.ok());
  CHECK(got->methods == std::vector<std::string>{"GET"});
  // Writing the same route again (either spelling) is not a change.
  RequireOk(s->SetRoute(r, kCtx));
  r.methods = {"GET"};
  RequireOk(s->SetRoute(r, kCtx));
  auto h = s->History("orders", 0);
  REQUIRE(h.ok());
  CHECK(h->size() == 1);
}

TEST_CASE("store: the first backend is the default and marking another moves it") {
  for (const char* how : {"set", "add"}) {
    INFO("marked with ", how);
    TempDir dir;
    auto s = MustOpen(dir.File("s.db"));
    RequireOk(s->AddBackend(MakeBackend("legacy", 9001), kCtx));
    RequireOk(s->AddBackend(MakeBackend("new", 9002), kCtx));
    CHECK(s->GetBackend("legacy")->is_default);
    CHECK(!s->GetBackend("new")->is_default);

    if (std::string(how) == "set") {
      RequireOk(s->SetBackend(MakeBackend("new", 9002, true), kCtx));
    } else {
      RequireOk(s->RemoveBackend("new", kCtx));
      RequireOk(s->AddBackend(MakeBackend("new", 9002, true), kCtx));
    }
    CHECK(!s->GetBackend("legacy")->is_default);
    CHECK(s->GetBackend("new")->is_default);

    auto h = s->History("", 0);
    REQUIRE(h.ok());
    REQUIRE(h->size() >= 2);
    // One write, two changes: the old default losing it, then the new default.
    CHECK((*h)[0].object == "backend/new");
    CHECK((*h)[0].action == "backend." + std::string(how));
    CHECK((*h)[0].after["default"] == true);
    CHECK((*h)[1].object == "backend/legacy");
    CHECK((*h)[1].action == "backend.set");
    CHECK((*h)[1].before["default"] == true);
    CHECK((*h)[1].after["default"] == false);
    CHECK((*h)[1].actor == "alice");
    CHECK((*h)[0].ts == (*h)[1].ts);
    auto v = s->RulesetVersion();
    REQUIRE(v.ok());
    CHECK(*v == static_cast<int64_t>(h->size()) - 1);  // two rows, one version
  }
}

TEST_CASE("store: the default cannot be unset or removed while others exist") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  RequireOk(s->AddBackend(MakeBackend("legacy", 9001), kCtx));
  RequireOk(s->AddBackend(MakeBackend("new", 9002), kCtx));
  const std::string before = Snapshot(*s);

  Status st = s->SetBackend(MakeBackend("legacy", 9001, false), kCtx);
  CHECK(st.code() == Code::kConflict);
  CHECK(st.message().find("mark another backend default") != std::string::npos);

  st = s->RemoveBackend("legacy", kCtx);
  CHECK(st.code() == Code::kConflict);
  CHECK(st.message().find("is the default: mark another backend default first") !=
        std::string::npos);
  CHECK(Snapshot(*s) == before);
}

TEST_CASE("store: removing a backend a route points at is refused and changes nothing") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  RequireOk(s->AddBackend(MakeBackend("spare", 9003), kCtx));
  RequireOk(s->AddRoute(MakeRoute("billing", "spare"), kCtx));
  Route other = MakeRoute("users", "legacy");
  other.else_backend = "spare";
  RequireOk(s->AddRoute(other, kCtx));
  const std::string before = Snapshot(*s);

  Status st = s->RemoveBackend("spare", kCtx);
  CHECK(st.code() == Code::kConflict);
  CHECK(st.message() ==
        "backend 'spare' is used by route(s) billing, users: change or remove them first");
  st = s->RemoveBackend("orders-svc", kCtx);
  CHECK(st.code() == Code::kConflict);
  CHECK(st.message().find("route(s) orders") != std::string::npos);
  CHECK(Snapshot(*s) == before);
}

TEST_CASE("store: a route naming an unknown backend is refused") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  const std::string before = Snapshot(*s);
  struct Case {
    const char* to;
    const char* else_backend;
  };
  for (const Case& c : {Case{"ghost", ""}, Case{"legacy", "ghost"}}) {
    INFO("to=", c.to, " else=", c.else_backend);
    Route r = MakeRoute("new-route", c.to);
    r.else_backend = c.else_backend;
    Status st = s->AddRoute(r, kCtx);
    CHECK(st.code() == Code::kNotFound);
    CHECK(st.message() == "unknown backend 'ghost': add it with `strangler backend add ghost URL`");
    r.name = "orders";
    st = s->SetRoute(r, kCtx);
    CHECK(st.code() == Code::kNotFound);
    CHECK(st.message().find("unknown backend 'ghost'") != std::string::npos);
  }
  CHECK(Snapshot(*s) == before);
}

TEST_CASE("store: duplicates and invalid objects are refused") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  const std::string before = Snapshot(*s);
  Status st = s->AddBackend(MakeBackend("legacy", 9009), kCtx);
  CHECK(st.code() == Code::kConflict);
  CHECK(st.message() == "backend 'legacy' already exists (use `strangler backend set`)");
  st = s->AddRoute(MakeRoute("orders", "legacy"), kCtx);
  CHECK(st.code() == Code::kConflict);
  CHECK(st.message() == "route 'orders' already exists (use `strangler route set`)");

  Backend bad = MakeBackend("Bad Name", 9001);
  CHECK(!s->AddBackend(bad, kCtx).ok());
  bad = MakeBackend("nourl", 9001);
  bad.urls.clear();
  CHECK(!s->AddBackend(bad, kCtx).ok());
  Route bad_route = MakeRoute("orders", "legacy");
  bad_route.percent_bp = 10001;
  CHECK(!s->SetRoute(bad_route, kCtx).ok());
  CHECK(Snapshot(*s) == before);
}

TEST_CASE("store: every write appends history and bumps the ruleset version") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Route r = MakeRoute("orders", "new");
  struct Step {
    std::string action;
    std::string object;
    std::function<Status()> write;
    bool has_before;
    bool has_after;
  };
  std::vector<Step> steps = {
      {"backend.add", "backend/legacy",
       [&] { return s->AddBackend(MakeBackend("legacy", 9001), kCtx); }, false, true},
      {"backend.add", "backend/new", [&] { return s->AddBackend(MakeBackend("new", 9002), kCtx); },
       false, true},
      {"backend.set", "backend/new",
       [&] {
         Backend b = MakeBackend("new", 9002);
         b.timeout_ms = 100;
         return s->SetBackend(b, kCtx);
       },
       true, true},
      {"route.add", "route/orders", [&] { return s->AddRoute(r, kCtx); }, false, true},
      {"route.set", "route/orders",
       [&] {
         r.percent_bp = 5000;
         return s->SetRoute(r, kCtx);
       },
       true, true},
      {"route.disable", "route/orders", [&] { return s->SetRouteEnabled("orders", false, kCtx); },
       true, true},
      {"route.enable", "route/orders", [&] { return s->SetRouteEnabled("orders", true, kCtx); },
       true, true},
      {"route.rm", "route/orders", [&] { return s->RemoveRoute("orders", kCtx); }, true, false},
      {"backend.rm", "backend/new", [&] { return s->RemoveBackend("new", kCtx); }, true, false},
  };
  int64_t version = 0;
  int64_t last_id = 0;
  for (Step& step : steps) {
    INFO(step.action, " ", step.object);
    RequireOk(step.write());
    auto v = s->RulesetVersion();
    REQUIRE(v.ok());
    CHECK(*v == ++version);
    auto h = s->History("", 1);
    REQUIRE(h.ok());
    REQUIRE(h->size() == 1);
    const ChangeRow& c = (*h)[0];
    CHECK(c.id > last_id);
    last_id = c.id;
    CHECK(c.action == step.action);
    CHECK(c.object == step.object);
    CHECK(c.actor == "alice");
    CHECK(c.reason == "ticket-42");
    CHECK(c.ts.size() == 24);
    CHECK(c.ts.back() == 'Z');
    CHECK(c.ts[19] == '.');
    CHECK(c.before.is_null() != step.has_before);
    CHECK(c.after.is_null() != step.has_after);
    if (step.has_after) CHECK(c.after["name"] == step.object.substr(step.object.find('/') + 1));
  }
  auto h = s->History("", 0);
  REQUIRE(h.ok());
  CHECK(h->size() == steps.size());
  // The route's last state before removal is kept, so it can be restored.
  auto rm = s->History("orders", 1);
  REQUIRE(rm.ok());
  CHECK((*rm)[0].before["percent"] == 50);
}

TEST_CASE("store: writes that change nothing record nothing") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  const std::string before = Snapshot(*s);
  auto route = s->GetRoute("orders");
  REQUIRE(route.ok());
  RequireOk(s->SetRouteEnabled("orders", true, kCtx));
  RequireOk(s->SetRoute(*route, kCtx));
  auto legacy = s->GetBackend("legacy");
  REQUIRE(legacy.ok());
  RequireOk(s->SetBackend(*legacy, kCtx));  // already the default
  CHECK(Snapshot(*s) == before);
}

TEST_CASE("store: a write that fails half-way leaves nothing behind") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto s = MustOpen(path);
  Seed(*s);
  // Fails the history row of `boom`, after the old default was already cleared.
  RawExec(path,
          "CREATE TRIGGER boom BEFORE INSERT ON changes WHEN NEW.object_name = 'boom' "
          "BEGIN SELECT RAISE(ABORT, 'boom'); END;");
  const std::string before = Snapshot(*s);
  Status st = s->AddBackend(MakeBackend("boom", 9009, true), kCtx);
  CHECK(!st.ok());
  CHECK(Snapshot(*s) == before);
  CHECK(s->GetBackend("legacy")->is_default);
  // And the store still takes writes afterwards.
  RequireOk(s->AddBackend(MakeBackend("fine", 9010), kCtx));
}

TEST_CASE("store: DataVersion changes after another Store writes") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto reader = MustOpen(path);
  auto writer = MustOpen(path);
  auto v1 = reader->DataVersion();
  REQUIRE(v1.ok());
  auto again = reader->DataVersion();
  REQUIRE(again.ok());
  CHECK(*again == *v1);
  RequireOk(writer->AddBackend(MakeBackend("legacy", 9001), kCtx));
  auto v2 = reader->DataVersion();
  REQUIRE(v2.ok());
  CHECK(*v2 != *v1);
  auto rules = reader->Load();
  REQUIRE(rules.ok());
  CHECK(rules->version == 1);
  CHECK(rules->backends.size() == 1);
}

TEST_CASE("store: History filters by name and limits, newest first") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);  // legacy, orders-svc, orders
  RequireOk(s->SetRouteEnabled("orders", false, kCtx));
  RequireOk(s->SetRouteEnabled("orders", true, kCtx));

  auto all = s->History("", 0);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 5);
  for (size_t i = 1; i < all->size(); ++i) CHECK((*all)[i - 1].id > (*all)[i].id);

  auto orders = s->History("orders", 0);
  REQUIRE(orders.ok());
  REQUIRE(orders->size() == 3);
  CHECK((*orders)[0].action == "route.enable");
  CHECK((*orders)[1].action == "route.disable");
  CHECK((*orders)[2].action == "route.add");

  auto two = s->History("orders", 2);
  REQUIRE(two.ok());
  CHECK(two->size() == 2);
  CHECK((*two)[0].id == (*orders)[0].id);

  auto neg = s->History("", -1);
  REQUIRE(neg.ok());
  CHECK(neg->size() == 5);
  auto none = s->History("ghost", 10);
  REQUIRE(none.ok());
  CHECK(none->empty());
}

TEST_CASE("store: a write waiting on another writer gives up with a clear message") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto s = MustOpen(path);
  sqlite3* other = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &other) == SQLITE_OK);
  REQUIRE(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);
  Status st = s->AddBackend(MakeBackend("legacy", 9001), kCtx);  // waits the 5 s busy timeout
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  CHECK(st.code() == Code::kIo);
  CHECK(st.message() == "store is locked by another writer (waited 5s): try again");
  // Reads are not blocked by a writer in WAL mode, and the lock is gone now.
  RequireOk(s->AddBackend(MakeBackend("legacy", 9001), kCtx));
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
