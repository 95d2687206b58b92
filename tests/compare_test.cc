// Unit tests for response comparison (src/safety/compare.h), written from the
// contract: "compare the two responses (status, body — JSON compared as
// values, key order ignored — and any headers named with --compare-header),
// ignoring JSON fields named with --ignore-field". Table rows print their input.
#include "safety/compare.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace strangler {
namespace {

CapturedResponse Response(std::string content_type, std::string body, int status = 200) {
  CapturedResponse r;
  r.status = status;
  r.content_type = std::move(content_type);
  r.body = std::move(body);
  r.body_bytes = r.body.size();
  BodyHasher h;
  h.Update(r.body);
  r.body_hash = h.value();
  return r;
}

CapturedResponse JsonResponse(std::string body) {
  return Response("application/json", std::move(body));
}

CompareOptions Ignoring(const std::vector<std::string>& paths) {
  CompareOptions opts;
  for (const std::string& p : paths) {
    Result<IgnoreField> f = ParseIgnoreField(p);
    REQUIRE_MESSAGE(f.ok(), f.status().message());
    opts.ignore.push_back(*f);
  }
  return opts;
}

Comparison CompareJson(const std::string& primary, const std::string& mirror,
                       const CompareOptions& opts = {}) {
  return CompareResponses(JsonResponse(primary), JsonResponse(mirror), opts);
}

// --- JSON bodies -----------------------------------------------------------

TEST_CASE("compare: JSON with reordered keys is equal") {
  Comparison c = CompareJson(R"({"a":1,"b":{"x":[1,2],"y":"z"},"c":null})",
                             R"({ "c": null, "b": {"y": "z", "x": [1, 2]}, "a": 1 })");
  CHECK(c.equal);
  CHECK(c.kind == "json");
  CHECK(c.diffs.empty());
  CHECK(c.more == 0);
}

TEST_CASE("compare: JSON numbers are compared by value") {
  struct Row {
    std::string primary, mirror;
    bool equal;
  };
  const std::vector<Row> rows = {
      {R"({"n":1})", R"({"n":1.0})", true},    // integer and float spelling
      {R"({"n":100})", R"({"n":1e2})", true},  // exponent
      {R"({"n":-3})", R"({"n":-3.0})", true},  // negative
      {R"({"n":1})", R"({"n":1.5})", false},   // a real change
      {R"({"n":1})", R"({"n":"1"})", false},   // number vs string
      {R"([0])", R"([false])", false},         // number vs boolean
  };
  for (const Row& row : rows) {
    CAPTURE(row.primary);
    CAPTURE(row.mirror);
    CHECK(CompareJson(row.primary, row.mirror).equal == row.equal);
  }
}

TEST_CASE("compare: a JSON field difference names its path and both values") {
  Comparison c =
      CompareJson(R"({"items":[{"price":1},{"price":2},{"price":10,"sku":"a"}],"total":13})",
                  R"({"items":[{"price":1},{"price":2},{"price":12,"sku":"a"}],"total":13})");
  CHECK_FALSE(c.equal);
  CHECK(c.kind == "json");
  REQUIRE(c.diffs.size() == 1);
  CHECK(c.diffs[0].where == "$.items[2].price");
  CHECK(c.diffs[0].primary == Json(10));
  CHECK(c.diffs[0].mirror == Json(12));
  CHECK_FALSE(c.diffs[0].primary_missing);
  CHECK_FALSE(c.diffs[0].mirror_missing);
}

TEST_CASE("compare: a large differing JSON value is kept cut to 200 bytes, marked") {
  const std::string big(1000000, 'x');
  Comparison c = CompareJson(
      R"({"blob":")" + big + R"(","items":[1,2],"n":1})",
      R"({"blob":")" + big + R"(y","items":{"a":[")" + std::string(300, 'z') + R"("]},"n":2})");
  CHECK_FALSE(c.equal);
  REQUIRE(c.diffs.size() == 3);
  CHECK(c.diffs[0].where == "$.blob");
  for (const Json* v : {&c.diffs[0].primary, &c.diffs[0].mirror}) {
    REQUIRE(v->is_string());
    CHECK(v->get<std::string>().size() < 250);
  }
  CHECK(c.diffs[0].primary.get<std::string>().find("… (1000002 bytes)") != std::string::npos);
  CHECK(c.diffs[1].where == "$.items");
  CHECK(c.diffs[1].primary == Json::parse("[1,2]"));  // small: whole, as it was
  REQUIRE(c.diffs[1].mirror.is_string());
  CHECK(c.diffs[1].mirror.get<std::string>().rfind(R"({"a":["zzzz)", 0) == 0);
  CHECK(c.diffs[2].primary == Json(1));
  CHECK(c.diffs[2].mirror == Json(2));
}

TEST_CASE("compare: JSON diff paths, missing sides and type changes") {
  SUBCASE("a key that is not identifier-like is quoted") {
    Comparison c = CompareJson(R"({"odd key":{"9lives":1}})", R"({"odd key":{"9lives":2}})");
    REQUIRE(c.diffs.size() == 1);
    CHECK(c.diffs[0].where == R"($["odd key"]["9lives"])");
  }
  SUBCASE("a key on one side only is marked missing on the other") {
    Comparison c = CompareJson(R"({"old":null})", R"({"new":null})");
    REQUIRE(c.diffs.size() == 2);
    CHECK(c.diffs[0].where == "$.old");
    CHECK(c.diffs[0].mirror_missing);
    CHECK_FALSE(c.diffs[0].primary_missing);
    CHECK(c.diffs[0].primary.is_null());  // a real null, told apart by the flag
    CHECK(c.diffs[1].where == "$.new");
    CHECK(c.diffs[1].primary_missing);
  }
  SUBCASE("extra array elements are each missing on the other side") {
    Comparison c = CompareJson(R"([1,2])", R"([1,2,3,4])");
    REQUIRE(c.diffs.size() == 2);
    CHECK(c.diffs[0].where == "$[2]");
    CHECK(c.diffs[0].primary_missing);
    CHECK(c.diffs[0].mirror == Json(3));
    CHECK(c.diffs[1].where == "$[3]");
  }
  SUBCASE("a type change is one diff at that path") {
    Comparison c = CompareJson(R"({"a":{"b":1,"c":2}})", R"({"a":5})");
    REQUIRE(c.diffs.size() == 1);
    CHECK(c.diffs[0].where == "$.a");
    CHECK(c.diffs[0].primary == Json::parse(R"({"b":1,"c":2})"));
    CHECK(c.diffs[0].mirror == Json(5));
  }
  SUBCASE("different roots are a diff at $") {
    Comparison c = CompareJson(R"("x")", R"("y")");
    REQUIRE(c.diffs.size() == 1);
    CHECK(c.diffs[0].where == "$");
  }
}

TEST_CASE("compare: items[].updated_at ignored makes otherwise different bodies equal") {
  std::string primary =
      R"({"items":[{"id":1,"updated_at":"10:00"},{"id":2,"updated_at":"10:01"}]})";
  std::string mirror = R"({"items":[{"id":1,"updated_at":"11:00"},{"id":2}]})";
  CHECK_FALSE(CompareJson(primary, mirror).equal);
  Comparison c = CompareJson(primary, mirror, Ignoring({"items[].updated_at"}));
  CHECK(c.equal);
  CHECK(c.kind == "json");

  // Only the named field is ignored: another difference still counts.
  std::string other = R"({"items":[{"id":1,"updated_at":"11:00"},{"id":3}]})";
  Comparison d = CompareJson(primary, other, Ignoring({"items[].updated_at"}));
  REQUIRE(d.diffs.size() == 1);
  CHECK(d.diffs[0].where == "$.items[1].id");
}

TEST_CASE("compare: a top-level [] wildcard ignores a field in every element") {
  std::string primary = R"([{"id":1,"meta":{"at":1}},{"id":2,"meta":{"at":2}}])";
  std::string mirror = R"([{"id":1,"meta":{"at":7}},{"id":2,"meta":{"at":8}}])";
  CHECK_FALSE(CompareJson(primary, mirror).equal);
  CHECK(CompareJson(primary, mirror, Ignoring({"[].meta.at"})).equal);
  CHECK(CompareJson(primary, mirror, Ignoring({"[].meta"})).equal);
}

TEST_CASE("compare: a path ending in [] ignores the elements of nested arrays") {
  CHECK(CompareJson(R"({"m":[[1,2],[3]]})", R"({"m":[[9],[8,7]]})", Ignoring({"m[][]"})).equal);
  // The outer array's length still counts.
  CHECK_FALSE(CompareJson(R"({"m":[[1]]})", R"({"m":[[1],[2]]})", Ignoring({"m[][]"})).equal);
}

TEST_CASE("compare: ignoring a path that is not there is harmless") {
  std::string primary = R"({"a":{"b":1},"items":[{"x":1}],"n":5})";
  std::string mirror = R"({"a":{"b":2},"items":[{"x":1}],"n":5})";
  // Missing keys, arrays where keys are named, keys where arrays are named.
  CompareOptions opts = Ignoring({"nope", "nope.deeper", "items[].nope", "a[].b", "n.x", "[].a"});
  Comparison c = CompareJson(primary, mirror, opts);
  REQUIRE(c.diffs.size() == 1);
  CHECK(c.diffs[0].where == "$.a.b");
  CHECK(CompareJson(R"({"n":5})", R"({"n":5})", opts).equal);
}

TEST_CASE("compare: a field present on one side only is equal when ignored") {
  CHECK(CompareJson(R"({"id":1,"trace":"x"})", R"({"id":1})", Ignoring({"trace"})).equal);
}

// --- ParseIgnoreField ------------------------------------------------------

TEST_CASE("compare: ParseIgnoreField accepts keys, dots and [] wildcards") {
  struct Row {
    std::string text;
    std::vector<std::string> steps;
  };
  const std::vector<Row> rows = {
      {"id", {"id"}},
      {"meta.generated_at", {"meta", "generated_at"}},
      {"items[].price", {"items", "[]", "price"}},
      {"a.b[].c", {"a", "b", "[]", "c"}},
      {"[].updated", {"[]", "updated"}},
      {"matrix[][]", {"matrix", "[]", "[]"}},
      {"[]", {"[]"}},
      {"odd key.$x-y", {"odd key", "$x-y"}},
  };
  for (const Row& row : rows) {
    CAPTURE(row.text);
    Result<IgnoreField> f = ParseIgnoreField(row.text);
    REQUIRE_MESSAGE(f.ok(), f.status().message());
    CHECK(f->steps == row.steps);
    CHECK(f->text == row.text);
  }
}

TEST_CASE("compare: ParseIgnoreField refuses malformed paths with a clear message") {
  struct Row {
    std::string text;
    std::string message;
  };
  const std::vector<Row> rows = {
      {"", "--ignore-field '': empty path"},
      {"a..b", "--ignore-field 'a..b': empty key"},
      {".a", "--ignore-field '.a': empty key"},
      {"a.", "--ignore-field 'a.': empty key"},
      {"a.[]", "--ignore-field 'a.[]': empty key"},
      {"a[0]",
       "--ignore-field 'a[0]': '[' must be followed by ']' (only [], every element, is "
       "supported)"},
      {"a[",
       "--ignore-field 'a[': '[' must be followed by ']' (only [], every element, is "
       "supported)"},
      {"a]", "--ignore-field 'a]': unexpected ']' at offset 1 (expected '.' or '[]')"},
      {"a[]b", "--ignore-field 'a[]b': unexpected 'b' at offset 3 (expected '.' or '[]')"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.text);
    Result<IgnoreField> f = ParseIgnoreField(row.text);
    REQUIRE_FALSE(f.ok());
    CHECK(f.status().code() == Code::kUsage);
    CHECK(f.status().message() == row.message);
  }
}

// --- status and headers ----------------------------------------------------

TEST_CASE("compare: a status difference is a diff with both numbers") {
  Comparison c =
      CompareResponses(Response("text/plain", "ok", 200), Response("text/plain", "ok", 201), {});
  CHECK_FALSE(c.equal);
  REQUIRE(c.diffs.size() == 1);
  CHECK(c.diffs[0].where == "status");
  CHECK(c.diffs[0].primary == Json(200));
  CHECK(c.diffs[0].mirror == Json(201));
}

TEST_CASE("compare: only named headers are compared, names case-insensitive") {
  CapturedResponse p = Response("text/plain", "ok");
  CapturedResponse m = Response("text/plain", "ok");
  p.headers = {{"Cache-Control", " no-store "}, {"Date", "Mon"}, {"X-Tag", "a"}};
  m.headers = {{"cache-control", "max-age=60"}, {"Date", "Tue"}, {"x-tag", "a"}};
  CompareOptions opts;

  SUBCASE("a differing header that is not named counts as equal") {
    opts.headers = {"X-TAG"};
    CHECK(CompareResponses(p, m, opts).equal);
  }
  SUBCASE("a named header that differs is a diff under the name as written") {
    opts.headers = {"CACHE-control"};
    Comparison c = CompareResponses(p, m, opts);
    REQUIRE(c.diffs.size() == 1);
    CHECK(c.diffs[0].where == "header CACHE-control");
    CHECK(c.diffs[0].primary == Json("no-store"));
    CHECK(c.diffs[0].mirror == Json("max-age=60"));
  }
  SUBCASE("a named header missing on one side is a diff marked missing") {
    opts.headers = {"ETag"};
    m.headers.push_back({"etag", "\"v1\""});
    Comparison c = CompareResponses(p, m, opts);
    REQUIRE(c.diffs.size() == 1);
    CHECK(c.diffs[0].primary_missing);
    CHECK(c.diffs[0].mirror == Json("\"v1\""));
  }
  SUBCASE("repeated headers are trimmed and joined with ', '") {
    opts.headers = {"vary"};
    p.headers.push_back({"Vary", "Accept"});
    p.headers.push_back({"Vary", "\tCookie "});
    m.headers.push_back({"VARY", "Accept, Cookie"});
    CHECK(CompareResponses(p, m, opts).equal);
  }
  SUBCASE("a named header absent on both sides is equal") {
    opts.headers = {"X-Absent"};
    CHECK(CompareResponses(p, m, opts).equal);
  }
}

// --- text, binary and hash bodies ------------------------------------------

TEST_CASE("compare: text bodies report the first differing line") {
  struct Row {
    std::string primary, mirror;
    std::string where;
    std::string primary_line, mirror_line;  // "<missing>" for a missing line
  };
  const std::vector<Row> rows = {
      {"one\ntwo\nthree", "one\n2\nthree", "body line 2", "two", "2"},
      {"one\ntwo", "one\ntwo\nthree", "body line 3", "<missing>", "three"},
      {"a\nb\n", "a\nb", "body line 3", "", "<missing>"},
      {"x", "y", "body line 1", "x", "y"},
      {"", "z", "body line 1", "", "z"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.primary);
    CAPTURE(row.mirror);
    Comparison c = CompareResponses(Response("text/plain", row.primary),
                                    Response("text/plain", row.mirror), {});
    CHECK(c.kind == "text");
    CHECK_FALSE(c.equal);
    REQUIRE(c.diffs.size() == 1);
    const FieldDiff& d = c.diffs[0];
    CHECK(d.where == row.where);
    CHECK((d.primary_missing ? "<missing>" : d.primary.get<std::string>()) == row.primary_line);
    CHECK((d.mirror_missing ? "<missing>" : d.mirror.get<std::string>()) == row.mirror_line);
  }
}

TEST_CASE("compare: a long differing line is cut to 200 bytes") {
  std::string long_line(500, 'a');
  Comparison c = CompareResponses(Response("text/plain", long_line + "b"),
                                  Response("text/plain", long_line + "c"), {});
  REQUIRE(c.diffs.size() == 1);
  CHECK(c.diffs[0].primary == Json(std::string(kMaxDiffLineBytes, 'a')));
}

TEST_CASE("compare: text diff values are valid UTF-8 even when the body is not") {
  // Latin-1 bytes under text/plain: the stored diff must still serialize.
  Comparison c =
      CompareResponses(Response("text/plain", "caf\xE9"), Response("text/plain", "cafe"), {});
  REQUIRE(c.diffs.size() == 1);
  CHECK(c.diffs[0].primary == Json("caf\xEF\xBF\xBD"));
  CHECK_NOTHROW(ToJson(c).dump());
}

TEST_CASE("compare: identical text bodies are equal; two empty bodies are equal text") {
  CHECK(CompareResponses(Response("text/html", "<p>hi</p>"), Response("text/html", "<p>hi</p>"), {})
            .equal);
  for (const std::string type : {"", "application/json", "image/png"}) {
    CAPTURE(type);
    Comparison c = CompareResponses(Response(type, ""), Response(type, ""), {});
    CHECK(c.equal);
    CHECK(c.kind == "text");
  }
}

TEST_CASE("compare: binary bodies are compared by bytes and reported by size and hash") {
  std::string png("\x89PNG\r\n\x1a\n\0\0\0\x0d", 12);
  std::string other = png;
  other.back() = '\x0e';
  CHECK(CompareResponses(Response("image/png", png), Response("image/png", png), {}).equal);

  Comparison c = CompareResponses(Response("image/png", png), Response("image/png", other), {});
  CHECK(c.kind == "binary");
  CHECK_FALSE(c.equal);
  REQUIRE(c.diffs.size() == 1);
  CHECK(c.diffs[0].where == "body");
  CHECK(c.diffs[0].primary["bytes"] == Json(12));
  CHECK(c.diffs[0].primary["hash"].get<std::string>().size() == 16);
  CHECK(c.diffs[0].primary["hash"] != c.diffs[0].mirror["hash"]);
}

TEST_CASE("compare: a truncated side is compared by whole-body size and hash") {
  std::string whole(1000, 'x');
  BodyHasher h;
  h.Update(whole);
  CapturedResponse p = Response("application/json", whole.substr(0, 100));
  p.truncated = true;
  p.body_bytes = whole.size();
  p.body_hash = h.value();

  SUBCASE("the same whole body is equal") {
    // The mirror was captured in full: its hash comes from its body.
    CapturedResponse m = Response("application/json", whole);
    m.body_hash = 0;  // not trusted when not truncated
    Comparison c = CompareResponses(p, m, {});
    CHECK(c.kind == "hash");
    CHECK(c.equal);
  }
  SUBCASE("a different whole body with the same captured prefix differs") {
    CapturedResponse m = p;
    m.body_hash ^= 1;
    Comparison c = CompareResponses(p, m, {});
    CHECK(c.kind == "hash");
    REQUIRE(c.diffs.size() == 1);
    CHECK(c.diffs[0].where == "body");
    CHECK(c.diffs[0].primary["bytes"] == Json(1000));
    CHECK(c.diffs[0].primary["hash"] != c.diffs[0].mirror["hash"]);
  }
  SUBCASE("a different size differs") {
    CapturedResponse m = p;
    m.body_bytes = 999;
    CHECK_FALSE(CompareResponses(p, m, {}).equal);
  }
}

// --- limits, fallbacks and classification ----------------------------------

TEST_CASE("compare: at most 20 diffs are listed, the rest counted in more") {
  Json primary = Json::array(), mirror = Json::array();
  for (int i = 0; i < 30; ++i) {
    primary.push_back(i);
    mirror.push_back(i + 100);
  }
  for (int i = 0; i < 5; ++i) mirror.push_back(i);  // 5 extra elements
  CompareOptions opts;
  opts.headers = {"X-A"};
  CapturedResponse p = JsonResponse(primary.dump()), m = JsonResponse(mirror.dump());
  m.status = 500;
  m.headers = {{"X-A", "1"}};
  Comparison c = CompareResponses(p, m, opts);
  CHECK_FALSE(c.equal);
  REQUIRE(c.diffs.size() == kMaxDiffs);
  CHECK(c.more == 2 + 30 + 5 - kMaxDiffs);
  CHECK(c.diffs[0].where == "status");
  CHECK(c.diffs[1].where == "header X-A");
  CHECK(c.diffs[2].where == "$[0]");
  CHECK(c.diffs[19].where == "$[17]");
}

TEST_CASE("compare: JSON that does not parse on one side falls back to text") {
  Comparison c = CompareResponses(JsonResponse("{\"a\":1}"),
                                  Response("text/html", "<h1>502 Bad Gateway</h1>"), {});
  CHECK(c.kind == "text");
  REQUIRE(c.diffs.size() == 1);
  CHECK(c.diffs[0].where == "body line 1");
  CHECK(c.diffs[0].primary == Json("{\"a\":1}"));

  // Reordered keys only count as equal when compared as JSON.
  Comparison broken = CompareJson(R"({"a":1,"b":2})", R"({"b":2,"a":1)");
  CHECK(broken.kind == "text");
  CHECK_FALSE(broken.equal);
}

TEST_CASE("compare: which bodies are compared as JSON") {
  struct Row {
    std::string primary_type, mirror_type, primary, mirror;
    std::string kind;
  };
  const std::vector<Row> rows = {
      // A JSON type on either side, any case, parameters ignored, +json suffix.
      {"Application/JSON; charset=utf-8", "", R"({"a":1,"b":2})", R"({"b":2,"a":1})", "json"},
      {"text/plain", "application/problem+json", R"([1])", R"([1.0])", "json"},
      {"application/json", "application/json", "1", "1.0", "json"},
      // No JSON type: only when both bodies are objects or arrays.
      {"", "", R"({"a":1,"b":2})", R"({"b":2,"a":1})", "json"},
      {"text/plain", "text/plain", "[1]", " [1.0]", "json"},
      {"text/plain", "text/plain", "1", "1.0", "text"},
      {"", "", R"({"a":1})", "a", "text"},
  };
  for (const Row& row : rows) {
    CAPTURE(row.primary_type);
    CAPTURE(row.primary);
    CAPTURE(row.mirror);
    Comparison c = CompareResponses(Response(row.primary_type, row.primary),
                                    Response(row.mirror_type, row.mirror), {});
    CHECK(c.kind == row.kind);
    CHECK(c.equal == (row.kind == "json" || row.primary == row.mirror));
  }
}

TEST_CASE("compare: deeply nested JSON is compared as text, not recursed into") {
  std::string deep(100000, '[');
  deep += std::string(100000, ']');
  Comparison same = CompareJson(deep, deep);
  CHECK(same.kind == "text");
  CHECK(same.equal);
  std::string just_deep_enough = std::string(kMaxJsonDepth, '[') + std::string(kMaxJsonDepth, ']');
  CHECK(CompareJson(just_deep_enough, just_deep_enough).kind == "json");
}

// --- BodyHasher, ToJson and back ---------------------------------------------

TEST_CASE("compare: BodyHasher is FNV-1a 64 and streams") {
  BodyHasher empty;
  CHECK(empty.value() == 0xcbf29ce484222325ULL);
  BodyHasher a;
  a.Update("a");
  CHECK(a.value() == 0xaf63dc4c8601ec8cULL);
  BodyHasher whole, pieces;
  whole.Update("hello, world");
  pieces.Update("hello");
  pieces.Update(", ");
  pieces.Update("world");
  CHECK(whole.value() == pieces.value());
}

TEST_CASE("compare: ToJson shape, and a Comparison round-trips") {
  Comparison c = CompareJson(R"({"a":null,"b":1})", R"({"b":2,"c":[1]})");
  c.more = 3;  // as if more had been found
  Json j = ToJson(c);
  Json expected = Json::parse(R"({
    "equal": false,
    "kind": "json",
    "diffs": [
      {"where": "$.a", "primary": null},
      {"where": "$.b", "primary": 1, "mirror": 2},
      {"where": "$.c", "mirror": [1]}
    ],
    "more": 3
  })");
  CHECK(j == expected);

  Result<Comparison> back = ComparisonFromJson(Json::parse(j.dump()));
  REQUIRE_MESSAGE(back.ok(), back.status().message());
  CHECK(back->equal == c.equal);
  CHECK(back->kind == c.kind);
  CHECK(back->more == c.more);
  REQUIRE(back->diffs.size() == c.diffs.size());
  for (size_t i = 0; i < c.diffs.size(); ++i) {
    CAPTURE(i);
    CHECK(back->diffs[i].where == c.diffs[i].where);
    CHECK(back->diffs[i].primary == c.diffs[i].primary);
    CHECK(back->diffs[i].mirror == c.diffs[i].mirror);
    CHECK(back->diffs[i].primary_missing == c.diffs[i].primary_missing);
    CHECK(back->diffs[i].mirror_missing == c.diffs[i].mirror_missing);
  }
  CHECK(ToJson(*back) == j);
}

TEST_CASE("compare: ComparisonFromJson refuses malformed documents") {
  const std::vector<std::string> rows = {
      "[]",
      R"({"kind":"json","diffs":[],"more":0})",
      R"({"equal":"yes","kind":"json","diffs":[],"more":0})",
      R"({"equal":true,"kind":1,"diffs":[],"more":0})",
      R"({"equal":true,"kind":"json","diffs":{},"more":0})",
      R"({"equal":true,"kind":"json","diffs":[],"more":-1})",
      R"({"equal":false,"kind":"json","diffs":[{"primary":1}],"more":0})",
      R"({"equal":false,"kind":"json","diffs":[3],"more":0})",
  };
  for (const std::string& row : rows) {
    CAPTURE(row);
    Result<Comparison> c = ComparisonFromJson(Json::parse(row));
    CHECK_FALSE(c.ok());
    CHECK(c.status().code() == Code::kInvalid);
  }
}

}  // namespace
}  // namespace strangler
