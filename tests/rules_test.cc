// Unit tests for the rule model's field parsers and JSON forms (src/rules/rules.h),
// written from PRODUCT.md ("Backends", "Routes", "Rule files") and the header
// comments. Table-driven; every row prints its input on failure.
#include "rules/rules.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace strangler {
namespace {

// --- ParsePathPattern ------------------------------------------------------

TEST_CASE("rules: ParsePathPattern empty means any path") {
  // Route::path "" = any path, and PathKind has kNone for it: "" parses to
  // kNone rather than failing.
  auto p = ParsePathPattern("");
  REQUIRE(p.ok());
  CHECK(p->kind == PathKind::kNone);
  CHECK(p->segments.empty());
}

TEST_CASE("rules: ParsePathPattern kinds and segments") {
  struct Row {
    std::string text;
    PathKind kind;
    std::vector<std::string> segments;
    std::string regex;
  };
  const std::vector<Row> rows = {
      {"/api/orders", PathKind::kPrefix, {"api", "orders"}, ""},
      {"/api", PathKind::kPrefix, {"api"}, ""},
      {"=/health", PathKind::kExact, {"health"}, ""},
      {"=/a/b", PathKind::kExact, {"a", "b"}, ""},
      {"/api/*/items", PathKind::kGlob, {"api", "*", "items"}, ""},
      {"/static/**", PathKind::kGlob, {"static", "**"}, ""},
      {"/*", PathKind::kGlob, {"*"}, ""},
      {"~^/v[0-9]+/", PathKind::kRegex, {}, "^/v[0-9]+/"},
      {"~/items$", PathKind::kRegex, {}, "/items$"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto p = ParsePathPattern(row.text);
    REQUIRE_MESSAGE(p.ok(), p.status().message());
    CHECK(static_cast<int>(p->kind) == static_cast<int>(row.kind));
    if (row.kind == PathKind::kRegex) {
      CHECK(p->regex == row.regex);
    } else {
      CHECK(p->segments == row.segments);
    }
  }
}

TEST_CASE("rules: ParsePathPattern literal_chars orders specificity") {
  // Only relative order is contract: more literal characters = more specific.
  struct Row {
    std::string more, less;
  };
  const std::vector<Row> rows = {
      {"/api/orders", "/api"},    {"/api/orders/items", "/api/orders"}, {"/api/*/items", "/api"},
      {"/api/orders", "/api/**"}, {"/static/css/**", "/static/**"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.more);
    CAPTURE(row.less);
    auto a = ParsePathPattern(row.more);
    auto b = ParsePathPattern(row.less);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->literal_chars > b->literal_chars);
  }
}

TEST_CASE("rules: ParsePathPattern refuses malformed patterns") {
  const std::vector<std::string> bad = {
      "api/orders",  // does not start with '/'
      "orders",      //
      "*",           //
      "~(",          // bad regex
      "~[a-",        // bad regex
      "/a/**/b",     // ** not last
      "/**/x",       //
      "/a*b",        // wildcard inside a segment
      "/a/b*",       //
      "/a/*b/c",     //
      "=",           // empty exact
      "=health",     // exact must start with '/'
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    auto p = ParsePathPattern(text);
    CHECK_FALSE(p.ok());
    if (!p.ok()) CHECK_FALSE(p.status().message().empty());
  }
}

// --- ParseMatchSpec --------------------------------------------------------

TEST_CASE("rules: ParseMatchSpec forms") {
  struct Row {
    std::string text;
    std::string name;
    SpecOp op;
    std::string value;
  };
  const std::vector<Row> rows = {
      {"X-Beta=1", "X-Beta", SpecOp::kEquals, "1"},
      {"X-Env=prod-eu", "X-Env", SpecOp::kEquals, "prod-eu"},
      {"X-Version~^2\\.", "X-Version", SpecOp::kRegex, "^2\\."},
      {"X-Beta", "X-Beta", SpecOp::kPresent, ""},
      {"!X-Legacy", "X-Legacy", SpecOp::kAbsent, ""},
      {"debug=1", "debug", SpecOp::kEquals, "1"},
      {"sid", "sid", SpecOp::kPresent, ""},
      // The first '=' or '~' ends the name; the rest is the value verbatim.
      {"X-A=b=c", "X-A", SpecOp::kEquals, "b=c"},
      {"X-A=b~c", "X-A", SpecOp::kEquals, "b~c"},
      {"X-A~b=c", "X-A", SpecOp::kRegex, "b=c"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto s = ParseMatchSpec(row.text);
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    CHECK(s->name == row.name);
    CHECK(static_cast<int>(s->op) == static_cast<int>(row.op));
    CHECK(s->value == row.value);
  }
}

TEST_CASE("rules: ParseMatchSpec refuses malformed specs") {
  const std::vector<std::string> bad = {
      "",         // empty
      "=value",   // empty name
      "~regex",   // empty name
      "!",        // empty name
      "X-A~(",    // bad regex
      "X-A~[a-",  // bad regex
      "!X-A=1",   // absent takes no value
      "!X-A~x",   //
      "X A=1",    // space in name
      "X:A=1",    // ':' not a token character
      "X@A",      // '@' not a token character
      "X(A)=1",   //
      "X\"A=1",   //
      "X\tA",     //
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    auto s = ParseMatchSpec(text);
    CHECK_FALSE(s.ok());
  }
}

// --- ParseSticky -----------------------------------------------------------

TEST_CASE("rules: ParseSticky forms") {
  struct Row {
    std::string text;
    StickyKind kind;
    std::string name;
  };
  const std::vector<Row> rows = {
      {"header:X-User-Id", StickyKind::kHeader, "X-User-Id"},
      {"cookie:sid", StickyKind::kCookie, "sid"},
      {"query:uid", StickyKind::kQuery, "uid"},
      {"ip", StickyKind::kIp, ""},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto s = ParseSticky(row.text);
    REQUIRE_MESSAGE(s.ok(), s.status().message());
    CHECK(static_cast<int>(s->kind) == static_cast<int>(row.kind));
    CHECK(s->name == row.name);
  }
}

TEST_CASE("rules: ParseSticky refuses malformed keys") {
  const std::vector<std::string> bad = {
      "bogus:x", "header:", "cookie:", "query:", "ip:x", "header", "cookie", "x", ":x",
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    CHECK_FALSE(ParseSticky(text).ok());
  }
}

// --- ParsePercent / FormatPercent / PercentFromJson -------------------------

TEST_CASE("rules: ParsePercent accepts 0..100 with up to two decimals") {
  struct Row {
    std::string text;
    int bp;
  };
  const std::vector<Row> rows = {
      {"0", 0},          {"100", 10000},  {"30", 3000},    {"12.5", 1250},
      {"0.01", 1},       {"99.99", 9999}, {"50.00", 5000}, {"0.25", 25},
      {"100.00", 10000}, {"1.5", 150},    {"7", 700},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto p = ParsePercent(row.text);
    REQUIRE_MESSAGE(p.ok(), p.status().message());
    CHECK(*p == row.bp);
  }
}

TEST_CASE("rules: ParsePercent refuses out of range and malformed") {
  const std::vector<std::string> bad = {
      "-1", "100.01", "101",   "12.345", "abc", "",    "1e2", " 5",
      "5 ", "-0.01",  "0.001", "1,5",    "50%", "nan", "inf", "1000",
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    CHECK_FALSE(ParsePercent(text).ok());
  }
}

TEST_CASE("rules: FormatPercent shortest form and round trip") {
  struct Row {
    int bp;
    std::string text;
  };
  const std::vector<Row> rows = {
      {3000, "30"}, {1250, "12.5"},  {0, "0"},     {10000, "100"},
      {1, "0.01"},  {9999, "99.99"}, {25, "0.25"}, {5050, "50.5"},
  };
  for (const auto& row : rows) {
    CAPTURE(row.bp);
    CHECK(FormatPercent(row.bp) == row.text);
  }
  for (int bp = 0; bp <= kFullPercentBp; ++bp) {
    std::string text = FormatPercent(bp);
    auto back = ParsePercent(text);
    if (!back.ok() || *back != bp) {
      CAPTURE(bp);
      CAPTURE(text);
      REQUIRE(back.ok());
      REQUIRE(*back == bp);
    }
  }
}

TEST_CASE("rules: PercentFromJson takes numbers") {
  struct Row {
    Json j;
    int bp;
  };
  const std::vector<Row> rows = {
      {Json(12.5), 1250},   {Json(30), 3000},    {Json(0), 0},     {Json(100), 10000},
      {Json(0.01), 1},      {Json(99.99), 9999}, {Json(0.29), 29},  // 0.29 * 100
                                                                    // is 28.999999999999996 in
                                                                    // binary floating point
      {Json(0.57), 57},                                             // 56.99999999999999
      {Json(100.0), 10000},
  };
  for (const auto& row : rows) {
    CAPTURE(row.j.dump());
    auto p = PercentFromJson(row.j);
    REQUIRE_MESSAGE(p.ok(), p.status().message());
    CHECK(*p == row.bp);
  }
  const std::vector<Json> bad = {Json(-1),   Json(100.01),  Json(101),     Json(12.345),
                                 Json(true), Json::array(), Json::object()};
  for (const auto& j : bad) {
    CAPTURE(j.dump());
    CHECK_FALSE(PercentFromJson(j).ok());
  }
}

// --- ValidateName ----------------------------------------------------------

TEST_CASE("rules: ValidateName [a-z0-9][a-z0-9_-]{0,63}") {
  const std::vector<std::string> good = {
      "a",
      "orders-v2",
      "x_1",
      "0",
      "9lives",
      "a-",
      "a_",
      std::string(64, 'a'),
      "a" + std::string(63, '-'),
  };
  for (const auto& name : good) {
    CAPTURE(name);
    Status st = ValidateName("route", name);
    CHECK_MESSAGE(st.ok(), st.message());
  }
  const std::vector<std::string> bad = {
      "-a",     "_a",  "A",  "Orders", std::string(65, 'a'), "a.b", "", "a b", "a/b",
      "ordérs", "a:b", " a", "a\n",
  };
  for (const auto& name : bad) {
    CAPTURE(name);
    Status st = ValidateName("route", name);
    CHECK_FALSE(st.ok());
    if (!st.ok()) CHECK_FALSE(st.message().empty());
  }
}

// --- ParseUrl --------------------------------------------------------------

TEST_CASE("rules: ParseUrl splits host, port and base path") {
  struct Row {
    std::string text;
    std::string host;
    uint16_t port;
    std::string base;
    bool tls = false;
  };
  const std::vector<Row> rows = {
      {"http://127.0.0.1:9001", "127.0.0.1", 9001, ""},
      {"https://orders.internal:8443/api", "orders.internal", 8443, "/api", true},
      {"https://orders.internal", "orders.internal", 443, "", true},  // https's own port
      {"https://[::1]:9443", "::1", 9443, "", true},
      {"http://localhost:80/base", "localhost", 80, "/base"},
      {"http://[::1]:8080/x/", "::1", 8080, "/x"},  // brackets dropped, trailing slash dropped
      {"http://legacy.internal:8080/a/b", "legacy.internal", 8080, "/a/b"},
      {"http://h:1/", "h", 1, ""},
      {"http://h:65535", "h", 65535, ""},
  };
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto u = ParseUrl(row.text);
    REQUIRE_MESSAGE(u.ok(), u.status().message());
    CHECK(u->host == row.host);
    CHECK(u->port == row.port);
    CHECK(u->base_path == row.base);
    CHECK(u->tls == row.tls);
  }
}

TEST_CASE("rules: --ca and --tls-insecure are for https backends, and not together") {
  Backend b;
  b.name = "orders";
  b.urls = {"http://127.0.0.1:9001"};
  b.ca_file = "/etc/ssl/private-ca.pem";
  CHECK(ValidateBackend(b).message() ==
        "--ca is for https:// backends; backend 'orders' has no https:// URL");
  b.urls.push_back("https://127.0.0.1:9443");
  CHECK(ValidateBackend(b).ok());
  b.tls_insecure = true;
  CHECK(ValidateBackend(b).message().find("--ca and --tls-insecure together") != std::string::npos);
  b.ca_file = "";
  CHECK(ValidateBackend(b).ok());
  b.ca_file = std::string("/a\nb");
  b.tls_insecure = false;
  CHECK(ValidateBackend(b).message().find("bad --ca") != std::string::npos);
}

TEST_CASE("rules: ParseUrl refuses clearly invalid URLs") {
  // Whether a missing port defaults to 80 is not pinned by the contract
  // ("http://host:port[/base-path]"), so it is not tested either way.
  const std::vector<std::string> bad = {
      "ftp://h:21",     "http://",      "notaurl",      "http://h:99999",
      "http://h:65536", "http://:80",   "http://h:abc", "",
      "h:80",           "http://h:-1",  "http//h:80",   "http://[::1:80",
      "https://",       "https://:443", "HTTPS://h:1",  "https:/h:1",
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    CHECK_FALSE(ParseUrl(text).ok());
  }
}

TEST_CASE("rules: a new backend URL takes a base path of plain segments only") {
  for (const char* good : {"http://h:1/v2", "http://h:1/a-b/c_d.e~f/%20x/@:!$&'()*+,=",
                           "http://h:1/caf%C3%A9", "http://h:1/a.b/..x/x.."}) {
    CAPTURE(good);
    CHECK(CheckNewBackendUrl(good).ok());
  }
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"http://h:1/v2/../admin", "base path has a '..' segment"},
      {"http://h:1/./v2", "base path has a '.' segment"},
      {"http://h:1/a//b", "base path has an empty segment ('//')"},
      {"http://h:1/a\\b", "base path has '\\' (letters, digits, -._~!$&'()*+,=:@ and %XX only)"},
      {"http://h:1/a;jsessionid=1", "base path has ';' (letters, digits, -._~!$&'()*+,=:@ and %XX only)"},
      {"http://h:1/a\x01", "base path has a control or non-ASCII byte (escape it as %XX)"},
      {"http://h:1/caf\xc3\xa9", "base path has a control or non-ASCII byte (escape it as %XX)"},
      {"http://h:1/a%2Fb", "base path has an escaped '/', '.', '\\' or control byte (%2F)"},
      {"http://h:1/%2e%2e", "base path has an escaped '/', '.', '\\' or control byte (%2e)"},
      {"http://h:1/a%5c", "base path has an escaped '/', '.', '\\' or control byte (%5c)"},
      {"http://h:1/a%00", "base path has an escaped '/', '.', '\\' or control byte (%00)"},
      {"http://h:1/a%4", "base path has a '%' not followed by two hex digits"},
      {"http://h:1/a%zz", "base path has a '%' not followed by two hex digits"},
  };
  for (const auto& [text, why] : bad) {
    CAPTURE(text);
    CHECK(ParseUrl(text).ok());  // as stored before the check: still read
    Status st = CheckNewBackendUrl(text);
    REQUIRE_FALSE(st.ok());
    CHECK(st.message() ==
          "bad backend URL '" + text + "': " + why + " (expected http[s]://host:port[/base-path])");
  }
}

