// serve fails fast at startup (STYLE.md, Errors): a port in use, a decision
// log it cannot open, or rules it cannot read end it with exit 1 and a line
// saying why, before it serves anything.
#include <sqlite3.h>
#include <unistd.h>

#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "wire.h"

namespace strangler {
namespace e2e {
namespace {

// Runs SQL on the store past the CLI, as a damaged file would hold it.
void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string why = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, sql << ": " << why);
}

// `strangler --db DB serve ARGS...`, which must exit on its own (the cap of
// Run only ends a serve that wrongly started serving).
RunResult Serve(Fixture& fx, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {STRANGLER_BIN, "--db", fx.db(), "serve"};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, {}, kHangGuardMs);
}

TEST_CASE("e2e: serve does not start on a port in use or with a log it cannot open: exit 1, why") {
  Fixture fx;
  RawBackend be("be");
  REQUIRE(be.Start());
  fx.AddBackend("be", be.url());
  const std::string log = fx.dir().File("start.log");

  uint16_t taken = 0;
  int holder = ListenLoopback(&taken);
  REQUIRE(holder >= 0);
  const std::string listen = "127.0.0.1:" + std::to_string(taken);
  RunResult busy = Serve(fx, {"--listen", listen, "--log", log});
  close(holder);
  CHECK(busy.exit_code == 1);
  CHECK_MESSAGE(busy.err.find("cannot listen on " + listen + ": Address already in use") !=
                    std::string::npos,
                busy.err);

  const std::string no_dir = fx.dir().File("missing/dir/decisions.log");
  RunResult bad_log = Serve(fx, {"--listen", "127.0.0.1:0", "--log", no_dir});
  CHECK(bad_log.exit_code == 1);
  CHECK_MESSAGE(bad_log.err.find("cannot open decision log '" + no_dir + "'") != std::string::npos,
                bad_log.err);
  CHECK(be.request_count() == 0);
}

TEST_CASE("e2e: serve does not start on a store whose rules are damaged: exit 1, naming the row") {
  struct Case {
    std::string sql, why;
  };
  const std::vector<Case> cases = {
      {"UPDATE backends SET urls = 'not json' WHERE name = 'be'",
       "store is damaged: urls of backend 'be' is not a JSON array"},
      {"UPDATE backends SET urls = '[1]' WHERE name = 'be'",
       "store is damaged: urls of backend 'be' holds a non-string"},
      {"UPDATE routes SET spec = '{' WHERE name = 'r'",
       "store is damaged: spec of route 'r' is not JSON"},
      {"UPDATE routes SET spec = '[]' WHERE name = 'r'",
       "store is damaged: spec of route 'r' does not parse: "},
  };
  for (const Case& c : cases) {
    INFO(c.sql);
    Fixture fx;
    RawBackend be("be");
    REQUIRE(be.Start());
    fx.AddBackend("be", be.url());
    fx.AddRoute("r", {"--to", "be", "--path", "/r"});
    RawExec(fx.db(), c.sql);
    RunResult r = Serve(fx, {"--listen", "127.0.0.1:0", "--log", fx.log_path()});
    CHECK(r.exit_code == 1);
    CHECK_MESSAGE(r.err.find("cannot serve the rules in " + fx.db() + ": " + c.why) !=
                      std::string::npos,
                  r.err);
    CHECK(r.err.find("listening on") == std::string::npos);
    // The CLI reads the same rows and says the same.
    const bool backend_row = c.sql.find("backends") != std::string::npos;
    RunResult list = fx.Cli({backend_row ? "backend" : "route", "list"});
    CHECK(list.exit_code == 1);
    CHECK_MESSAGE(list.err.find(c.why) != std::string::npos, list.err);
  }
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
