// The store's side of "Backends in production": backend options in the
// backends.options column (and a schema-2 store migrated to it), and the live
// instance load each serve writes (instance_load). Time is passed in.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <string>
#include <utility>
#include <vector>

#include "store/migrations.h"
#include "store/store.h"
#include "test_util.h"

namespace strangler {
namespace {

TEST_SUITE_BEGIN("store");

using testing::RawExec;
using testing::RawInt;
using testing::RawText;
using testing::ReadFile;
using testing::RequireOk;
using testing::TempDir;

const ChangeContext kCtx{"alice", "ticket-21"};

std::unique_ptr<Store> MustOpen(const std::string& path) {
  auto s = Store::Open(path);
  INFO(path, ": ", s.status().message());
  REQUIRE(s.ok());
  return std::move(*s);
}

Backend MakeBackend(const std::string& name, int port) {
  Backend b;
  b.name = name;
  b.urls = {"http://127.0.0.1:" + std::to_string(port)};
  return b;
}

// A store as a binary that knows migrations 1 and 2 left it.
void WriteSchema2Store(const std::string& path) {
  std::string sql =
      "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
      "applied_at TEXT NOT NULL);";
  for (const Migration& m : Migrations()) {
    if (m.version > 2) break;
    sql += m.sql;
    sql += ";INSERT INTO schema_migrations VALUES (" + std::to_string(m.version) + ", '" + m.name +
           "', '2026-11-01T00:00:00.000Z');";
  }
  sql +=
      "INSERT INTO backends (name, urls, is_default, timeout_ms, created_at, updated_at) VALUES "
      "('legacy', '[\"http://127.0.0.1:9001\"]', 1, 30000, 't', 't'), "
      "('orders', '[\"http://127.0.0.1:9002\",\"http://127.0.0.1:9003\"]', 0, 1500, 't', 't');"
      "INSERT INTO routes (name, to_backend, else_backend, spec, created_at, updated_at) VALUES "
      "('api', 'orders', NULL, '{\"name\":\"api\",\"to\":\"orders\",\"path\":\"/api\"}', 't', "
      "'t');"
      "INSERT INTO changes (ts, actor, action, object_kind, object_name, before, after) VALUES "
      "('t', 'bob', 'backend.add', 'backend', 'orders', NULL, "
      "'{\"default\":false,\"name\":\"orders\",\"timeout_ms\":1500,\"urls\":[]}');"
      "UPDATE meta SET value = 3 WHERE key = 'ruleset_version';";
  RawExec(path, sql);
}

// --- backend options ---------------------------------------------------------

TEST_CASE("store: a schema-2 store migrates to 3 and keeps its backends, routes and history") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  WriteSchema2Store(path);
  REQUIRE(Migrations().back().version >= 3);
  auto s = MustOpen(path);
  CHECK(s->schema_version() == Migrations().back().version);
  CHECK(RawText(path, "SELECT name FROM schema_migrations WHERE version = 3") ==
        "0003_backend_options_and_load");
  auto rules = s->Load();
  REQUIRE(rules.ok());
  CHECK(rules->version == 3);
  REQUIRE(rules->backends.size() == 2);
  const Backend& orders = rules->backends[1];
  CHECK(orders.name == "orders");
  CHECK(orders.urls.size() == 2);
  CHECK(orders.timeout_ms == 1500);
  // Rows from before the options take every option's default...
  CHECK(orders.connect_timeout_ms == kDefaultConnectTimeoutMs);
  CHECK(orders.max_conns == 0);
  CHECK(orders.max_queue == 0);
  CHECK(orders.queue_timeout_ms == kDefaultQueueTimeoutMs);
  CHECK(RawText(path, "SELECT options FROM backends WHERE name = 'orders'") == "{}");
  // ...so they read back as the same JSON objects as before the migration.
  CHECK(ToJson(orders).dump() == R"({"default":false,"name":"orders","timeout_ms":1500,)"
                                 R"("urls":["http://127.0.0.1:9002","http://127.0.0.1:9003"]})");
  REQUIRE(rules->routes.size() == 1);
  CHECK(rules->routes[0].to == "orders");
  auto history = s->History("", 0);
  REQUIRE(history.ok());
  CHECK(history->size() == 1);
  // The new table is there, empty; and the migrated store takes writes.
  CHECK(RawInt(path, "SELECT count(*) FROM instance_load") == 0);
  Backend capped = orders;
  capped.max_conns = 4;
  RequireOk(s->SetBackend(capped, kCtx));
  CHECK(s->GetBackend("orders")->max_conns == 4);
}

TEST_CASE("store: a store this build wrote is refused by a binary that knows schema 2") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  RequireOk(MustOpen(path)->AddBackend(MakeBackend("legacy", 9001), kCtx));
  const std::string before = ReadFile(path);
  // What an older binary runs when it opens a store (store/migrations.cc),
  // with what it knows: migrations up to 2.
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
  Result<int> old = store_internal::CheckExisting(db, path, 2);
  sqlite3_close(db);
  REQUIRE_FALSE(old.ok());
  CHECK(old.status().message() == "store " + path +
                                      " has schema version " + std::to_string(Migrations().back().version) +
                                      ", newer than this strangler (knows "
                                      "up to 2): upgrade strangler");
  CHECK(ReadFile(path) == before);
}

TEST_CASE("store: backend options are kept in backends.options, only those set") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto s = MustOpen(path);
  Backend legacy = MakeBackend("legacy", 9001);
  RequireOk(s->AddBackend(legacy, kCtx));
  Backend orders = MakeBackend("orders", 9002);
  orders.connect_timeout_ms = 300;
  orders.max_conns = 8;
  orders.max_queue = 64;
  orders.queue_timeout_ms = 2500;
  RequireOk(s->AddBackend(orders, kCtx));
  CHECK(RawText(path, "SELECT options FROM backends WHERE name = 'legacy'") == "{}");
  CHECK(RawText(path, "SELECT options FROM backends WHERE name = 'orders'") ==
        R"({"connect_timeout_ms":300,"max_conns":8,"max_queue":64,"queue_timeout_ms":2500})");
  {
    auto again = MustOpen(path);
    auto got = again->GetBackend("orders");
    REQUIRE(got.ok());
    CHECK(ToJson(*got) == ToJson(orders));
    auto history = again->History("orders", 1);
    REQUIRE(history.ok());
    CHECK((*history)[0].after == ToJson(orders));
  }
  // Back to the defaults: the column empties.
  Backend plain = orders;
  plain.connect_timeout_ms = kDefaultConnectTimeoutMs;
  plain.max_conns = 0;
  plain.max_queue = 0;
  plain.queue_timeout_ms = kDefaultQueueTimeoutMs;
  RequireOk(s->SetBackend(plain, kCtx));
  CHECK(RawText(path, "SELECT options FROM backends WHERE name = 'orders'") == "{}");
  // Invalid options are refused like any invalid backend, nothing written.
  Backend bad = orders;
  bad.max_conns = -1;
  CHECK(s->SetBackend(bad, kCtx).code() == Code::kUsage);
  CHECK(s->GetBackend("orders")->max_conns == 0);
}

