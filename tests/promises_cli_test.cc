// README promises of the CLI that had no test (issue 20): the text output of
// `backend list/show` and `route list/show`, `--mirror` equal to `--to`
// refused, the `--no-*` clearing flags of `route set`, and what `explain`
// does with `--ip`, a `Cookie` header given with -H and a missing sticky key.
// Whole commands run through RunCli against a temporary store.
#include <doctest/doctest.h>

#include <cstdint>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli_store.h"

namespace strangler {
namespace {

using testing::CliStore;
using testing::Out;

// The README's bucket, written independently of src/:
// fnv1a64(salt, 0x00, key) % 10000.
int Bucket(const std::string& salt, const std::string& key) {
  uint64_t h = 14695981039346656037ULL;
  auto mix = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ULL;
  };
  for (unsigned char c : salt) mix(c);
  mix(0);
  for (unsigned char c : key) mix(c);
  return static_cast<int>(h % 10000);
}

TEST_CASE("cli: promise: backend list and backend show print aligned text") {
  CliStore s;
  s.Must({"backend", "add", "orders", "http://127.0.0.1:9002", "http://127.0.0.1:9003/base",
          "--timeout-ms", "2500"});
  s.Must({"backend", "add", "legacy", "http://127.0.0.1:9001", "--default"});
  s.Must({"backend", "add", "b", "http://10.0.0.1:80"});
  // Sorted by name; the default marked; every URL of a backend on its row.
  s.Must({"backend", "set", "b", "--max-conns", "16"});
  CHECK(s.Must({"backend", "list"}).out ==
        "NAME    DEFAULT  TIMEOUT  MAX-CONNS  IN-ROTATION  URLS\n"
        "b                30000ms  16         -            http://10.0.0.1:80\n"
        "legacy  *        30000ms  -          -            http://127.0.0.1:9001\n"
        "orders           2500ms   -          -            "
        "http://127.0.0.1:9002,http://127.0.0.1:9003/base\n");
  CHECK(s.Must({"backend", "show", "orders"}).out ==
        "name:      orders\n"
        "default:   no\n"
        "timeout:   2500ms\n"
        "connect:   2000ms timeout\n"
        "max conns: no cap\n"
        "queue:     no bound, each at most 5s (unused: no cap)\n"
        "reuse:     after 1ms quiet\n"
        "checks:    none\n"
        "eject:     after 5 failures in a row, for 10s (doubling, at most 5m)\n"
        "urls:      http://127.0.0.1:9002\n"
        "           http://127.0.0.1:9003/base\n"
        "load:      no running serve has reported this backend\n");
  CHECK(s.Must({"backend", "show", "legacy"}).out ==
        "name:      legacy\n"
        "default:   yes\n"
        "timeout:   30000ms\n"
        "connect:   2000ms timeout\n"
        "max conns: no cap\n"
        "queue:     no bound, each at most 5s (unused: no cap)\n"
        "reuse:     after 1ms quiet\n"
        "checks:    none\n"
        "eject:     after 5 failures in a row, for 10s (doubling, at most 5m)\n"
        "urls:      http://127.0.0.1:9001\n"
        "load:      no running serve has reported this backend\n");
  Out ghost = s.Cli({"backend", "show", "ghost"});
  CHECK(ghost.code == 1);
  CHECK(ghost.out.empty());
  CHECK(ghost.err.find("ghost") != std::string::npos);
}

TEST_CASE("cli: promise: route list prints one row per route in evaluation order; route show every field") {
  CliStore s;
  s.Must({"backend", "add", "legacy", "http://127.0.0.1:9001"});
  s.Must({"backend", "add", "orders", "http://127.0.0.1:9002"});
  s.Must({"backend", "add", "beta", "http://127.0.0.1:9003"});
  // Added in an order that is neither evaluation order nor by name.
  s.Must({"route", "add", "off", "--to", "beta", "--path", "=/zz", "--disabled"});
  s.Must({"route", "add", "catchall", "--to", "orders"});
  s.Must({"route", "add", "by-regex", "--to", "beta", "--path", "~^/v[0-9]+/"});
  // clang-format off
  s.Must({"route", "add", "orders-v2", "--to", "orders", "--path", "/api/orders",
          "--method", "GET,POST", "--header", "X-Beta=1", "--query", "v", "--cookie", "!legacy",
          "--percent", "12.5", "--else", "beta", "--sticky", "header:X-User-Id", "--salt", "cohort"});
  // clang-format on
  s.Must({"route", "add", "urgent", "--to", "beta", "--path", "/api", "--priority", "5", "--sticky",
          "ip"});
  s.Must({"route", "add", "health", "--to", "legacy", "--path", "=/health"});
  // Priority first, then exact, prefix, regex, no path; disabled routes last.
  CHECK(
      s.Must({"route", "list"}).out ==
      "NAME       ENABLED  PRIORITY  MATCH                                                        "
      "TO      PERCENT  ELSE       STICKY            FALLBACK  MIRROR\n"
      "urgent     yes      5         /api                                                         "
      "beta    100%     (default)  ip                no        -\n"
      "health     yes      0         =/health                                                     "
      "legacy  100%     (default)  random            no        -\n"
      "orders-v2  yes      0         /api/orders GET,POST header:X-Beta=1 query:v cookie:!legacy  "
      "orders  12.5%    beta       header:X-User-Id  no        -\n"
      "by-regex   yes      0         ~^/v[0-9]+/                                                  "
      "beta    100%     (default)  random            no        -\n"
      "catchall   yes      0         *                                                            "
      "orders  100%     (default)  random            no        -\n"
      "off        no       0         =/zz                                                         "
      "beta    100%     (default)  random            no        -\n");

  CHECK(s.Must({"route", "show", "orders-v2"}).out ==
        "name:      orders-v2\n"
        "enabled:   yes\n"
        "priority:  0\n"
        "path:      /api/orders\n"
        "methods:   GET,POST\n"
        "headers:   X-Beta=1\n"
        "query:     v\n"
        "cookies:   !legacy\n"
        "to:        orders\n"
        "percent:   12.5%\n"
        "else:      beta\n"
        "sticky:    header:X-User-Id\n"
        "salt:      cohort\n");
  // Defaults are spelled out; fallback and mirror lines appear when set.
  s.Must({"route", "set", "catchall", "--fallback-on-5xx", "--mirror", "beta", "--mirror-percent",
          "25", "--compare-header", "ETag", "--compare-header", "X-Version", "--ignore-field", "ts",
          "--ignore-field", "items[].at", "--keep-diffs", "7"});
  CHECK(s.Must({"route", "show", "catchall"}).out ==
        "name:      catchall\n"
        "enabled:   yes\n"
        "priority:  0\n"
        "path:      (any)\n"
        "methods:   (any)\n"
        "headers:   -\n"
        "query:     -\n"
        "cookies:   -\n"
        "to:        orders\n"
        "percent:   100%\n"
        "else:      (default backend)\n"
        "sticky:    (random)\n"
        "salt:      (route name: catchall)\n"
        "fallback:  to --else when --to fails or answers 5xx\n"
        "mirror:    beta (25% of GET, HEAD, OPTIONS, keep 7 diffs)\n"
        "compare:   status, body, headers ETag,X-Version\n"
        "ignore:    ts  items[].at\n");
  // A store with no routes says so (a store that does not exist is refused:
  // RunCli read-only test in cli_test.cc).
  CliStore fresh;
  fresh.Must({"backend", "add", "legacy", "http://127.0.0.1:9001"});
  Out empty_list = fresh.Cli({"route", "list"});
  CHECK(empty_list.code == 0);
  CHECK(empty_list.out.find("no routes yet") == 0);
}

TEST_CASE("cli: promise: --mirror naming the route's own --to is refused with exit 2, nothing written") {
  CliStore s;
  s.Must({"backend", "add", "legacy", "http://127.0.0.1:9001"});
  s.Must({"backend", "add", "new", "http://127.0.0.1:9002"});
  s.Must({"route", "add", "r", "--to", "legacy", "--mirror", "new"});
  const Json before = s.JsonOf({"route", "show", "r", "--json"});
  const int64_t changes = static_cast<int64_t>(s.JsonOf({"history", "--json"}).size());
  const std::vector<std::vector<std::string>> refused = {
      {"route", "add", "r2", "--to", "new", "--mirror", "new"},
      {"route", "set", "r", "--mirror", "legacy"},  // the mirror becomes the --to
      {"route", "set", "r", "--to", "new"},         // the --to becomes the mirror
  };
  for (const auto& args : refused) {
    std::string line;
    for (const auto& a : args) line += a + " ";
    CAPTURE(line);
    Out r = s.Cli(args);
    CHECK(r.code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.find("is also --to") != std::string::npos);
  }
  CHECK(s.JsonOf({"route", "show", "r", "--json"}) == before);
  CHECK(static_cast<int64_t>(s.JsonOf({"history", "--json"}).size()) == changes);
  CHECK(s.Cli({"route", "show", "r2"}).code == 1);
}

TEST_CASE("cli: promise: route set --no-* flags clear what they name and nothing else") {
  CliStore s;
  s.Must({"backend", "add", "legacy", "http://127.0.0.1:9001"});
  s.Must({"backend", "add", "new", "http://127.0.0.1:9002"});
  s.Must({"backend", "add", "shadow", "http://127.0.0.1:9003"});
  const std::vector<std::string> full = {"--to",
                                         "new",
                                         "--path",
                                         "/api",
                                         "--header",
                                         "X-A=1",
                                         "--header",
                                         "X-B",
                                         "--query",
                                         "v=2",
                                         "--cookie",
                                         "beta=1",
                                         "--fallback-on-5xx",
                                         "--mirror",
                                         "shadow",
                                         "--mirror-percent",
                                         "40",
                                         "--mirror-writes",
                                         "--compare-header",
                                         "ETag",
                                         "--ignore-field",
                                         "ts",
                                         "--keep-diffs",
                                         "9"};
  struct Case {
    std::string flag;
    std::vector<const char*> cleared;  // JSON fields that go away
    Json changed;                      // fields that take a new value
  };
  const std::vector<Case> cases = {
      {"--no-headers", {"headers"}, Json::object()},
      {"--no-query", {"query"}, Json::object()},
      {"--no-cookies", {"cookies"}, Json::object()},
      {"--no-fallback", {"fallback", "fallback_on_5xx"}, Json::object()},
      {"--no-mirror-writes", {}, {{"mirror_writes", false}}},  // present while --mirror is
      {"--no-compare-headers", {"compare_headers"}, Json::object()},
      {"--no-ignore-fields", {"ignore_fields"}, Json::object()},
      {"--no-mirror",
       {"mirror", "mirror_percent", "mirror_writes", "compare_headers", "ignore_fields",
        "keep_diffs"},
       Json::object()},
  };
  int n = 0;
  for (const Case& c : cases) {
    CAPTURE(c.flag);
    const std::string name = "r" + std::to_string(++n);
    std::vector<std::string> add = {"route", "add", name};
    add.insert(add.end(), full.begin(), full.end());
    s.Must(add);
    Json before = s.JsonOf({"route", "show", name, "--json"});
    for (const char* k : c.cleared) {
      CAPTURE(k);
      REQUIRE(before.contains(k));  // set before, so that clearing it shows
    }
    for (const auto& kv : c.changed.items()) REQUIRE(before[kv.key()] != kv.value());
    s.Must({"route", "set", name, c.flag});
    Json after = s.JsonOf({"route", "show", name, "--json"});
    Json want = before;
    for (const char* k : c.cleared) want.erase(k);
    for (const auto& kv : c.changed.items()) want[kv.key()] = kv.value();
    // An empty list may be stored as absent or as []; either is "cleared".
    for (const char* k : c.cleared) {
      if (after.contains(k) && after[k].is_array() && after[k].empty()) after.erase(k);
    }
    INFO("before: " << before.dump());
    CHECK(after == want);
    // The history row says what went, field by field.
    Json h = s.JsonOf({"history", name, "--json", "--limit", "1"});
    CHECK(h[0]["action"] == "route.set");
  }
  // r8 had --no-mirror: its text form has no mirror lines left either.
  CHECK(s.Must({"route", "show", "r8"}).out.find("mirror:") == std::string::npos);
}

TEST_CASE("cli: promise: explain --ip buckets a --sticky ip split by that address (default 127.0.0.1)") {
  CliStore s;
  s.Must({"backend", "add", "legacy", "http://127.0.0.1:9001"});
  s.Must({"backend", "add", "new", "http://127.0.0.1:9002"});
  s.Must({"route", "add", "half", "--to", "new", "--percent", "50", "--sticky", "ip"});
  std::set<std::string> seen;
  for (const std::string ip : {"", "127.0.0.1", "10.0.0.7", "10.0.0.8", "192.168.1.20",
                               "203.0.113.9", "2001:db8::1", "::1"}) {
    CAPTURE(ip);
    std::vector<std::string> args = {"explain", "/x", "--json"};
    if (!ip.empty()) args.insert(args.end(), {"--ip", ip});
    const int bucket = Bucket("half", ip.empty() ? "127.0.0.1" : ip);
    // The same address gives the same answer every time: no random draw.
    for (int run = 0; run < 3; ++run) {
      Json j = s.JsonOf(args);
      CHECK(j["bucket"] == bucket);
      CHECK(j["reason"] == "split");
      CHECK(j["backend"] == (bucket < 5000 ? "new" : "legacy"));
      seen.insert(j["backend"].get<std::string>());
    }
  }
  CHECK(seen.size() == 2);  // the addresses chosen fall on both sides
  CHECK(s.Cli({"explain", "/x", "--ip", ""}).code == 2);
}

TEST_CASE("cli: promise: explain reads cookies from -H 'Cookie: ...' for matching and for --sticky cookie") {
  CliStore s;
  s.Must({"backend", "add", "legacy", "http://127.0.0.1:9001"});
  s.Must({"backend", "add", "new", "http://127.0.0.1:9002"});
  s.Must({"route", "add", "beta", "--to", "new", "--path", "/b", "--cookie", "beta=1"});
  s.Must({"route", "add", "split", "--to", "new", "--path", "/s", "--percent", "50", "--sticky",
          "cookie:uid"});
  struct Case {
    std::string path;
    std::vector<std::string> headers;
    std::string route;  // "" = none
    std::string reason;
    int bucket;  // -1 = null
  };
  const std::vector<Case> cases = {
      {"/b", {"Cookie: a=2; beta=1"}, "beta", "route", -1},
      {"/b", {"Cookie: beta=0"}, "", "default", -1},
      {"/b", {}, "", "default", -1},
      {"/b", {"X-Cookie: beta=1"}, "", "default", -1},  // only the Cookie header counts
      {"/s", {"Cookie: uid=u-17; x=1"}, "split", "split", Bucket("split", "u-17")},
      {"/s", {"cookie: x=1;uid=u-42"}, "split", "split", Bucket("split", "u-42")},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"explain", c.path, "--json"};
    for (const auto& h : c.headers) args.insert(args.end(), {"-H", h});
    CAPTURE(c.path);
    CAPTURE(c.headers.empty() ? "" : c.headers[0]);
    Json j = s.JsonOf(args);
    CHECK(j["route"] == (c.route.empty() ? Json() : Json(c.route)));
    CHECK(j["reason"] == c.reason);
    if (c.bucket < 0) {
      CHECK(j["bucket"].is_null());
    } else {
      CHECK(j["bucket"] == c.bucket);
      CHECK(j["backend"] == (c.bucket < 5000 ? "new" : "legacy"));
    }
  }
  // The text form names the bucket too.
  Out text = s.Must({"explain", "/s", "-H", "Cookie: uid=u-17"});
  CHECK(text.out.find("bucket:   " + std::to_string(Bucket("split", "u-17")) + " of 10000\n") !=
        std::string::npos);
}

