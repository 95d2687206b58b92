// Tests of the decision-log line: the bytes FormatDecision writes (users and
// scripts parse them) and DecisionReader reading them back.
#include "decisions/decision_line.h"
#include "decisions/json_text.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

namespace strangler {
namespace {

TEST_SUITE_BEGIN("decisions");

// 2026-01-01T00:00:00Z
constexpr int64_t kT0 = 1767225600000;

DecisionRecord Full() {
  DecisionRecord r;
  r.ts_ms = kT0 + 1234;
  r.request_id = "9f1c\"2e";
  r.method = "GET";
  r.path = std::string_view("/caf\xc3\xa9/a\tb\\c\x01\x7f", 14);
  r.route = "orders";
  r.backend = "new";
  r.reason = "fallback";
  r.bucket = 4321;
  r.status = 502;
  r.upstream_ms = 0.0004;
  r.total_ms = 1234.5675;
  r.bytes_in = 18446744073709551615ull;
  r.bytes_out = 0;
  r.client = "::1";
  r.ruleset = 42;
  r.fallback = "backend 'orders' refused the connection";
  return r;
}

TEST_CASE("FormatDecision writes the line byte for byte as before") {
  // Both lines as the decision log wrote them before its schema moved to
  // decision_record.h (but for an empty backend, null since refusals are
  // logged).
  std::string full;
  FormatDecision(Full(), &full);
  CHECK(full ==
        R"({"ts":"2026-01-01T00:00:01.234Z","request_id":"9f1c\"2e","method":"GET",)"
        R"("path":"/caf\u00c3\u00a9/a\tb\\c\u0001\u007f","route":"orders","backend":"new",)"
        R"("reason":"fallback","bucket":4321,"status":502,"upstream_ms":0.000,)"
        R"("total_ms":1234.568,"bytes_in":18446744073709551615,"bytes_out":0,"client":"::1",)"
        R"("ruleset":42,"fallback":"backend 'orders' refused the connection"})");

