// Store faults under a running serve: the file deleted, replaced, or
// corrupted. The last good rules keep serving; a good file is picked up.
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

// Polls until `path` is answered by `want` (or timeout).
bool EventuallyRoutes(RawClient& c, const std::string& path, const std::string& want,
                      int timeout_ms) {
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
    usleep(400000);
    for (int i = 0; i < 20; ++i) CHECK(BackendOf(c, "/x") == "b");
    CHECK(fx.serve()->Running());
    CHECK(fx.serve()->Stderr().find("is gone") != std::string::npos);
    // Brought back (a restore): its rules take over.
    REQUIRE(rename(other.c_str(), fx.db().c_str()) == 0);
    CHECK(EventuallyRoutes(c, "/x", "a", 3000));
  }
  SUBCASE("corrupted in place, then replaced by a good file") {
    {
      std::fstream f(fx.db(), std::ios::in | std::ios::out | std::ios::binary);
      REQUIRE(f.good());
      std::string junk(8192, '\xee');
      f.seekp(0);
      f.write(junk.data(), static_cast<std::streamsize>(junk.size()));
    }
    // Make the change visible to the running connection's change detector.
    Run({STRANGLER_BIN, "--db", fx.db(), "route", "set", "r", "--percent", "50"});
    usleep(400000);
    for (int i = 0; i < 20; ++i) CHECK(BackendOf(c, "/x") == "b");
    CHECK(fx.serve()->Running());
    REQUIRE(rename(other.c_str(), fx.db().c_str()) == 0);
    CHECK(EventuallyRoutes(c, "/x", "a", 3000));
  }
  CHECK(fx.StopServe(SIGTERM) == 0);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