TEST_CASE("cli: promise: explain draws a random bucket for a split whose sticky key is missing") {
  CliStore s;
  s.Must({"backend", "add", "legacy", "http://127.0.0.1:9001"});
  s.Must({"backend", "add", "new", "http://127.0.0.1:9002"});
  s.Must({"route", "add", "nokey", "--to", "new", "--path", "/r", "--percent", "50"});
  s.Must({"route", "add", "keyed", "--to", "new", "--path", "/k", "--percent", "50", "--sticky",
          "header:X-User-Id"});
  for (const std::string path : {"/r", "/k"}) {
    CAPTURE(path);
    std::set<int> buckets;
    std::set<std::string> backends;
    for (int i = 0; i < 40; ++i) {
      Json j = s.JsonOf({"explain", path, "--json"});
      REQUIRE(j["bucket"].is_number_integer());
      const int b = j["bucket"].get<int>();
      CHECK(b >= 0);
      CHECK(b < 10000);
      CHECK(j["backend"] == (b < 5000 ? "new" : "legacy"));
      buckets.insert(b);
      backends.insert(j["backend"].get<std::string>());
    }
    // 40 draws from 10000 buckets: a fixed bucket would give one value.
    CHECK(buckets.size() > 30);
    CHECK(backends.size() == 2);
  }
  // With the key present, the bucket is fixed again.
  std::set<int> keyed;
  for (int i = 0; i < 5; ++i) {
    keyed.insert(s.JsonOf({"explain", "/k", "-H", "X-User-Id: 42", "--json"})["bucket"].get<int>());
  }
  CHECK(keyed == std::set<int>{Bucket("keyed", "42")});
}

}  // namespace
}  // namespace strangler