// --- ParseMethod -----------------------------------------------------------

TEST_CASE("rules: ParseMethod upper-cases tokens") {
  struct Row {
    std::string text, want;
  };
  const std::vector<Row> rows = {
      {"GET", "GET"}, {"get", "GET"}, {"Post", "POST"}, {"PROPFIND", "PROPFIND"}};
  for (const auto& row : rows) {
    CAPTURE(row.text);
    auto m = ParseMethod(row.text);
    REQUIRE(m.ok());
    CHECK(*m == row.want);
  }
  for (std::string text : {"", "GE T", "GET,POST", "G(T"}) {
    CAPTURE(text);
    CHECK_FALSE(ParseMethod(text).ok());
  }
}

// --- JSON ------------------------------------------------------------------

void CheckSameRoute(const Route& a, const Route& b) {
  CHECK(a.name == b.name);
  CHECK(a.to == b.to);
  CHECK(a.else_backend == b.else_backend);
  CHECK(a.path == b.path);
  CHECK(a.methods == b.methods);
  CHECK(a.headers == b.headers);
  CHECK(a.query == b.query);
  CHECK(a.cookies == b.cookies);
  CHECK(a.percent_bp == b.percent_bp);
  CHECK(a.sticky == b.sticky);
  CHECK(a.salt == b.salt);
  CHECK(a.priority == b.priority);
  CHECK(a.enabled == b.enabled);
}

