// A store held by a long writer: the CLI waits (busy timeout), then fails
// with a clear one-line error and exit 1, and writes nothing; a running
// serve keeps serving meanwhile.
#include <sqlite3.h>

#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: a store locked by a long writer: the CLI waits, then exits 1 and writes nothing") {
  Fixture fx;
  RawBackend a("a");
  REQUIRE(a.Start());
  fx.AddBackend("a", a.url());
  REQUIRE(fx.StartServe());

  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(fx.db().c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) == SQLITE_OK);

  int64_t t0 = NowMs();
  RunResult r = fx.Cli({"route", "add", "blocked", "--to", "a", "--path", "/b"});
  int64_t took = NowMs() - t0;
  MESSAGE("CLI gave up after " << took << " ms: " << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("locked") != std::string::npos);
  CHECK(r.err.find('\n') == r.err.size() - 1);  // one line
  CHECK(took >= 4000);  // it waited for the writer instead of failing at once

  // Meanwhile serve answered from its snapshot.
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  HttpResponse ok = c.Get("/during");
  REQUIRE_MESSAGE(ok.ok, ok.error);
  CHECK(ok.status == 200);

  REQUIRE(sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  RunResult shown = fx.Cli({"route", "show", "blocked"});
  CHECK(shown.exit_code == 1);  // nothing was written
  RunResult later = fx.Cli({"route", "add", "blocked", "--to", "a", "--path", "/b"});
  CHECK(later.exit_code == 0);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