TEST_CASE("store: an options column it cannot read is refused, naming the backend") {
  struct Case {
    const char* options;
    const char* error;
  };
  const std::vector<Case> cases = {
      {"not json", "store is damaged: options of backend 'orders' is not a JSON object"},
      {"[]", "store is damaged: options of backend 'orders' is not a JSON object"},
      {R"({"max_conns": -3})",
       "store is damaged: options of backend 'orders': bad --max-conns -3 for backend 'orders'"},
      {R"({"max_conns": "3"})",
       "store is damaged: options of backend 'orders': field 'max_conns' must be an integer"},
      // Written by a newer strangler that added an option without a migration.
      {R"({"max_conns": 3, "tls_ca": "/ca.pem"})",
       "backend 'orders' has option 'tls_ca', which this strangler does not know (a newer "
       "strangler wrote it): upgrade strangler"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.options);
    TempDir dir;
    const std::string path = dir.File("s.db");
    auto s = MustOpen(path);
    RequireOk(s->AddBackend(MakeBackend("orders", 9002), kCtx));
    RawExec(path,
            std::string("UPDATE backends SET options = '") + c.options + "' WHERE name = 'orders'");
    for (Status st :
         {s->GetBackend("orders").status(), s->Load().status(), s->ListBackends().status()}) {
      CHECK_FALSE(st.ok());
      CHECK(st.message().rfind(c.error, 0) == 0);
    }
  }
}

// --- instance load -------------------------------------------------------------

InstanceLoad Load(const std::string& backend, const std::string& instance, int64_t open) {
  InstanceLoad l;
  l.backend = backend;
  l.instance = instance;
  l.max_conns = 10;
  l.open = open;
  l.idle = 1;
  l.in_use = open - 1;
  l.queued = 2;
  l.queue_waits = 30;
  l.queue_503 = 4;
  l.connect_failures = 5;
  return l;
}

// "serve backend instance open" per row, in the order read.
std::vector<std::string> Rows(Store& s, const std::string& backend, int64_t since) {
  auto rows = s.ReadInstanceLoad(backend, since);
  INFO(rows.status().message());
  REQUIRE(rows.ok());
  std::vector<std::string> out;
  for (const auto& [serve, l] : *rows) {
    out.push_back(serve + " " + l.backend + " " + l.instance + " " + std::to_string(l.open));
  }
  return out;
}

