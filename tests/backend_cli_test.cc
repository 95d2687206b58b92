// `backend add|set|show` and the options of "Backends in production"
// (PRODUCT.md): --connect-timeout-ms, --max-conns, --max-queue,
// --queue-timeout, and the live load of each instance that running serves
// write to the store (here written straight into the store, as serve does).
// Whole commands run through RunCli against a temporary store.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "base/time.h"
#include "cli/cli.h"
#include "cli_store.h"

namespace strangler {
namespace {

using testing::CliStore;
using testing::Out;

// Writes load rows to the store as serve `serve_id` would, at `now_ms`.
void Report(const CliStore& s, const std::string& serve_id, int64_t now_ms,
            const std::vector<InstanceLoad>& rows) {
  auto store = Store::Open(s.db());
  REQUIRE(store.ok());
  testing::RequireOk((*store)->WriteInstanceLoad(serve_id, now_ms, rows));
}

InstanceLoad Instance(const std::string& instance, int max_conns, int64_t open, int64_t idle,
                      int64_t queued, int64_t waits, int64_t e503, int64_t failures) {
  InstanceLoad l;
  l.backend = "orders";
  l.instance = instance;
  l.max_conns = max_conns;
  l.open = open;
  l.idle = idle;
  l.in_use = open - idle;
  l.queued = queued;
  l.queue_waits = waits;
  l.queue_503 = e503;
  l.connect_failures = failures;
  return l;
}

TEST_CASE("cli: backend add and set take the backend options; show prints them") {
  CliStore s;
  s.Must({"backend", "add", "legacy", "http://127.0.0.1:9001"});
  Out added =
      s.Must({"backend", "add", "orders", "http://127.0.0.1:9002", "--max-conns", "10",
              "--max-queue", "100", "--queue-timeout", "2s", "--connect-timeout-ms", "500"});
  CHECK(added.out == "added backend orders http://127.0.0.1:9002\n");
  CHECK(s.Must({"backend", "show", "orders"}).out ==
        "name:      orders\n"
        "default:   no\n"
        "timeout:   30000ms\n"
        "connect:   500ms timeout\n"
        "max conns: 10 per instance\n"
        "queue:     at most 100 waiting, each at most 2s\n"
        "reuse:     after 1ms quiet\n"
        "checks:    none\n"
        "eject:     after 5 failures in a row, for 10s (doubling, at most 5m)\n"
        "urls:      http://127.0.0.1:9002\n"
        "load:      no running serve has reported this backend\n");
  // set changes only what it is given, and says what changed.
  CHECK(s.Must({"backend", "set", "orders", "--queue-timeout", "500ms"}).out ==
        "updated backend orders: queue_timeout_ms 2000→500\n");
  CHECK(s.Must({"backend", "set", "orders", "--max-queue", "0"}).out ==
        "updated backend orders: max_queue 100→-\n");
  CHECK(s.Must({"backend", "set", "orders", "--max-conns", "10"}).out ==
        "backend orders unchanged\n");
  Json j = Json::parse(s.Must({"backend", "show", "orders", "--json"}).out);
  CHECK(j["max_conns"] == 10);
  CHECK(j["connect_timeout_ms"] == 500);
  CHECK(j["queue_timeout_ms"] == 500);
  CHECK_FALSE(j.contains("max_queue"));  // back at its default
  CHECK(j["load"] == Json::array());
  // The history keeps each change as before/after objects.
  Json h = Json::parse(s.Must({"history", "orders", "--json", "--limit", "1"}).out);
  CHECK(h[0]["before"]["max_queue"] == 100);
  CHECK_FALSE(h[0]["after"].contains("max_queue"));
  // --reuse-quiet-ms: "-" is the default (1 ms), written only once changed.
  CHECK(s.Must({"backend", "set", "orders", "--reuse-quiet-ms", "0"}).out ==
        "updated backend orders: reuse_quiet_ms -→0\n");
  CHECK(Json::parse(s.Must({"backend", "show", "orders", "--json"}).out)["reuse_quiet_ms"] == 0);
  CHECK(s.Must({"backend", "show", "orders"}).out.find("reuse:     after 0ms quiet\n") !=
        std::string::npos);
  // Active checks: set, shown, cleared with an empty path.
  CHECK(s.Must({"backend", "set", "orders", "--health-path", "/healthz", "--health-every", "2s"})
            .out == "updated backend orders: health_every_ms -→2000, health_path -→/healthz\n");
  CHECK(s.Must({"backend", "show", "orders"}).out.find("checks:    GET /healthz every 2s\n") !=
        std::string::npos);
  CHECK(s.Must({"backend", "set", "orders", "--health-path", ""}).out ==
        "updated backend orders: health_path /healthz→-\n");
  CHECK(s.Must({"backend", "show", "orders"}).out.find("checks:    none\n") != std::string::npos);

  // Bad values: exit 2, one line naming the flag, nothing written.
  struct Bad {
    std::vector<std::string> args;
    const char* error;
  };
  const std::vector<Bad> bad = {
      {{"--max-conns", "100001"}, "bad --max-conns 100001 for backend 'orders': use 0..100000"},
      {{"--max-queue", "1000001"}, "bad --max-queue 1000001 for backend 'orders': use 0..1000000"},
      {{"--connect-timeout-ms", "0"},
       "bad --connect-timeout-ms 0 for backend 'orders': use 1..3600000"},
      {{"--queue-timeout", "0s"}, "bad --queue-timeout 0ms for backend 'orders': use 1ms..1h"},
      {{"--queue-timeout", "soon"}, "bad --queue-timeout: bad duration 'soon'"},
      {{"--reuse-quiet-ms", "1001"},
       "bad --reuse-quiet-ms 1001 for backend 'orders': use 0..1000"},
      {{"--reuse-quiet-ms", "-1"}, "bad --reuse-quiet-ms -1 for backend 'orders': use 0..1000"},
      {{"--eject-for", "10m"}, "bad --eject-for 10m for backend 'orders': use 100ms..5m"},
      {{"--health-every", "soon"}, "bad --health-every: bad duration 'soon'"},
      {{"--health-path", "healthz"},
       "bad --health-path 'healthz' for backend 'orders': give a path such as /healthz"},
      {{"--health-path", "/a b"},
       "bad --health-path '/a b' for backend 'orders': give a path such as /healthz"},
  };
  const std::string before = s.Must({"backend", "show", "orders", "--json"}).out;
  for (const Bad& b : bad) {
    std::vector<std::string> args = {"backend", "set", "orders"};
    args.insert(args.end(), b.args.begin(), b.args.end());
    CAPTURE(b.error);
    Out r = s.Cli(args);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.rfind(std::string("strangler: ") + b.error, 0) == 0);
    CHECK(r.err.find('\n') == r.err.size() - 1);
  }
  CHECK(s.Must({"backend", "show", "orders", "--json"}).out == before);
  Out add_bad = s.Cli({"backend", "add", "x", "http://127.0.0.1:9", "--max-conns", "-2"});
  CHECK(add_bad.code == 2);
  CHECK(s.Cli({"backend", "show", "x"}).code == 1);
}

TEST_CASE("cli: backend show prints each live serve's load of each instance, fresh rows only") {
  CliStore s;
  s.Must({"backend", "add", "orders", "http://127.0.0.1:9002", "http://127.0.0.1:9003",
          "--max-conns", "10"});
  const int64_t now = NowUnixMs();
  // 9003 is ejected until 2026-01-01T12:34:56.500Z (the serve reports it).
  InstanceLoad ejected = Instance("127.0.0.1:9003", 10, 2, 2, 0, 0, 0, 5);
  ejected.ejected = true;
  ejected.ejected_until_ms = 1767270896500;
  ejected.failures = 4;
  ejected.ejections = 1;
  ejected.last_failure = "connection refused";
  Report(s, "web1 0.0.0.0:8080 pid 4711", now,
         {Instance("127.0.0.1:9002", 10, 10, 0, 3, 120, 4, 0), ejected});
  Report(s, "web2 0.0.0.0:8080 pid 815", now - 1000,
         {Instance("127.0.0.1:9002", 10, 7, 1, 0, 12, 0, 0)});
  // A serve that stopped reporting a minute ago is not shown.
  Report(s, "gone:1", now - 60000, {Instance("127.0.0.1:9002", 10, 1, 1, 0, 0, 0, 0)});
  // Nor are other backends' rows.
  InstanceLoad other = Instance("127.0.0.1:9001", 0, 1, 1, 0, 0, 0, 0);
  other.backend = "legacy";
  Report(s, "web3:1", now, {other});

  Out show = s.Must({"backend", "show", "orders"});
  CHECK(show.out ==
        "name:      orders\n"
        "default:   yes\n"
        "timeout:   30000ms\n"
        "connect:   2000ms timeout\n"
        "max conns: 10 per instance\n"
        "queue:     no bound, each at most 5s\n"
        "reuse:     after 1ms quiet\n"
        "checks:    none\n"
        "eject:     after 5 failures in a row, for 10s (doubling, at most 5m)\n"
        "urls:      http://127.0.0.1:9002\n"
        "           http://127.0.0.1:9003\n"
        "load:      INSTANCE        STATE                    OPEN   IDLE  IN-USE  QUEUED  WAITED  503S  "
        "CONNECT-FAILS  SERVE\n"
        "           127.0.0.1:9002  up                       10/10  0     10      3       120     4     "
        "0              web1 0.0.0.0:8080 pid 4711\n"
        "           127.0.0.1:9002  up                       7/10   1     6       0       12      0     "
        "0              web2 0.0.0.0:8080 pid 815\n"
        "           127.0.0.1:9003  ejected until 12:34:56Z  2/10   2     0       0       0       0     "
        "5              web1 0.0.0.0:8080 pid 4711\n"
        "           (STATE, OPEN/cap and QUEUED now; WAITED, 503S and CONNECT-FAILS since that "
        "serve started)\n"
        "           127.0.0.1:9003: 4 failures in a row, ejected 1x in a row; last: connection "
        "refused (web1 0.0.0.0:8080 pid 4711)\n");

  // backend list counts what is in rotation across the serves: 9003 is out.
  CHECK(s.Must({"backend", "list"}).out.find("10         1/2          http://127.0.0.1:9002") !=
        std::string::npos);
  Json j = Json::parse(s.Must({"backend", "show", "orders", "--json"}).out);
  REQUIRE(j["load"].size() == 3);
  CHECK(j["load"][0] == Json{{"serve", "web1 0.0.0.0:8080 pid 4711"},
                             {"instance", "127.0.0.1:9002"},
                             {"max_conns", 10},
                             {"open", 10},
                             {"idle", 0},
                             {"in_use", 10},
                             {"queued", 3},
                             {"queue_waits", 120},
                             {"queue_503", 4},
                             {"connect_failures", 0},
                             {"ejected", false},
                             {"ejected_until_ms", nullptr},
                             {"failures", 0},
                             {"ejections", 0},
                             {"last_failure", nullptr},
                             {"checked", false},
                             {"check_down", false},
                             {"last_check", nullptr},
                             {"last_check_ms", nullptr}});
  CHECK(j["load"][1]["serve"] == "web2 0.0.0.0:8080 pid 815");
  CHECK(j["load"][2]["instance"] == "127.0.0.1:9003");
  CHECK(j["load"][2]["ejected"] == true);
  CHECK(j["load"][2]["ejected_until_ms"] == 1767270896500);
  CHECK(j["load"][2]["last_failure"] == "connection refused");
  // Without the load, the object is the backend as rule files hold it.
  j.erase("load");
  auto back = BackendFromJson(j);
  REQUIRE(back.ok());
  CHECK(back->max_conns == 10);

  // An uncapped serve's view shows the open count alone.
  Report(s, "web1 0.0.0.0:8080 pid 4711", now, {Instance("127.0.0.1:9002", 0, 3, 3, 0, 0, 0, 0)});
  Report(s, "web2 0.0.0.0:8080 pid 815", now, {});
  CHECK(s.Must({"backend", "show", "orders"})
            .out.find("load:      INSTANCE        STATE  OPEN  IDLE  IN-USE  QUEUED  WAITED  503S  "
                      "CONNECT-FAILS  SERVE\n"
                      "           127.0.0.1:9002  up     3     3     0       0       0       0     "
                      "0              web1 0.0.0.0:8080 pid 4711\n") != std::string::npos);
}

}  // namespace
}  // namespace strangler