void CheckSameBackend(const Backend& a, const Backend& b) {
  CHECK(a.name == b.name);
  CHECK(a.urls == b.urls);
  CHECK(a.is_default == b.is_default);
  CHECK(a.timeout_ms == b.timeout_ms);
  CHECK(a.connect_timeout_ms == b.connect_timeout_ms);
  CHECK(a.max_conns == b.max_conns);
  CHECK(a.max_queue == b.max_queue);
  CHECK(a.queue_timeout_ms == b.queue_timeout_ms);
  CHECK(a.reuse_quiet_ms == b.reuse_quiet_ms);
  CHECK(a.eject_after == b.eject_after);
  CHECK(a.eject_for_ms == b.eject_for_ms);
  CHECK(a.health_path == b.health_path);
  CHECK(a.health_every_ms == b.health_every_ms);
}

TEST_CASE("rules: Route JSON round trip") {
  Route full;
  full.name = "orders";
  full.to = "orders-svc";
  full.else_backend = "legacy";
  full.path = "/api/orders";
  full.methods = {"GET", "POST"};
  full.headers = {"X-Beta=1", "!X-Legacy"};
  full.query = {"debug"};
  full.cookies = {"sid~^a"};
  full.percent_bp = 1250;
  full.sticky = "header:X-User-Id";
  full.salt = "cohort";
  full.priority = 7;
  full.enabled = false;

  Route minimal;
  minimal.name = "r";
  minimal.to = "b";

  Route odd = full;
  odd.name = "odd";
  odd.path = "=/health";
  odd.percent_bp = 1;
  odd.priority = -3;
  odd.else_backend = "";
  odd.sticky = "ip";
  odd.enabled = true;

  for (const Route& r : {full, minimal, odd}) {
    CAPTURE(r.name);
    Json j = ToJson(r);
    CAPTURE(j.dump());
    auto back = RouteFromJson(j);
    REQUIRE_MESSAGE(back.ok(), back.status().message());
    CheckSameRoute(*back, r);
    // Also survives text serialisation (rule files are text).
    auto again = RouteFromJson(Json::parse(j.dump()));
    REQUIRE(again.ok());
    CheckSameRoute(*again, r);
  }
}