TEST_CASE("store: instance load: each serve's rows replaced together, read fresh and in order") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  const int64_t t = 1'800'000'000'000;
  RequireOk(s->WriteInstanceLoad(
      "serve-b", t, {Load("orders", "10.0.0.2:80", 3), Load("orders", "10.0.0.1:80", 5)}));
  RequireOk(s->WriteInstanceLoad(
      "serve-a", t + 500, {Load("orders", "10.0.0.1:80", 7), Load("legacy", "10.0.0.9:80", 2)}));

  // By backend, instance, serve; "" = every backend.
  CHECK(Rows(*s, "", t) ==
        std::vector<std::string>{"serve-a legacy 10.0.0.9:80 2", "serve-a orders 10.0.0.1:80 7",
                                 "serve-b orders 10.0.0.1:80 5", "serve-b orders 10.0.0.2:80 3"});
  CHECK(Rows(*s, "orders", t) == std::vector<std::string>{"serve-a orders 10.0.0.1:80 7",
                                                          "serve-b orders 10.0.0.1:80 5",
                                                          "serve-b orders 10.0.0.2:80 3"});
  CHECK(Rows(*s, "ghost", t).empty());
  // Freshness: updated at or after fresh_since.
  CHECK(Rows(*s, "orders", t + 500) == std::vector<std::string>{"serve-a orders 10.0.0.1:80 7"});
  CHECK(Rows(*s, "orders", t + 501).empty());

  // Every count comes back.
  auto one = s->ReadInstanceLoad("legacy", t);
  REQUIRE(one.ok());
  REQUIRE(one->size() == 1);
  const InstanceLoad& l = (*one)[0].second;
  CHECK(l.max_conns == 10);
  CHECK(l.open == 2);
  CHECK(l.idle == 1);
  CHECK(l.in_use == 1);
  CHECK(l.queued == 2);
  CHECK(l.queue_waits == 30);
  CHECK(l.queue_503 == 4);
  CHECK(l.connect_failures == 5);

  // A serve's next write replaces all of its rows (an instance gone is gone).
  RequireOk(s->WriteInstanceLoad("serve-b", t + 1000, {Load("orders", "10.0.0.1:80", 9)}));
  CHECK(Rows(*s, "orders", t) ==
        std::vector<std::string>{"serve-a orders 10.0.0.1:80 7", "serve-b orders 10.0.0.1:80 9"});
  // An empty report clears it; Drop removes a serve's rows, others stay.
  RequireOk(s->WriteInstanceLoad("serve-b", t + 1000, {}));
  CHECK(Rows(*s, "orders", t) == std::vector<std::string>{"serve-a orders 10.0.0.1:80 7"});
  RequireOk(s->DropInstanceLoad("serve-a"));
  RequireOk(s->DropInstanceLoad("never-wrote"));
  CHECK(Rows(*s, "", 0).empty());
}

TEST_CASE("store: instance load left by a dead serve is deleted by a write an hour later") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto s = MustOpen(path);
  const int64_t t = 1'800'000'000'000;
  RequireOk(s->WriteInstanceLoad("dead", t, {Load("orders", "10.0.0.1:80", 1)}));
  RequireOk(s->WriteInstanceLoad("alive", t + 3600 * 1000, {Load("orders", "10.0.0.1:80", 2)}));
  CHECK(RawInt(path, "SELECT count(*) FROM instance_load WHERE serve = 'dead'") == 1);
  RequireOk(s->WriteInstanceLoad("alive", t + 3600 * 1000 + 1, {Load("orders", "10.0.0.1:80", 2)}));
  CHECK(RawInt(path, "SELECT count(*) FROM instance_load WHERE serve = 'dead'") == 0);
  CHECK(Rows(*s, "", 0) == std::vector<std::string>{"alive orders 10.0.0.1:80 2"});
}

// serve's Reloader polls DataVersion() and rebuilds only when
// RulesetVersion() moved (src/control/serve.cc): load rows must not move it.
TEST_CASE("store: writing instance load changes no ruleset version and records no history") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto serve = MustOpen(path);
  auto other = MustOpen(path);
  RequireOk(serve->AddBackend(MakeBackend("orders", 9002), kCtx));
  const int64_t ruleset = *serve->RulesetVersion();
  const int64_t own_dv = *serve->DataVersion();
  const int64_t other_dv = *other->DataVersion();
  RequireOk(serve->WriteInstanceLoad("s1", 1000, {Load("orders", "127.0.0.1:9002", 1)}));
  RequireOk(serve->DropInstanceLoad("s1"));
  CHECK(*serve->RulesetVersion() == ruleset);
  CHECK(*other->RulesetVersion() == ruleset);
  CHECK(*serve->DataVersion() == own_dv);     // the writer's own poll sees nothing
  CHECK(*other->DataVersion() != other_dv);   // another serve's poll sees a commit...
  CHECK(serve->History("", 0)->size() == 1);  // ...that is no change of the rules
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
