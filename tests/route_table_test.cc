// Unit tests for the compiled route table (src/rules/route_table.h): the decision
// of PRODUCT.md "The decision", bucketing, Explain and NormalizePath. Built
// from in-memory RuleSets; no I/O. Each row prints its request on failure.
#include "rules/route_table.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace strangler {
namespace {

// Independent FNV-1a 64 written from the contract: offset basis
// 14695981039346656037, prime 1099511628211, over salt bytes, one 0x00 byte,
// key bytes.
uint64_t RefFnv(const std::string& salt, const std::string& key) {
  uint64_t h = 14695981039346656037ull;
  auto step = [&h](unsigned char c) {
    h ^= c;
    h *= 1099511628211ull;
  };
  for (unsigned char c : salt) step(c);
  step(0);
  for (unsigned char c : key) step(c);
  return h;
}
int RefBucket(const std::string& salt, const std::string& key) {
  return static_cast<int>(RefFnv(salt, key) % 10000);
}

// A request that owns its bytes; view() points into it.
struct Req {
  std::string method = "GET";
  std::string path = "/";
  std::string query;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string ip = "127.0.0.1";
  std::vector<HeaderView> hv;

  RequestView view() {
    hv.clear();
    for (const auto& h : headers) hv.push_back({h.first, h.second});
    RequestView v;
    v.method = method;
    v.path = path;
    v.query = query;
    v.headers = hv.data();
    v.header_count = hv.size();
    v.client_ip = ip;
    return v;
  }
  std::string describe() const {
    std::string s = method + " " + path;
    if (!query.empty()) s += "?" + query;
    for (const auto& h : headers) s += " [" + h.first + ": " + h.second + "]";
    s += " ip=" + ip;
    return s;
  }
};

Req Get(std::string path, std::vector<std::pair<std::string, std::string>> headers = {},
        std::string query = "") {
  Req r;
  r.path = std::move(path);
  r.headers = std::move(headers);
  r.query = std::move(query);
  return r;
}

Backend MakeBackend(std::string name, int port, bool is_default = false) {
  Backend b;
  b.name = std::move(name);
  b.urls = {"http://127.0.0.1:" + std::to_string(port)};
  b.is_default = is_default;
  return b;
}

Route MakeRoute(std::string name, std::string to, std::string path = "") {
  Route r;
  r.name = std::move(name);
  r.to = std::move(to);
  r.path = std::move(path);
  return r;
}

// legacy (default), svc, other.
RuleSet BaseRules() {
  RuleSet rs;
  rs.backends = {MakeBackend("legacy", 9000, true), MakeBackend("svc", 9001),
                 MakeBackend("other", 9002)};
  rs.version = 1;
  return rs;
}

std::shared_ptr<const RouteTable> MustCompile(const RuleSet& rs) {
  auto t = RouteTable::Compile(rs);
  REQUIRE_MESSAGE(t.ok(), t.status().message());
  return *t;
}

std::string RouteName(const RouteTable& t, const Decision& d) {
  if (d.route < 0) return "";
  REQUIRE(d.route < static_cast<int>(t.routes().size()));
  return t.routes()[d.route].name;
}
std::string BackendName(const RouteTable& t, const Decision& d) {
  REQUIRE(d.backend >= 0);
  REQUIRE(d.backend < static_cast<int>(t.backends().size()));
  return t.backends()[d.backend].name;
}

// Expected outcome of one request: winning route ("" = none) and backend.
struct Case {
  Req req;
  std::string route;
  std::string backend;
};

void RunCases(const RouteTable& t, std::vector<Case> cases) {
  for (auto& c : cases) {
    std::string input = c.req.describe();
    CAPTURE(input);
    Decision d = t.Decide(c.req.view(), 0);
    CHECK(RouteName(t, d) == c.route);
    CHECK(BackendName(t, d) == c.backend);
    if (c.route.empty()) {
      CHECK(d.reason == Reason::kDefault);
      CHECK(d.route == -1);
      CHECK(d.bucket == -1);
    }
  }
}

// --- Bucket ----------------------------------------------------------------

TEST_CASE("route_table: Fnv1a64 and Bucket match the contract's formula") {
  // Fixed vector, computed by hand-running the formula above in Python:
  //   h = 14695981039346656037
  //   for b in b"orders" + b"\x00" + b"42": h = ((h ^ b) * 1099511628211) % 2**64
  // -> 16085416365717349990, bucket 9990.
  CHECK(Fnv1a64("orders", "42") == 16085416365717349990ull);
  CHECK(Bucket("orders", "42") == 9990);
  CHECK(RefFnv("orders", "42") == 16085416365717349990ull);  // the reference agrees

  struct Row {
    std::string salt, key;
  };
  const std::vector<Row> rows = {
      {"orders", "42"},
      {"", ""},        // empty salt and key: still hashes the 0x00
      {"orders", ""},  // empty key
      {"", "42"},
      {"cohort", "user-1"},
      {"r", "\xc3\xa9t\xc3\xa9"},             // "été" in UTF-8: bytes >= 0x80 unsigned
      {"r", std::string("\xff\x00\x80", 3)},  // embedded NUL and high bytes
      {"a", "bc"},                            // the separator keeps these two apart
      {"ab", "c"},
      {std::string(300, 's'), std::string(1000, 'k')},
  };
  for (const auto& row : rows) {
    CAPTURE(row.salt);
    CAPTURE(row.key);
    CHECK(Fnv1a64(row.salt, row.key) == RefFnv(row.salt, row.key));
    CHECK(Bucket(row.salt, row.key) == RefBucket(row.salt, row.key));
    CHECK(Bucket(row.salt, row.key) >= 0);
    CHECK(Bucket(row.salt, row.key) < 10000);
  }
  CHECK(Fnv1a64("", "") == 12638153115695167455ull);
  CHECK(Fnv1a64("a", "bc") != Fnv1a64("ab", "c"));
}

TEST_CASE("route_table: ReasonName") {
  CHECK(ReasonName(Reason::kDefault) == "default");
  CHECK(ReasonName(Reason::kRoute) == "route");
  CHECK(ReasonName(Reason::kSplit) == "split");
  CHECK(ReasonName(Reason::kFallback) == "fallback");
  CHECK(ReasonName(Reason::kShadow) == "shadow");
  CHECK(ReasonName(Reason::kOverride) == "override");
}

// --- Compile ---------------------------------------------------------------

TEST_CASE("route_table: Compile refuses invalid rule sets") {
  struct Row {
    const char* what;
    RuleSet rules;
  };
  std::vector<Row> rows;
  {
    RuleSet rs = BaseRules();
    rs.backends[0].is_default = false;
    rows.push_back({"no default backend", rs});
  }
  {
    RuleSet rs;
    rows.push_back({"no backends at all", rs});
  }
  {
    RuleSet rs = BaseRules();
    rs.backends[1].is_default = true;
    rows.push_back({"two default backends", rs});
  }
  {
    RuleSet rs = BaseRules();
    rs.routes = {MakeRoute("r", "nope", "/x")};
    rows.push_back({"route to unknown backend", rs});
  }
  {
    RuleSet rs = BaseRules();
    Route r = MakeRoute("r", "svc", "/x");
    r.else_backend = "nope";
    rs.routes = {r};
    rows.push_back({"route else unknown backend", rs});
  }
  {
    RuleSet rs = BaseRules();
    rs.routes = {MakeRoute("r", "svc", "/a*b")};
    rows.push_back({"bad path pattern", rs});
  }
  {
    RuleSet rs = BaseRules();
    Route r = MakeRoute("r", "svc", "/x");
    r.headers = {"X~("};
    rs.routes = {r};
    rows.push_back({"bad header regex", rs});
  }
  for (const auto& row : rows) {
    CAPTURE(row.what);
    auto t = RouteTable::Compile(row.rules);
    CHECK_FALSE(t.ok());
  }
}

TEST_CASE("route_table: Compile keeps backends, version and default") {
  RuleSet rs = BaseRules();
  rs.version = 42;
  auto t = MustCompile(rs);
  CHECK(t->version() == 42);
  REQUIRE(t->default_backend() >= 0);
  CHECK(t->backends()[t->default_backend()].name == "legacy");
  CHECK(t->backends().size() == 3);
}

// --- Path matching -----------------------------------------------------------

TEST_CASE("route_table: Decide path kinds") {
  RuleSet rs = BaseRules();
  rs.routes = {
      MakeRoute("orders", "svc", "/api/orders"),    MakeRoute("health", "svc", "=/health"),
      MakeRoute("items", "svc", "/shop/*/items"),   MakeRoute("static", "svc", "/static/**"),
      MakeRoute("versioned", "svc", "~^/v[0-9]+/"), MakeRoute("feeds", "svc", "~/feed$"),
  };
  auto t = MustCompile(rs);
  std::vector<Case> cases = {
      // Segment prefix.
      {Get("/api/orders"), "orders", "svc"},
      {Get("/api/orders/7"), "orders", "svc"},
      {Get("/api/orders/"), "orders", "svc"},
      {Get("/api/orders/7/lines/1"), "orders", "svc"},
      {Get("/api/ordersX"), "", "legacy"},
      {Get("/api/order"), "", "legacy"},
      {Get("/api"), "", "legacy"},
      {Get("/API/orders"), "", "legacy"},  // paths are case-sensitive
      {Get("/x/api/orders"), "", "legacy"},
      // Exact.
      {Get("/health"), "health", "svc"},
      {Get("/health/"), "", "legacy"},
      {Get("/health/x"), "", "legacy"},
      {Get("/healthz"), "", "legacy"},
      // '*' is exactly one segment; a glob matches the whole path.
      {Get("/shop/7/items"), "items", "svc"},
      {Get("/shop/abc-def/items"), "items", "svc"},
      {Get("/shop/items"), "", "legacy"},
      {Get("/shop/7/8/items"), "", "legacy"},
      {Get("/shop/7/items/3"), "", "legacy"},
      {Get("/shop/7/itemsX"), "", "legacy"},
      // '**' is the rest.
      {Get("/static/a"), "static", "svc"},
      {Get("/static/a/b/c.css"), "static", "svc"},
      {Get("/staticX/a"), "", "legacy"},
      {Get("/x/static/a"), "", "legacy"},
      // Regex over the path (RE2, unanchored unless the pattern anchors).
      {Get("/v2/users"), "versioned", "svc"},
      {Get("/v10/x"), "versioned", "svc"},
      {Get("/v/users"), "", "legacy"},
      {Get("/api/v2/users"), "", "legacy"},
      {Get("/news/feed"), "feeds", "svc"},
      {Get("/a/b/feed"), "feeds", "svc"},
      {Get("/news/feed/x"), "", "legacy"},
  };
  RunCases(*t, std::move(cases));
}

TEST_CASE("route_table: root prefix and no path match every path") {
  SUBCASE("prefix /") {
    RuleSet rs = BaseRules();
    rs.routes = {MakeRoute("all", "svc", "/")};
    auto t = MustCompile(rs);
    RunCases(*t,
             {{Get("/"), "all", "svc"}, {Get("/a"), "all", "svc"}, {Get("/a/b/c"), "all", "svc"}});
  }
  SUBCASE("no path") {
    RuleSet rs = BaseRules();
    rs.routes = {MakeRoute("all", "svc")};
    auto t = MustCompile(rs);
    RunCases(*t,
             {{Get("/"), "all", "svc"}, {Get("/a"), "all", "svc"}, {Get("/a/b/c"), "all", "svc"}});
  }
}

// --- Methods, headers, query, cookies -----------------------------------------

TEST_CASE("route_table: Decide methods") {
  RuleSet rs = BaseRules();
  Route r = MakeRoute("writes", "svc", "/api");
  r.methods = {"POST", "PUT"};
  rs.routes = {r};
  auto t = MustCompile(rs);
  struct Row {
    std::string method;
    bool matches;
  };
  for (const Row& row : std::vector<Row>{
           {"POST", true}, {"PUT", true}, {"GET", false}, {"DELETE", false}, {"HEAD", false}}) {
    Req q = Get("/api/x");
    q.method = row.method;
    std::string input = q.describe();
    CAPTURE(input);
    Decision d = t->Decide(q.view(), 0);
    CHECK(RouteName(*t, d) == (row.matches ? "writes" : ""));
  }
}

TEST_CASE("route_table: Decide header specs") {
  RuleSet rs = BaseRules();
  Route eq = MakeRoute("eq", "svc", "/eq");
  eq.headers = {"X-Beta=on"};
  Route re = MakeRoute("re", "svc", "/re");
  re.headers = {"X-Version~^2\\."};
  Route present = MakeRoute("present", "svc", "/present");
  present.headers = {"x-canary"};
  Route absent = MakeRoute("absent", "svc", "/absent");
  absent.headers = {"!X-Legacy"};
  Route both = MakeRoute("both", "svc", "/both");
  both.headers = {"X-A=1", "X-B"};  // all must hold
  rs.routes = {eq, re, present, absent, both};
  auto t = MustCompile(rs);
  std::vector<Case> cases = {
      {Get("/eq", {{"X-Beta", "on"}}), "eq", "svc"},
      {Get("/eq", {{"x-beta", "on"}}), "eq", "svc"},  // names case-insensitive
      {Get("/eq", {{"X-BETA", "on"}}), "eq", "svc"},
      {Get("/eq", {{"X-Beta", "ON"}}), "", "legacy"},  // values are not
      {Get("/eq", {{"X-Beta", "on2"}}), "", "legacy"},
      {Get("/eq", {{"X-Beta", "o"}}), "", "legacy"},
      {Get("/eq", {{"X-Other", "on"}}), "", "legacy"},
      {Get("/eq"), "", "legacy"},
      {Get("/re", {{"X-Version", "2.1"}}), "re", "svc"},
      {Get("/re", {{"x-version", "2.10-beta"}}), "re", "svc"},
      {Get("/re", {{"X-Version", "1.2"}}), "", "legacy"},
      {Get("/re", {{"X-Version", "12.1"}}), "", "legacy"},
      {Get("/re"), "", "legacy"},
      {Get("/present", {{"X-Canary", ""}}), "present", "svc"},
      {Get("/present", {{"X-CANARY", "1"}}), "present", "svc"},
      {Get("/present", {{"X-Canaryy", "1"}}), "", "legacy"},
      {Get("/present"), "", "legacy"},
      {Get("/absent"), "absent", "svc"},
      {Get("/absent", {{"X-Other", "1"}}), "absent", "svc"},
      {Get("/absent", {{"X-Legacy", "1"}}), "", "legacy"},
      {Get("/absent", {{"x-legacy", ""}}), "", "legacy"},
      {Get("/both", {{"X-A", "1"}, {"X-B", "z"}}), "both", "svc"},
      {Get("/both", {{"X-A", "1"}}), "", "legacy"},
      {Get("/both", {{"X-B", "z"}}), "", "legacy"},
      {Get("/both", {{"X-A", "2"}, {"X-B", "z"}}), "", "legacy"},
  };
  RunCases(*t, std::move(cases));
}

TEST_CASE("route_table: Decide query specs") {
  RuleSet rs = BaseRules();
  Route eq = MakeRoute("eq", "svc", "/eq");
  eq.query = {"debug=1"};
  Route re = MakeRoute("re", "svc", "/re");
  re.query = {"region~^eu-"};
  Route present = MakeRoute("present", "svc", "/present");
  present.query = {"beta"};
  Route absent = MakeRoute("absent", "svc", "/absent");
  absent.query = {"!legacy"};
  rs.routes = {eq, re, present, absent};
  auto t = MustCompile(rs);
  std::vector<Case> cases = {
      {Get("/eq", {}, "debug=1"), "eq", "svc"},
      {Get("/eq", {}, "a=2&debug=1&b=3"), "eq", "svc"},
      {Get("/eq", {}, "debug=10"), "", "legacy"},
      {Get("/eq", {}, "xdebug=1"), "", "legacy"},
      {Get("/eq", {}, "debug=0"), "", "legacy"},
      {Get("/eq", {}, ""), "", "legacy"},
      {Get("/re", {}, "region=eu-west"), "re", "svc"},
      {Get("/re", {}, "region=us-east"), "", "legacy"},
      {Get("/present", {}, "beta=1"), "present", "svc"},
      {Get("/present", {}, "x=1&beta=yes"), "present", "svc"},
      {Get("/present", {}, "betax=1"), "", "legacy"},
      {Get("/present", {}, ""), "", "legacy"},
      {Get("/absent", {}, ""), "absent", "svc"},
      {Get("/absent", {}, "x=1"), "absent", "svc"},
      {Get("/absent", {}, "legacy=1"), "", "legacy"},
      {Get("/absent", {}, "a=1&legacy=1"), "", "legacy"},
  };
  RunCases(*t, std::move(cases));
}

TEST_CASE("route_table: Decide cookie specs") {
  RuleSet rs = BaseRules();
  Route eq = MakeRoute("eq", "svc", "/eq");
  eq.cookies = {"beta=1"};
  Route re = MakeRoute("re", "svc", "/re");
  re.cookies = {"plan~^pro"};
  Route present = MakeRoute("present", "svc", "/present");
  present.cookies = {"sid"};
  Route absent = MakeRoute("absent", "svc", "/absent");
  absent.cookies = {"!old"};
  rs.routes = {eq, re, present, absent};
  auto t = MustCompile(rs);
  std::vector<Case> cases = {
      {Get("/eq", {{"Cookie", "beta=1"}}), "eq", "svc"},
      {Get("/eq", {{"Cookie", "sid=abc; beta=1"}}), "eq", "svc"},
      {Get("/eq", {{"cookie", "beta=1; sid=abc"}}), "eq", "svc"},
      {Get("/eq", {{"Cookie", "beta=10"}}), "", "legacy"},
      {Get("/eq", {{"Cookie", "xbeta=1"}}), "", "legacy"},
      {Get("/eq", {{"X-Beta", "1"}}), "", "legacy"},
      {Get("/eq"), "", "legacy"},
      {Get("/re", {{"Cookie", "plan=professional"}}), "re", "svc"},
      {Get("/re", {{"Cookie", "plan=free"}}), "", "legacy"},
      {Get("/present", {{"Cookie", "a=1; sid=xyz"}}), "present", "svc"},
      {Get("/present", {{"Cookie", "a=1"}}), "", "legacy"},
      {Get("/present"), "", "legacy"},
      {Get("/absent"), "absent", "svc"},
      {Get("/absent", {{"Cookie", "a=1"}}), "absent", "svc"},
      {Get("/absent", {{"Cookie", "a=1; old=1"}}), "", "legacy"},
  };
  RunCases(*t, std::move(cases));
}

// --- Default, route, split -------------------------------------------------------

TEST_CASE("route_table: Decide reasons default, route, split") {
  RuleSet rs = BaseRules();
  Route full = MakeRoute("full", "svc", "/full");
  Route split = MakeRoute("split", "svc", "/split");
  split.percent_bp = 5000;
  split.sticky = "header:X-User-Id";
  Route split_else = MakeRoute("split-else", "svc", "/split-else");
  split_else.percent_bp = 0;
  split_else.else_backend = "other";
  split_else.sticky = "header:X-User-Id";
  rs.routes = {full, split, split_else};
  auto t = MustCompile(rs);

  SUBCASE("no match") {
    Req q = Get("/nothing");
    Decision d = t->Decide(q.view(), 123);
    CHECK(d.route == -1);
    CHECK(d.reason == Reason::kDefault);
    CHECK(d.bucket == -1);
    CHECK(d.backend == t->default_backend());
    CHECK(BackendName(*t, d) == "legacy");
  }
  SUBCASE("percent 100") {
    Req q = Get("/full/x");
    Decision d = t->Decide(q.view(), 123);
    CHECK(RouteName(*t, d) == "full");
    CHECK(d.reason == Reason::kRoute);
    CHECK(d.bucket == -1);
    CHECK(BackendName(*t, d) == "svc");
  }
  SUBCASE("percent below 100 splits by bucket") {
    for (int i = 0; i < 200; ++i) {
      std::string user = "user-" + std::to_string(i);
      Req q = Get("/split", {{"X-User-Id", user}});
      CAPTURE(user);
      Decision d = t->Decide(q.view(), 0);
      CHECK(RouteName(*t, d) == "split");
      CHECK(d.reason == Reason::kSplit);
      int want = RefBucket("split", user);  // salt defaults to the route's name
      CHECK(d.bucket == want);
      CHECK(BackendName(*t, d) == (want < 5000 ? "svc" : "legacy"));
    }
  }
  SUBCASE("percent 0 sends all to else, still a split") {
    for (int i = 0; i < 50; ++i) {
      std::string user = "u" + std::to_string(i);
      Req q = Get("/split-else", {{"X-User-Id", user}});
      CAPTURE(user);
      Decision d = t->Decide(q.view(), 0);
      CHECK(RouteName(*t, d) == "split-else");
      CHECK(d.reason == Reason::kSplit);
      CHECK(d.bucket == RefBucket("split-else", user));
      CHECK(BackendName(*t, d) == "other");
    }
  }
}

TEST_CASE("route_table: fixed vector salt orders key 42 lands in bucket 9990") {
  RuleSet rs = BaseRules();
  Route r = MakeRoute("orders", "svc", "/api/orders");
  r.sticky = "header:X-User-Id";
  struct Row {
    int percent_bp;
    std::string backend;
  };
  // Bucket 9990 goes to --to when 9990 < percent*100.
  for (const Row& row :
       std::vector<Row>{{9990, "legacy"}, {9991, "svc"}, {9999, "svc"}, {5000, "legacy"}}) {
    CAPTURE(row.percent_bp);
    r.percent_bp = row.percent_bp;
    rs.routes = {r};
    auto t = MustCompile(rs);
    Req q = Get("/api/orders/1", {{"X-User-Id", "42"}});
    Decision d = t->Decide(q.view(), 0);
    CHECK(d.bucket == 9990);
    CHECK(BackendName(*t, d) == row.backend);
  }
}

TEST_CASE("route_table: sticky key kinds feed the bucket") {
  struct Row {
    std::string sticky;
    Req req;
    std::string key;
  };
  std::vector<Row> rows;
  rows.push_back({"header:X-User-Id", Get("/s", {{"X-User-Id", "alice"}}), "alice"});
  rows.push_back({"header:X-User-Id", Get("/s", {{"x-user-id", "bob"}}), "bob"});
  rows.push_back({"cookie:sid", Get("/s", {{"Cookie", "a=1; sid=abc123; z=9"}}), "abc123"});
  rows.push_back({"query:uid", Get("/s", {}, "x=1&uid=42&y=2"), "42"});
  {
    Req q = Get("/s");
    q.ip = "10.1.2.3";
    rows.push_back({"ip", q, "10.1.2.3"});
  }
  {
    Req q = Get("/s");
    q.ip = "::1";
    rows.push_back({"ip", q, "::1"});
  }
  for (auto& row : rows) {
    std::string input = row.sticky + " " + row.req.describe();
    CAPTURE(input);
    RuleSet rs = BaseRules();
    Route r = MakeRoute("sticky", "svc", "/s");
    r.percent_bp = 4000;
    r.sticky = row.sticky;
    r.salt = "cohort-a";
    rs.routes = {r};
    auto t = MustCompile(rs);
    // The random value must not matter when the key is present.
    for (uint64_t random : {0ull, 1ull, 9999ull, 0xdeadbeefcafef00dull}) {
      Decision d = t->Decide(row.req.view(), random);
      CHECK(d.reason == Reason::kSplit);
      CHECK(d.bucket == RefBucket("cohort-a", row.key));
      CHECK(BackendName(*t, d) == (RefBucket("cohort-a", row.key) < 4000 ? "svc" : "legacy"));
    }
  }
}

TEST_CASE("route_table: routes sharing a salt keep a user in one bucket") {
  RuleSet rs = BaseRules();
  Route a = MakeRoute("orders", "svc", "/api/orders");
  a.percent_bp = 3000;
  a.sticky = "header:X-User-Id";
  a.salt = "checkout";
  Route b = MakeRoute("payments", "other", "/api/payments");
  b.percent_bp = 3000;
  b.sticky = "cookie:uid";
  b.salt = "checkout";
  rs.routes = {a, b};
  auto t = MustCompile(rs);
  int moved = 0;
  for (int i = 0; i < 300; ++i) {
    std::string user = "customer-" + std::to_string(i);
    CAPTURE(user);
    Req qa = Get("/api/orders", {{"X-User-Id", user}});
    Req qb = Get("/api/payments", {{"Cookie", "uid=" + user}});
    Decision da = t->Decide(qa.view(), 1);
    Decision db = t->Decide(qb.view(), 2);
    CHECK(da.bucket == db.bucket);
    CHECK(da.bucket == RefBucket("checkout", user));
    bool a_moved = BackendName(*t, da) == "svc";
    bool b_moved = BackendName(*t, db) == "other";
    CHECK(a_moved == b_moved);
    moved += a_moved;
  }
  CHECK(moved > 0);
  CHECK(moved < 300);
}

TEST_CASE("route_table: raising percent only moves keys from else to to") {
  const std::vector<int> steps = {0, 1, 100, 500, 1000, 1250, 2500, 5000, 7500, 9999, 10000};
  std::vector<std::shared_ptr<const RouteTable>> tables;
  for (int bp : steps) {
    RuleSet rs = BaseRules();
    Route r = MakeRoute("ramp", "svc", "/api");
    r.percent_bp = bp;
    r.sticky = "header:X-User-Id";
    r.else_backend = "other";
    rs.routes = {r};
    tables.push_back(MustCompile(rs));
  }
  for (int k = 0; k < 1000; ++k) {
    std::string key = "k" + std::to_string(k);
    bool was_on_to = false;
    for (size_t s = 0; s < steps.size(); ++s) {
      Req q = Get("/api/x", {{"X-User-Id", key}});
      Decision d = tables[s]->Decide(q.view(), static_cast<uint64_t>(k) * 7919 + s);
      std::string backend = BackendName(*tables[s], d);
      bool on_to = backend == "svc";
      bool expect = RefBucket("ramp", key) < steps[s];
      if (on_to != expect || (was_on_to && !on_to) || (!on_to && backend != "other")) {
        CAPTURE(key);
        CAPTURE(steps[s]);
        CAPTURE(backend);
        CHECK(on_to == expect);
        CHECK_FALSE((was_on_to && !on_to));
        CHECK(backend == (expect ? "svc" : "other"));
      }
      was_on_to = on_to;
    }
    CHECK(was_on_to);  // at 100 % everyone is on --to
  }
}

TEST_CASE("route_table: without a sticky key the bucket comes from random") {
  RuleSet rs = BaseRules();
  Route none = MakeRoute("random", "svc", "/r");
  none.percent_bp = 5000;
  Route missing = MakeRoute("keyed", "svc", "/k");
  missing.percent_bp = 5000;
  missing.sticky = "header:X-User-Id";
  rs.routes = {none, missing};
  auto t = MustCompile(rs);

  // A spread of 64-bit values (splitmix64), not just small integers.
  std::vector<uint64_t> randoms;
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (int i = 0; i < 64; ++i) {
    uint64_t z = (x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    randoms.push_back(z ^ (z >> 31));
  }

  for (std::string path : {"/r", "/k", "/k/with-other-header"}) {
    CAPTURE(path);
    std::set<int> buckets;
    std::set<std::string> backends;
    for (uint64_t random : randoms) {
      CAPTURE(random);
      Req q = Get(path, {{"X-Other", "1"}});
      Decision d = t->Decide(q.view(), random);
      CHECK(d.reason == Reason::kSplit);
      CHECK(d.bucket >= 0);
      CHECK(d.bucket < 10000);
      CHECK(BackendName(*t, d) == (d.bucket < 5000 ? "svc" : "legacy"));
      // Pure: the same random gives the same decision.
      Decision again = t->Decide(q.view(), random);
      CHECK(again.bucket == d.bucket);
      CHECK(again.backend == d.backend);
      buckets.insert(d.bucket);
      backends.insert(BackendName(*t, d));
    }
    CHECK(buckets.size() > 1);
    CHECK(backends.size() == 2);
  }
}

TEST_CASE("route_table: a present sticky key ignores random") {
  RuleSet rs = BaseRules();
  Route r = MakeRoute("keyed", "svc", "/k");
  r.percent_bp = 5000;
  r.sticky = "query:uid";
  rs.routes = {r};
  auto t = MustCompile(rs);
  Req with_key = Get("/k", {}, "uid=7");
  std::set<int> buckets;
  for (uint64_t random : {1ull, 2ull, 3ull, 0xffffffffffffffffull, 123456789ull}) {
    buckets.insert(t->Decide(with_key.view(), random).bucket);
  }
  CHECK(buckets == std::set<int>{RefBucket("keyed", "7")});
}

// --- Evaluation order ------------------------------------------------------------

TEST_CASE("route_table: disabled routes are skipped") {
  RuleSet rs = BaseRules();
  Route off = MakeRoute("off", "other", "=/api/x");
  off.priority = 100;
  off.enabled = false;
  Route on = MakeRoute("on", "svc", "/api");
  Route off_only = MakeRoute("off-only", "other", "/gone");
  off_only.enabled = false;
  rs.routes = {off, on, off_only};
  auto t = MustCompile(rs);
  std::vector<Case> cases = {
      {Get("/api/x"), "on", "svc"},
      {Get("/gone"), "", "legacy"},
      {Get("/gone/1"), "", "legacy"},
  };
  RunCases(*t, std::move(cases));
}

TEST_CASE("route_table: evaluation order") {
  struct Row {
    const char* what;
    std::vector<Route> routes;
    Req req;
    std::string winner;
  };
  auto with_priority = [](Route r, int p) {
    r.priority = p;
    return r;
  };
  auto with_header = [](Route r, std::string spec) {
    r.headers.push_back(std::move(spec));
    return r;
  };
  std::vector<Row> rows = {
      {"higher priority first, even over an exact path",
       {MakeRoute("exact", "svc", "=/api/orders"), with_priority(MakeRoute("any", "other"), 1)},
       Get("/api/orders"),
       "any"},
      {"negative priority goes after zero",
       {with_priority(MakeRoute("neg", "other", "=/a"), -1), MakeRoute("zero", "svc", "/a")},
       Get("/a"),
       "zero"},
      {"exact before prefix",
       {MakeRoute("a-prefix", "svc", "/api/orders"), MakeRoute("z-exact", "other", "=/api/orders")},
       Get("/api/orders"),
       "z-exact"},
      {"longer prefix before shorter",
       {MakeRoute("a-short", "svc", "/api"), MakeRoute("z-long", "other", "/api/orders")},
       Get("/api/orders/7"),
       "z-long"},
      {"shorter prefix still catches the rest",
       {MakeRoute("a-short", "svc", "/api"), MakeRoute("z-long", "other", "/api/orders")},
       Get("/api/users"),
       "a-short"},
      {"glob with more literal characters before prefix",
       {MakeRoute("a-prefix", "svc", "/api"), MakeRoute("z-glob", "other", "/api/*/items")},
       Get("/api/7/items"),
       "z-glob"},
      {"prefix with more literal characters before glob",
       {MakeRoute("a-glob", "svc", "/api/**"), MakeRoute("z-prefix", "other", "/api/orders")},
       Get("/api/orders/1"),
       "z-prefix"},
      {"prefix before regex",
       {MakeRoute("a-regex", "svc", "~^/api"), MakeRoute("z-prefix", "other", "/api")},
       Get("/api/x"),
       "z-prefix"},
      {"regex before no path",
       {with_header(MakeRoute("a-nopath", "svc"), "X-A"), MakeRoute("z-regex", "other", "~^/a")},
       Get("/a", {{"X-A", "1"}}),
       "z-regex"},
      {"exact before regex",
       {MakeRoute("a-regex", "svc", "~^/health$"), MakeRoute("z-exact", "other", "=/health")},
       Get("/health"),
       "z-exact"},
      {"same specificity: name order",
       {MakeRoute("beta", "other", "/api"), MakeRoute("alpha", "svc", "/api")},
       Get("/api/x"),
       "alpha"},
      {"same specificity no path: name order",
       {MakeRoute("b", "other"), MakeRoute("a", "svc")},
       Get("/x"),
       "a"},
      {"prefix and glob with equal literal characters: name order (glob first)",
       {MakeRoute("b-prefix", "svc", "/api"), MakeRoute("a-glob", "other", "/api/*")},
       Get("/api/x"),
       "a-glob"},
      {"prefix and glob with equal literal characters: name order (prefix first)",
       {MakeRoute("a-prefix", "svc", "/api"), MakeRoute("b-glob", "other", "/api/*")},
       Get("/api/x"),
       "a-prefix"},
      {"exact root",
       {MakeRoute("a-prefix", "svc", "/"), MakeRoute("z-root", "other", "=/")},
       Get("/"),
       "z-root"},
      {"exact root only matches the root",
       {MakeRoute("a-prefix", "svc", "/"), MakeRoute("z-root", "other", "=/")},
       Get("/x"),
       "a-prefix"},
      {"a more specific route that does not match falls through",
       {MakeRoute("a-short", "svc", "/api"),
        with_header(MakeRoute("z-long", "other", "/api/orders"), "X-Beta=1")},
       Get("/api/orders"),
       "a-short"},
  };
  for (auto& row : rows) {
    CAPTURE(row.what);
    std::string input = row.req.describe();
    CAPTURE(input);
    RuleSet rs = BaseRules();
    rs.routes = row.routes;
    auto t = MustCompile(rs);
    Decision d = t->Decide(row.req.view(), 0);
    CHECK(RouteName(*t, d) == row.winner);
    // Input order must not matter.
    RuleSet reversed = rs;
    std::reverse(reversed.routes.begin(), reversed.routes.end());
    auto t2 = MustCompile(reversed);
    Decision d2 = t2->Decide(row.req.view(), 0);
    CHECK(RouteName(*t2, d2) == row.winner);
  }
}

TEST_CASE("route_table: routes() is in evaluation order") {
  RuleSet rs = BaseRules();
  Route urgent = MakeRoute("urgent", "svc");
  urgent.priority = 5;
  rs.routes = {
      MakeRoute("nopath", "svc"),
      MakeRoute("regex", "svc", "~^/x"),
      MakeRoute("prefix-short", "svc", "/a"),
      MakeRoute("glob-zz", "svc", "/zz/*"),
      MakeRoute("prefix-long", "svc", "/abcdef/ghij"),
      MakeRoute("exact", "svc", "=/q"),
      urgent,
  };
  auto t = MustCompile(rs);
  std::vector<std::string> names;
  for (const auto& r : t->routes()) names.push_back(r.name);
  const std::vector<std::string> want = {"urgent",       "exact", "prefix-long", "glob-zz",
                                         "prefix-short", "regex", "nopath"};
  CHECK(names == want);
}

// --- Explain ---------------------------------------------------------------------

TEST_CASE("route_table: Explain agrees with Decide and says why") {
  RuleSet rs = BaseRules();
  Route beta = MakeRoute("beta-orders", "other", "/api/orders");
  beta.headers = {"X-Beta=1"};
  beta.priority = 10;
  Route orders = MakeRoute("orders", "svc", "/api/orders");
  orders.percent_bp = 5000;
  orders.sticky = "header:X-User-Id";
  orders.methods = {"GET", "POST"};
  Route off = MakeRoute("off", "other", "/api");
  off.enabled = false;
  Route mobile = MakeRoute("mobile", "other");
  mobile.headers = {"X-Client=mobile"};
  Route kw = MakeRoute("kw", "svc", "/search");
  kw.query = {"q"};
  kw.cookies = {"!legacy"};
  rs.routes = {beta,
               orders,
               MakeRoute("health", "svc", "=/health"),
               MakeRoute("static", "svc", "/static/**"),
               MakeRoute("v2", "svc", "~^/v2/"),
               off,
               mobile,
               kw};
  auto t = MustCompile(rs);

  std::vector<std::string> enabled_order;
  for (const auto& r : t->routes())
    if (r.enabled) enabled_order.push_back(r.name);

  std::vector<Req> reqs = {
      Get("/api/orders", {{"X-Beta", "1"}}),
      Get("/api/orders/1", {{"X-User-Id", "alice"}}),
      Get("/api/orders/2", {{"X-User-Id", "bob"}}),
      Get("/api/orders"),
      Get("/health"),
      Get("/health/x"),
      Get("/static/app.js"),
      Get("/v2/things"),
      Get("/nothing"),
      Get("/nothing", {{"X-Client", "mobile"}}),
      Get("/search", {}, "q=shoes"),
      Get("/search", {{"Cookie", "legacy=1"}}, "q=shoes"),
      Get("/search"),
  };
  {
    Req del = Get("/api/orders/1", {{"X-User-Id", "alice"}});
    del.method = "DELETE";
    reqs.push_back(del);
  }
  for (auto& q : reqs) {
    for (uint64_t random : {0ull, 77ull, 0x123456789abcdefull}) {
      std::string input = q.describe() + " random=" + std::to_string(random);
      CAPTURE(input);
      Decision d = t->Decide(q.view(), random);
      Explanation e = t->Explain(q.view(), random);
      CHECK(e.decision.route == d.route);
      CHECK(e.decision.backend == d.backend);
      CHECK(e.decision.reason == d.reason);
      CHECK(e.decision.bucket == d.bucket);

      // Every enabled route up to the winner, in evaluation order.
      size_t want_tried = enabled_order.size();
      if (d.route >= 0) {
        std::string winner = RouteName(*t, d);
        auto it = std::find(enabled_order.begin(), enabled_order.end(), winner);
        REQUIRE(it != enabled_order.end());
        want_tried = static_cast<size_t>(it - enabled_order.begin()) + 1;
      }
      REQUIRE(e.tried.size() >= want_tried);
      for (size_t i = 0; i < want_tried; ++i) {
        CAPTURE(i);
        CHECK(e.tried[i].route == enabled_order[i]);
        bool is_winner = d.route >= 0 && i + 1 == want_tried;
        CHECK(e.tried[i].matched == is_winner);
        if (is_winner) {
          CHECK(e.tried[i].why.empty());
        } else {
          CHECK_FALSE(e.tried[i].why.empty());
        }
      }
    }
  }
}

// --- Scale (correctness only; speed belongs to benchmarks) ----------------------

TEST_CASE("route_table: 10,000 prefix routes decide correctly") {
  RuleSet rs = BaseRules();
  for (int i = 0; i < 10000; ++i) {
    Route r = MakeRoute("svc-" + std::to_string(i), i % 2 == 0 ? "svc" : "other",
                        "/svc" + std::to_string(i));
    if (i % 7 == 0) r.headers = {"X-Tier=gold"};
    rs.routes.push_back(std::move(r));
  }
  auto t = MustCompile(rs);
  std::vector<Case> cases = {
      {Get("/svc1234/x"), "svc-1234", "svc"},  // 1234 % 7 != 0
      {Get("/svc1234"), "svc-1234", "svc"},
      {Get("/svc12"), "svc-12", "svc"},  // not svc-1, svc-123, svc-1234
      {Get("/svc1"), "svc-1", "other"},
      {Get("/svc9999/a/b"), "svc-9999", "other"},
      {Get("/svc7"), "", "legacy"},  // needs X-Tier: gold
      {Get("/svc7", {{"X-Tier", "gold"}}), "svc-7", "other"},
      {Get("/svc7", {{"x-tier", "silver"}}), "", "legacy"},
      {Get("/svc0/z", {{"X-Tier", "gold"}}), "svc-0", "svc"},
      {Get("/svc10000"), "", "legacy"},
      {Get("/svc"), "", "legacy"},
      {Get("/svc1234X"), "", "legacy"},
      {Get("/other/svc12"), "", "legacy"},
      {Get("/"), "", "legacy"},
  };
  RunCases(*t, std::move(cases));
}

TEST_CASE("route_table: many routes on one path, told apart by headers") {
  // 300 routes share the prefix /api and differ only by a header value, plus
  // a lower-priority catch-all: every shard must reach its own route.
  RuleSet rs = BaseRules();
  for (int i = 0; i < 300; ++i) {
    Route r = MakeRoute("shard-" + std::to_string(1000 + i), i % 2 ? "svc" : "other", "/api");
    r.headers = {"X-Shard=" + std::to_string(i)};
    rs.routes.push_back(std::move(r));
  }
  Route glob = MakeRoute("glob", "svc", "/api/*/items");
  glob.headers = {"X-Shard=299"};
  rs.routes.push_back(glob);
  Route all = MakeRoute("all", "svc", "/");
  all.priority = -1;
  rs.routes.push_back(all);
  auto t = MustCompile(rs);
  for (int i : {0, 1, 127, 128, 129, 200, 298, 299}) {
    for (std::string path : {"/api", "/api/x/items", "/api/x/y"}) {
      Req q = Get(path, {{"X-Shard", std::to_string(i)}});
      std::string input = q.describe();
      CAPTURE(input);
      Decision d = t->Decide(q.view(), 0);
      std::string want = "shard-" + std::to_string(1000 + i);
      if (i == 299 && path == "/api/x/items") want = "glob";  // 8 literal chars beat 3
      CHECK(RouteName(*t, d) == want);
      Explanation e = t->Explain(q.view(), 0);
      CHECK(e.decision.route == d.route);
      CHECK(e.decision.backend == d.backend);
    }
  }
  Req none = Get("/api/x", {{"X-Shard", "300"}});
  CHECK(RouteName(*t, t->Decide(none.view(), 0)) == "all");
  Req other = Get("/elsewhere");
  CHECK(RouteName(*t, t->Decide(other.view(), 0)) == "all");
}

TEST_CASE("route_table: a sticky route at 100 percent is a plain route") {
  RuleSet rs = BaseRules();
  Route r = MakeRoute("full", "svc", "/f");
  r.sticky = "header:X-User-Id";
  r.else_backend = "other";
  rs.routes = {r};
  auto t = MustCompile(rs);
  for (std::string user : {"a", "b", "42", ""}) {
    CAPTURE(user);
    Req q = Get("/f", {{"X-User-Id", user}});
    Decision d = t->Decide(q.view(), 9876543210ull);
    CHECK(d.reason == Reason::kRoute);
    CHECK(d.bucket == -1);
    CHECK(BackendName(*t, d) == "svc");
  }
}

// --- NormalizePath ---------------------------------------------------------------

TEST_CASE("route_table: NormalizePath decodes unreserved and removes dot segments") {
  struct Row {
    std::string raw, want;
  };
  const std::vector<Row> rows = {
      {"/a/%61b", "/a/ab"},
      {"/%41%42%43", "/ABC"},
      {"/%7Euser", "/~user"},
      {"/a/%5F%2D%2E", "/a/_-."},
      {"/a%20b", "/a%20b"},  // space is not unreserved
      {"/a%3Fb", "/a%3Fb"},  // '?' stays encoded
      {"/a%3fb", "/a%3Fb"},  // with upper-case hex
      {"/a%252Fb", "/a%252Fb"},  // decoded once, never twice
      {"/a/./b/../c", "/a/c"},
      {"/..", "/"},
      {"/../a", "/a"},
      {"/./a", "/a"},
      {"/a/..", "/"},
      {"/a/b/..", "/a/"},
      {"/a/b/.", "/a/b/"},
      {"/a/b/../../..", "/"},
      // Decoding happens before dot removal, so an encoded ".." cannot smuggle
      // a path past a prefix route (/public/%2e%2e/admin is /admin).
      {"/public/%2e%2e/admin", "/admin"},
      {"/public/%2E%2E/admin", "/admin"},
      // Issue 12: spellings of /admin that origins serve as /admin, so that
      // a route on /admin cannot be skipped by any of them.
      {"//admin", "/admin"},
      {"/%2fadmin", "/admin"},
      {"/admin%2f", "/admin/"},
      {"/admin%2Fsecret", "/admin/secret"},
      {"/x/..%2fadmin", "/admin"},
      {"/x/..%5cadmin", "/admin"},
      {"/admin%5Csecret", "/admin/secret"},
      {"/admin\\secret", "/admin/secret"},
      {"/%61dmin", "/admin"},
      {"/./admin", "/admin"},
      {"/x/../admin", "/admin"},
      {"/%2e%2e/admin", "/admin"},
      {"/admin;jsessionid=1", "/admin"},
      {"/x/..;/admin", "/admin"},
      {"/admin;x/y", "/admin/y"},
      {"///a////b//", "/a/b/"},
      {"/a/b//..", "/a/"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.raw);
    std::string scratch;
    std::string_view got = NormalizePath(row.raw, &scratch);
    CHECK(std::string(got) == row.want);
  }
}

TEST_CASE("route_table: NormalizePath calls a dot segment beside ';' or a backslash ambiguous") {
  struct Row {
    std::string raw;
    bool ambiguous;
  };
  const std::vector<Row> rows = {
      {"/admin/..;/public", true},          {"/x/..;/admin", true},
      {"/admin/x\\..\\public", true},   {"/admin/x%5c..%5cpublic", true},
      {"/admin;%2f..%2fpublic", true},      {"/admin/.;x/y", true},
      {"/admin;jsessionid=1", false},       {"/admin\\secret", false},
      {"/x/../admin", false},               {"/x/..%2fadmin", false},
      {"/admin%5Csecret", false},           {"/a/b", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.raw);
    std::string scratch;
    bool ambiguous = !row.ambiguous;
    NormalizePath(row.raw, &scratch, &ambiguous);
    CHECK(ambiguous == row.ambiguous);
  }
}

// The proxy forwards the routed path under a base path when the raw one had
// dot segments (attack round 4: "/v2" + "/../admin").
TEST_CASE("route_table: NormalizePath says whether the path held dot segments") {
  struct Row {
    std::string raw;
    bool dots;
  };
  const std::vector<Row> rows = {
      {"/../admin", true},  {"/a/./b", true},     {"/%2e%2e/x", true}, {"/a/%2E", true},
      {"/a/..", true},      {"/x%2f..%2fy", true}, {"/a..b/c.", false}, {"/a//b", false},
      {"/a%20b", false},    {"/.well-known/x", false},
  };
  for (const auto& row : rows) {
    CAPTURE(row.raw);
    std::string scratch;
    bool dots = !row.dots;
    NormalizePath(row.raw, &scratch, nullptr, &dots);
    CHECK(dots == row.dots);
  }
}

TEST_CASE("route_table: NormalizePath returns plain paths as the same view") {
  for (std::string raw :
       {"/", "/a/b", "/api/orders/7", "/a%20b", "/x-y_z~.1", "/a/..b/c.", "/a..b"}) {
    CAPTURE(raw);
    std::string scratch = "leftover";
    std::string_view got = NormalizePath(raw, &scratch);
    CHECK(got.data() == raw.data());
    CHECK(got.size() == raw.size());
  }
}

TEST_CASE("route_table: NormalizePath survives malformed escapes") {
  // What comes out is not pinned; it must not crash or read past the end.
  for (std::string raw : {"/a%", "/a%4", "/a%zz", "/%%", "/a%4g/b"}) {
    CAPTURE(raw);
    std::string scratch;
    std::string_view got = NormalizePath(raw, &scratch);
    CHECK_FALSE(got.empty());
  }
}

TEST_CASE("route_table: a normalised path is what routes match") {
  RuleSet rs = BaseRules();
  rs.routes = {MakeRoute("admin", "other", "/admin"), MakeRoute("public", "svc", "/public")};
  auto t = MustCompile(rs);
  struct Row {
    std::string raw, route;
  };
  for (const Row& row : std::vector<Row>{{"/public/%2e%2e/admin", "admin"},
                                         {"/public/../admin/x", "admin"},
                                         {"/%61dmin", "admin"},
                                         {"/public/./x", "public"}}) {
    CAPTURE(row.raw);
    std::string scratch;
    Req q = Get(std::string(NormalizePath(row.raw, &scratch)));
    Decision d = t->Decide(q.view(), 0);
    CHECK(RouteName(*t, d) == row.route);
  }
}
}  // namespace
}  // namespace strangler