TEST_CASE("rules: Route JSON field names and percent as a number") {
  Route r;
  r.name = "orders";
  r.to = "svc";
  r.else_backend = "legacy";
  r.path = "/api/orders";
  r.methods = {"GET"};
  r.percent_bp = 1250;
  r.sticky = "cookie:sid";
  r.salt = "s";
  r.priority = 3;
  Json j = ToJson(r);
  CAPTURE(j.dump());
  REQUIRE(j.is_object());
  CHECK(j.at("name") == "orders");
  CHECK(j.at("to") == "svc");
  CHECK(j.at("else") == "legacy");
  CHECK(j.at("path") == "/api/orders");
  CHECK(j.at("methods") == Json::array({"GET"}));
  REQUIRE(j.at("percent").is_number());
  CHECK(j.at("percent").get<double>() == doctest::Approx(12.5));
  CHECK(j.at("sticky") == "cookie:sid");
  CHECK(j.at("salt") == "s");
  CHECK(j.at("priority") == 3);
  CHECK(j.at("enabled") == true);

  r.percent_bp = 3000;
  Json j30 = ToJson(r);
  REQUIRE(j30.at("percent").is_number());
  CHECK(j30.at("percent").get<double>() == doctest::Approx(30.0));
}

TEST_CASE("rules: RouteFromJson defaults for omitted fields") {
  auto r = RouteFromJson(Json::parse(R"({"name": "orders", "to": "svc"})"));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->name == "orders");
  CHECK(r->to == "svc");
  CHECK(r->else_backend == "");
  CHECK(r->path == "");
  CHECK(r->methods.empty());
  CHECK(r->headers.empty());
  CHECK(r->query.empty());
  CHECK(r->cookies.empty());
  CHECK(r->percent_bp == kFullPercentBp);
  CHECK(r->sticky == "");
  CHECK(r->salt == "");
  CHECK(r->effective_salt() == "orders");
  CHECK(r->priority == 0);
  CHECK(r->enabled == true);
}