  DecisionRecord d;
  d.ts_ms = 0;
  d.ruleset = -5;
  d.upstream_ms = -1;
  std::string empty = "x";  // appends
  FormatDecision(d, &empty);
  CHECK(empty ==
        R"(x{"ts":"1970-01-01T00:00:00.000Z","request_id":"","method":"","path":"",)"
        R"("route":null,"backend":null,"reason":"","bucket":null,"status":0,"upstream_ms":0.000,)"
        R"("total_ms":0.000,"bytes_in":0,"bytes_out":0,"client":"","ruleset":0})");
}

TEST_CASE("a line holds the schema's fields in order, fallback, queue_ms and instances only "
          "when set") {
  std::string line;
  DecisionRecord all = Full();
  all.queue_ms = 12.5;
  all.instances = "all_down";
  FormatDecision(all, &line);
  size_t at = 0;
  for (std::string_view name : kDecisionFieldNames) {
    INFO(name);
    size_t p = line.find("\"" + std::string(name) + "\":", at);
    REQUIRE(p != std::string::npos);
    at = p;
  }
  DecisionRecord no_fallback = Full();
  no_fallback.fallback = "";
  line.clear();
  FormatDecision(no_fallback, &line);
  CHECK(line.find("\"fallback\":") == std::string::npos);
  CHECK(line.find("\"queue_ms\":") == std::string::npos);  // Full() waited in no queue
  CHECK(line.find("\"instances\":") == std::string::npos);
  DecisionRecord no_wait = Full();
  no_wait.queue_ms = 0;  // refused at once: the queue was full
  line.clear();
  FormatDecision(no_wait, &line);
  CHECK(line.find(",\"queue_ms\":0.000}") != std::string::npos);
  DecisionReader reader;
  DecisionLine d;
  REQUIRE(reader.Read(line, &d));
  CHECK(d.record.queue_ms == 0);
  all.queue_ms = 5000.25;
  line.clear();
  FormatDecision(all, &line);
  REQUIRE(reader.Read(line, &d));
  CHECK(d.record.queue_ms == doctest::Approx(5000.25));
  CHECK(line.find(",\"instances\":\"all_down\"}") != std::string::npos);
  CHECK(d.record.instances == "all_down");
}

TEST_CASE("DecisionReader reads back every field FormatDecision writes") {
  std::string text;
  FormatDecision(Full(), &text);
  DecisionReader reader;
  DecisionLine d;
  REQUIRE(reader.Read(text, &d));
  const DecisionRecord want = Full();
  const DecisionRecord& r = d.record;
  CHECK(d.text == text);
  CHECK(d.ts_text == "2026-01-01T00:00:01.234Z");
  CHECK(r.ts_ms == want.ts_ms);
  CHECK(r.request_id == want.request_id);
  CHECK(r.method == want.method);
  CHECK(r.path == want.path);  // raw bytes back from \u00XX
  CHECK(r.route == want.route);
  CHECK(r.backend == want.backend);
  CHECK(r.reason == want.reason);
  CHECK(r.bucket == want.bucket);
  CHECK(r.status == want.status);
  CHECK(r.upstream_ms == 0);  // 0.0004 is written with three decimals
  CHECK(r.total_ms == doctest::Approx(1234.568));
  CHECK(r.bytes_in == want.bytes_in);
  CHECK(r.bytes_out == want.bytes_out);
  CHECK(r.client == want.client);
  CHECK(r.ruleset == want.ruleset);
  CHECK(r.fallback == want.fallback);

  // Null route and bucket, no fallback: the record's defaults.
  DecisionRecord plain;
  plain.ts_ms = kT0;
  plain.backend = "legacy";
  plain.status = 200;
  std::string text2;
  FormatDecision(plain, &text2);
  REQUIRE(reader.Read(text2, &d));
  CHECK(d.record.route.empty());
  CHECK(d.record.bucket == -1);
  CHECK(d.record.fallback.empty());
  CHECK(d.record.queue_ms < 0);
  CHECK(d.record.ts_ms == kT0);
}

TEST_CASE("DecisionReader: field order, spaces, other types and unknown fields") {
  DecisionReader reader;
  DecisionLine d;
  std::string line =
      R"({ "status" : 404 , "extra": {"a": [1, "}"]}, "backend":"b", "route":null,
         "total_ms": 1e1, "path": "\u00e9\ud83d\ude00", "bucket": "7", "bytes_in": -1,
         "ruleset": null, "client": 5 })";
  REQUIRE(reader.Read(line, &d));
  CHECK(d.record.status == 404);
  CHECK(d.record.total_ms == doctest::Approx(10));
  CHECK(d.record.path == "\xe9\xf0\x9f\x98\x80");
  CHECK(d.record.route.empty());
  CHECK(d.record.ts_ms == -1);
  CHECK(d.ts_text.empty());
  // Fields audit does not need are read when they are what the schema says,
  // and left at their defaults otherwise; they never make a line bad.
  CHECK(d.record.bucket == -1);
  CHECK(d.record.bytes_in == 0);
  CHECK(d.record.ruleset == 0);
  CHECK(d.record.client.empty());

  // A refusal: backend null is a decision line (the router's own answer).
  REQUIRE(reader.Read(R"({"backend":null,"reason":"refused","status":400})", &d));
  CHECK(d.record.backend.empty());
  CHECK(d.record.reason == "refused");

  for (const char* bad :
       {"", "not json", "{}", "[1]", R"({"status":200})", R"({"backend":"b","status":"200"})",
        R"({"backend":"b","status":200,"total_ms":"1"})",
        R"({"backend":"b","status":200)", R"({"backend":"b","status":200} trailing)",
        R"({"backend":"b" "status":200})", R"({"backend":"b","status":200,"bytes_in":})"}) {
    INFO(bad);
    CHECK_FALSE(reader.Read(bad, &d));
  }
}

TEST_CASE("DecisionReader: views stay valid until the next line, escaped or not") {
  std::vector<std::string> lines;
  for (const char* id : {"plain", "esc\\\"aped"}) {
    lines.push_back(std::string(R"({"backend":"b","status":200,"request_id":")") + id + "\"}");
  }
  DecisionReader reader;
  DecisionLine d;
  REQUIRE(reader.Read(lines[0], &d));
  CHECK(d.record.request_id == "plain");
  REQUIRE(reader.Read(lines[1], &d));
  CHECK(d.record.request_id == "esc\"aped");
}

// Every byte, alone and between plain runs: what AppendJsonString writes for
// it is the escape JSON needs (quote, backslash, the named controls, \u00XX
// for the other controls, DEL and bytes >= 0x80) or the byte itself, and the
// runs around it are kept whole.
TEST_CASE("AppendJsonString escapes each byte and keeps the plain runs around it") {
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    std::string want;
    switch (b) {
      case '"': want = "\\\""; break;
      case '\\': want = "\\\\"; break;
      case '\n': want = "\\n"; break;
      case '\r': want = "\\r"; break;
      case '\t': want = "\\t"; break;
      default:
        if (b < 0x20 || b >= 0x7f) {
          static const char kHex[] = "0123456789abcdef";
          want = std::string("\\u00") + kHex[b >> 4] + kHex[b & 15];
        } else {
          want = std::string(1, c);
        }
    }
    CAPTURE(b);
    std::string out;
    AppendJsonString(std::string_view(&c, 1), &out);
    CHECK(out == "\"" + want + "\"");
    out = "x";  // appends: what was there stays
    AppendJsonString("ab" + std::string(1, c) + c + "cd", &out);
    CHECK(out == "x\"ab" + want + want + "cd\"");
  }
  std::string out;
  AppendJsonString("", &out);
  CHECK(out == "\"\"");
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
