// `strangler serve` takes every option from STRANGLER_* variables too (for
// systemd units and containers); a flag given on the command line wins.
#include <csignal>
#include <string>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

TEST_CASE("e2e: serve options from the environment: STRANGLER_LISTEN, STRANGLER_LOG, and a flag wins") {
  TempDir dir;
  const std::string db = dir.File("s.db");
  RawBackend be("be");
  REQUIRE(be.Start());
  REQUIRE(Run({STRANGLER_BIN, "--db", db, "backend", "add", "be", be.url()}).exit_code == 0);
  const uint16_t port = PickFreePort();
  Process serve({STRANGLER_BIN, "--db", db, "serve", "--log-keep", "3"},
                {"STRANGLER_LISTEN=127.0.0.1:" + std::to_string(port),
                 "STRANGLER_LOG=" + dir.File("env.log"), "STRANGLER_LOG_KEEP=oops"},
                dir.File("serve.out"), dir.File("serve.err"));
  REQUIRE(serve.Start());
  REQUIRE_MESSAGE(WaitForPort(port, 10000), serve.Stderr());  // guards a hang only
  RawClient c;
  REQUIRE(c.Connect(port));
  HttpResponse r = c.Get("/x");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  CHECK(serve.Stop(SIGTERM, 10000) == 0);
  // The log went where STRANGLER_LOG said; the bad STRANGLER_LOG_KEEP was
  // never read, since --log-keep was given.
  CHECK(ReadFile(dir.File("env.log")).find("\"path\":\"/x\"") != std::string::npos);
  RunResult bad = Run({STRANGLER_BIN, "--db", db, "serve"}, {"STRANGLER_RELOAD_MS=5"});
  CHECK(bad.exit_code == 2);
  CHECK(bad.err.find("--reload-ms must be 10..60000") != std::string::npos);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