TEST_CASE("rules: RouteFromJson percent 12.5 and refusals") {
  auto r = RouteFromJson(Json::parse(R"({"name": "a", "to": "b", "percent": 12.5})"));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->percent_bp == 1250);

  const std::vector<std::string> bad = {
      R"({"name": "a", "to": "b", "bogus": 1})",          // unknown field
      R"({"name": "a", "to": "b", "Percent": 10})",       // unknown (case matters)
      R"({"to": "b"})",                                   // no name
      R"({"name": "a"})",                                 // no to
      R"({"name": "a", "to": "b", "percent": 101})",      //
      R"({"name": "a", "to": "b", "percent": 12.345})",   //
      R"({"name": "a", "to": "b", "percent": "abc"})",    // wrong type
      R"({"name": "a", "to": "b", "enabled": "yes"})",    //
      R"({"name": "a", "to": "b", "priority": "high"})",  //
      R"({"name": "a", "to": "b", "methods": "GET"})",    // must be an array
      R"({"name": "a", "to": "b", "headers": [1]})",      //
      R"({"name": 5, "to": "b"})",                        //
      R"(["name", "a"])",                                 // not an object
      R"("a")",                                           //
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    Json j = Json::parse(text);
    Result<Route> got = Route{};
    CHECK_NOTHROW(got = RouteFromJson(j));
    CHECK_FALSE(got.ok());
  }
}

