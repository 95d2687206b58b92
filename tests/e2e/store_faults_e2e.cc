// Store faults under a running serve: the file deleted, replaced, or
// corrupted. The last good rules keep serving (checked once serve has noticed
// the fault and logged it); a good file is picked up.
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

std::string BackendOf(RawClient& c, const std::string& path) {
  HttpResponse r = c.Get(path);
  if (!r.ok) return "error: " + r.error;
  auto h = r.Header("X-Backend");
  return h ? *h : "(none)";
}

// Runs SQL on the store through a connection of its own, as another process
// would (so the running serve's PRAGMA data_version sees its commits).
void RawExec(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  char* err = nullptr;
  int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
  std::string why = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(db);
  REQUIRE_MESSAGE(rc == SQLITE_OK, sql << ": " << why);
}

// Polls until `path` is answered by `want` (or timeout: a hang guard).
bool EventuallyRoutes(RawClient& c, const std::string& path, const std::string& want,
                      int timeout_ms = kHangGuardMs) {
  int64_t end = NowMs() + timeout_ms;
  while (NowMs() < end) {
    if (BackendOf(c, path) == want) return true;
    usleep(20000);
  }
  return false;
}

TEST_CASE("e2e: store deleted, corrupted, then replaced under a running serve") {
  Fixture fx;
  RawBackend a("a"), b("b");
  REQUIRE(a.Start());
  REQUIRE(b.Start());
  fx.AddBackend("a", a.url());
  fx.AddBackend("b", b.url());
  fx.AddRoute("r", {"--to", "b", "--path", "/x"});
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  REQUIRE(BackendOf(c, "/x") == "b");

  // A good replacement prepared aside: /x goes to a there.
  std::string other = fx.dir().File("other.db");
  REQUIRE(Run({STRANGLER_BIN, "--db", other, "backend", "add", "a", a.url()}).exit_code == 0);
  REQUIRE(Run({STRANGLER_BIN, "--db", other, "backend", "add", "b", b.url()}).exit_code == 0);
  REQUIRE(Run({STRANGLER_BIN, "--db", other, "route", "add", "r", "--to", "a", "--path", "/x"})
              .exit_code == 0);

  SUBCASE("deleted: keeps serving the last rules") {
    REQUIRE(unlink(fx.db().c_str()) == 0);
    unlink((fx.db() + "-wal").c_str());
    unlink((fx.db() + "-shm").c_str());
    // Noticed (logged), and only then checked: the last rules still serve.
    CHECK(PollUntil([&] { return fx.serve()->Stderr().find("is gone") != std::string::npos; }));
    for (int i = 0; i < 20; ++i) CHECK(BackendOf(c, "/x") == "b");
    CHECK(fx.serve()->Running());
    // Brought back (a restore): its rules take over.
    REQUIRE(rename(other.c_str(), fx.db().c_str()) == 0);
    CHECK(EventuallyRoutes(c, "/x", "a"));
  }
  SUBCASE("replaced by a file that is not a store: keeps serving, then takes a good one") {
    const std::string junk = fx.dir().File("junk.db");
    {
      std::ofstream f(junk, std::ios::binary);
      f << std::string(8192, 'j');
    }
    REQUIRE(rename(junk.c_str(), fx.db().c_str()) == 0);
    const std::string said = "store file " + fx.db() + " was replaced and cannot be opened: ";
    CHECK(PollUntil([&] { return fx.serve()->Stderr().find(said) != std::string::npos; }));
    for (int i = 0; i < 20; ++i) CHECK(BackendOf(c, "/x") == "b");
    CHECK(fx.serve()->Running());
    REQUIRE(rename(other.c_str(), fx.db().c_str()) == 0);
    CHECK(EventuallyRoutes(c, "/x", "a"));
  }
  SUBCASE("corrupted in place, then replaced by a good file") {
    // Every page but the first (the file header and the schema) overwritten,
    // with everything on disk first: the file still opens, its tables are junk.
    RawExec(fx.db(), "PRAGMA wal_checkpoint(TRUNCATE)");
    {
      std::fstream f(fx.db(), std::ios::in | std::ios::out | std::ios::binary);
      REQUIRE(f.good());
      unsigned char header[100];
      f.read(reinterpret_cast<char*>(header), sizeof(header));
      REQUIRE(f.good());
      int64_t page = header[16] << 8 | header[17];  // big-endian; 1 means 65536
      if (page == 1) page = 65536;
      f.seekg(0, std::ios::end);
      const int64_t size = f.tellg();
      REQUIRE(size > page);
      std::string junk(static_cast<size_t>(size - page), '\xee');
      f.seekp(page);
      f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
      REQUIRE(f.good());
    }
    // A commit that touches the first page only: the running serve's change
    // detector sees a new data version and reads the store. (A `strangler
    // route set` here fails on the damaged tables and commits nothing, so
    // serve would never look.)
    RawExec(fx.db(), "PRAGMA user_version = 7");
    // "Kept the last good rules", not "not noticed yet": serve read the
    // damaged store and said it keeps its rules...
    CHECK(PollUntil([&] {
      return fx.serve()->Stderr().find("new rules refused, still serving ruleset") !=
             std::string::npos;
    }));
    MESSAGE(fx.serve()->Stderr());
    // ...and they are what serves.
    for (int i = 0; i < 20; ++i) CHECK(BackendOf(c, "/x") == "b");
    CHECK(fx.serve()->Running());
    REQUIRE(rename(other.c_str(), fx.db().c_str()) == 0);
    CHECK(EventuallyRoutes(c, "/x", "a"));
  }
  CHECK(fx.StopServe(SIGTERM) == 0);
}

// Reloader::Poll used to report the missing or unopenable file, then go on
// with the store it still held open, rebuild the snapshot, log "store ... is
// readable again" and forget the error: three log lines every --reload-ms
// for as long as the file was bad. Reported once now, and never "readable".
TEST_CASE("e2e: a store file gone or replaced by a bad one is reported once, never as readable") {
  Fixture fx;
  RawBackend b("b");
  REQUIRE(b.Start());
  fx.AddBackend("b", b.url());
  REQUIRE(fx.StartServe());
  std::string said;
  SUBCASE("deleted") {
    REQUIRE(unlink(fx.db().c_str()) == 0);
    unlink((fx.db() + "-wal").c_str());
    unlink((fx.db() + "-shm").c_str());
    said = "store file " + fx.db() + " is gone";
  }
  SUBCASE("replaced by a file that is not a store") {
    const std::string junk = fx.dir().File("junk.db");
    {
      std::ofstream f(junk, std::ios::binary);
      f << std::string(8192, 'j');
    }
    REQUIRE(rename(junk.c_str(), fx.db().c_str()) == 0);
    // The old store's -wal and -shm go too, as with a restore: left beside
    // the junk, SQLite may read the old pages from that WAL and open the
    // junk as the old store (seen once, on a loaded machine: no report).
    unlink((fx.db() + "-wal").c_str());
    unlink((fx.db() + "-shm").c_str());
    said = "store file " + fx.db() + " was replaced and cannot be opened";
  }
  CHECK(PollUntil([&] { return fx.serve()->Stderr().find(said) != std::string::npos; }));
  CHECK(fx.StopServe(SIGTERM) == 0);  // flushes its log; the file is still bad
  const std::string err = fx.serve()->Stderr();
  INFO(err);
  CHECK(err.find(said) == err.rfind(said));
  CHECK(err.find("is readable again") == std::string::npos);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