TEST_CASE("rules: Backend JSON round trip, defaults and refusals") {
  Backend b;
  b.name = "orders-svc";
  b.urls = {"http://127.0.0.1:9001", "http://127.0.0.1:9002/base"};
  b.is_default = true;
  b.timeout_ms = 1500;
  Json j = ToJson(b);
  CAPTURE(j.dump());
  CHECK(j.at("name") == "orders-svc");
  CHECK(j.at("urls") == Json::array({"http://127.0.0.1:9001", "http://127.0.0.1:9002/base"}));
  CHECK(j.at("default") == true);
  CHECK(j.at("timeout_ms") == 1500);
  auto back = BackendFromJson(j);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CheckSameBackend(*back, b);

  auto d = BackendFromJson(Json::parse(R"({"name": "legacy", "urls": ["http://h:80"]})"));
  REQUIRE_MESSAGE(d.ok(), d.status().message());
  CHECK(d->is_default == false);
  CHECK(d->timeout_ms == kDefaultTimeoutMs);
  CHECK(d->urls == std::vector<std::string>{"http://h:80"});

  const std::vector<std::string> bad = {
      R"({"name": "legacy", "urls": ["http://h:80"], "weight": 3})",   // unknown field
      R"({"urls": ["http://h:80"]})",                                  // no name
      R"({"name": "legacy", "urls": "http://h:80"})",                  // urls not an array
      R"({"name": "legacy", "urls": ["http://h:80"], "default": 1})",  // not a bool
      R"({"name": "legacy", "urls": ["http://h:80"], "timeout_ms": "5"})",
      R"([])",
  };
  for (const auto& text : bad) {
    CAPTURE(text);
    Json bj = Json::parse(text);
    Result<Backend> got = Backend{};
    CHECK_NOTHROW(got = BackendFromJson(bj));
    CHECK_FALSE(got.ok());
  }
}

TEST_CASE("rules: Backend options appear in JSON only when set, and read back") {
  Backend plain;
  plain.name = "legacy";
  plain.urls = {"http://h:80"};
  // Objects written before the options existed (history rows, rule files,
  // --json outputs) stay byte for byte the same.
  CHECK(ToJson(plain).dump() ==
        R"({"default":false,"name":"legacy","timeout_ms":30000,"urls":["http://h:80"]})");
  CHECK(BackendOptionsJson(plain) == Json::object());

  Backend b = plain;
  b.connect_timeout_ms = 250;
  b.max_conns = 10;
  b.max_queue = 100;
  b.queue_timeout_ms = 1500;
  b.reuse_quiet_ms = 0;
  b.health_path = "/healthz?deep=1";
  Json j = ToJson(b);
  CAPTURE(j.dump());
  CHECK(j.at("connect_timeout_ms") == 250);
  CHECK(j.at("max_conns") == 10);
  CHECK(j.at("max_queue") == 100);
  CHECK(j.at("queue_timeout_ms") == 1500);
  CHECK(j.at("reuse_quiet_ms") == 0);
  CHECK(j.at("health_path") == "/healthz?deep=1");
  auto back = BackendFromJson(j);
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CheckSameBackend(*back, b);
  CHECK(BackendFields() ==
        std::vector<std::string>{"name", "urls", "default", "timeout_ms", "connect_timeout_ms",
                                 "max_conns", "max_queue", "queue_timeout_ms", "reuse_quiet_ms",
                                 "eject_after", "eject_for_ms", "health_every_ms", "health_path",
                                 "ca_file", "tls_insecure"});
  Backend secure = plain;
  secure.urls = {"https://h"};
  secure.ca_file = "/etc/ca.pem";
  CHECK(ToJson(secure).at("ca_file") == "/etc/ca.pem");
  CHECK(ToJson(secure).count("tls_insecure") == 0);
  secure.ca_file = "";
  secure.tls_insecure = true;
  CHECK(ToJson(secure).at("tls_insecure") == true);
  auto secure_back = BackendFromJson(ToJson(secure));
  REQUIRE(secure_back.ok());
  CHECK(secure_back->tls_insecure);

  // One option set: only that one is written.
  Backend one = plain;
  one.max_conns = 3;
  CHECK(BackendOptionsJson(one) == Json{{"max_conns", 3}});

  // The options object alone (the store's backends.options column).
  Backend read = plain;
  REQUIRE(ReadBackendOptions(BackendOptionsJson(b), &read).ok());
  CheckSameBackend(read, b);
  Backend untouched = b;
  REQUIRE(ReadBackendOptions(Json::object(), &untouched).ok());
  CheckSameBackend(untouched, b);
  for (const char* text :
       {R"({"timeout_ms": 5})", R"({"tls_ca": "/h"})", R"({"max_conns": "10"})",
        R"({"health_path": 5})", R"([])"}) {
    CAPTURE(text);
    Backend x = plain;
    CHECK_FALSE(ReadBackendOptions(Json::parse(text), &x).ok());
  }
}

TEST_CASE("rules: ValidateBackend ranges of the backend options name the flag") {
  struct Row {
    int Backend::*field;
    int value;
    const char* error;  // "" = valid
  };
  const std::vector<Row> rows = {
      {&Backend::timeout_ms, 0, "bad --timeout-ms 0 for backend 'svc': use 1..3600000"},
      {&Backend::connect_timeout_ms, 1, ""},
      {&Backend::connect_timeout_ms, 3600000, ""},
      {&Backend::connect_timeout_ms, 0,
       "bad --connect-timeout-ms 0 for backend 'svc': use 1..3600000"},
      {&Backend::connect_timeout_ms, 3600001,
       "bad --connect-timeout-ms 3600001 for backend 'svc': use 1..3600000"},
      {&Backend::max_conns, 0, ""},
      {&Backend::max_conns, 100000, ""},
      {&Backend::max_conns, -1, "bad --max-conns -1 for backend 'svc': use 0..100000"},
      {&Backend::max_conns, 100001, "bad --max-conns 100001 for backend 'svc': use 0..100000"},
      {&Backend::max_queue, 0, ""},
      {&Backend::max_queue, 1000000, ""},
      {&Backend::max_queue, -5, "bad --max-queue -5 for backend 'svc': use 0..1000000"},
      {&Backend::max_queue, 1000001, "bad --max-queue 1000001 for backend 'svc': use 0..1000000"},
      {&Backend::queue_timeout_ms, 1, ""},
      {&Backend::queue_timeout_ms, 3600000, ""},
      {&Backend::queue_timeout_ms, 0, "bad --queue-timeout 0ms for backend 'svc': use 1ms..1h"},
      {&Backend::queue_timeout_ms, 3601000,
       "bad --queue-timeout 1h1s for backend 'svc': use 1ms..1h"},
      {&Backend::reuse_quiet_ms, 0, ""},
      {&Backend::reuse_quiet_ms, 1000, ""},
      {&Backend::reuse_quiet_ms, -1, "bad --reuse-quiet-ms -1 for backend 'svc': use 0..1000"},
      {&Backend::reuse_quiet_ms, 1001,
       "bad --reuse-quiet-ms 1001 for backend 'svc': use 0..1000"},
      {&Backend::eject_after, 0, ""},
      {&Backend::eject_after, 1001, "bad --eject-after 1001 for backend 'svc': use 0..1000"},
      {&Backend::eject_for_ms, 99, "bad --eject-for 99ms for backend 'svc': use 100ms..5m"},
      {&Backend::eject_for_ms, 300000, ""},
      {&Backend::health_every_ms, 99, "bad --health-every 99ms for backend 'svc': use 100ms..1h"},
  };
  for (const Row& row : rows) {
    Backend b;
    b.name = "svc";
    b.urls = {"http://127.0.0.1:9001"};
    b.*row.field = row.value;
    CAPTURE(ToJson(b).dump());
    Status st = ValidateBackend(b);
    if (std::string(row.error).empty()) {
      CHECK_MESSAGE(st.ok(), st.message());
    } else {
      CHECK(st.code() == Code::kUsage);
      CHECK(st.message() == row.error);
      // A rule file or stored object with that value is refused the same way.
      Result<Backend> from_json = BackendFromJson(ToJson(b));
      CHECK_FALSE(from_json.ok());
      CHECK(from_json.status().message() == row.error);
    }
  }
}

// --- Validate* -------------------------------------------------------------

TEST_CASE("rules: ValidateRoute and ValidateBackend check each field") {
  Route good;
  good.name = "orders";
  good.to = "svc";
  good.path = "/api/orders";
  good.methods = {"GET"};
  good.headers = {"X-Beta=1"};
  good.sticky = "header:X-User-Id";
  good.percent_bp = 3000;
  {
    Status st = ValidateRoute(good);
    CHECK_MESSAGE(st.ok(), st.message());
  }

  struct Row {
    const char* what;
    Route r;
  };
  std::vector<Row> rows;
  auto with = [&](const char* what, auto mutate) {
    Route r = good;
    mutate(r);
    rows.push_back({what, r});
  };
  with("bad name", [](Route& r) { r.name = "Orders"; });
  with("bad path", [](Route& r) { r.path = "api"; });
  with("bad header spec", [](Route& r) { r.headers = {"!X=1"}; });
  with("bad query spec", [](Route& r) { r.query = {"=1"}; });
  with("bad cookie spec", [](Route& r) { r.cookies = {"a~("}; });
  with("bad sticky", [](Route& r) { r.sticky = "bogus:x"; });
  with("percent > 100", [](Route& r) { r.percent_bp = 10001; });
  with("percent < 0", [](Route& r) { r.percent_bp = -1; });
  with("empty to", [](Route& r) { r.to = ""; });
  for (const auto& row : rows) {
    CAPTURE(row.what);
    CHECK_FALSE(ValidateRoute(row.r).ok());
  }

  Backend b;
  b.name = "svc";
  b.urls = {"http://127.0.0.1:9001"};
  {
    Status st = ValidateBackend(b);
    CHECK_MESSAGE(st.ok(), st.message());
  }
  Backend no_urls = b;
  no_urls.urls.clear();
  CHECK_FALSE(ValidateBackend(no_urls).ok());
  Backend bad_url = b;
  bad_url.urls = {"ftp://x:1"};
  CHECK_FALSE(ValidateBackend(bad_url).ok());
  Backend bad_name = b;
  bad_name.name = "-svc";
  CHECK_FALSE(ValidateBackend(bad_name).ok());
}

TEST_CASE("rules: ValidateRuleSet whole-set checks") {
  Backend legacy{"legacy", {"http://127.0.0.1:9000"}, true, kDefaultTimeoutMs};
  Backend svc{"svc", {"http://127.0.0.1:9001"}, false, kDefaultTimeoutMs};
  Route r;
  r.name = "orders";
  r.to = "svc";
  r.path = "/api/orders";

  RuleSet ok_set{{legacy, svc}, {r}, 1};
  {
    Status st = ValidateRuleSet(ok_set);
    CHECK_MESSAGE(st.ok(), st.message());
  }

  struct Row {
    const char* what;
    RuleSet rules;
  };
  std::vector<Row> rows;
  {
    RuleSet s = ok_set;
    s.backends[0].is_default = false;
    rows.push_back({"no default", s});
  }
  {
    RuleSet s = ok_set;
    s.backends[1].is_default = true;
    rows.push_back({"two defaults", s});
  }
  {
    RuleSet s = ok_set;
    s.routes[0].to = "nope";
    rows.push_back({"unknown to", s});
  }
  {
    RuleSet s = ok_set;
    s.routes[0].else_backend = "nope";
    rows.push_back({"unknown else", s});
  }
  {
    RuleSet s = ok_set;
    s.backends.push_back(svc);
    rows.push_back({"duplicate backend", s});
  }
  {
    RuleSet s = ok_set;
    s.routes.push_back(r);
    rows.push_back({"duplicate route", s});
  }
  for (const auto& row : rows) {
    CAPTURE(row.what);
    CHECK_FALSE(ValidateRuleSet(row.rules).ok());
  }
}

}  // namespace
}  // namespace strangler
