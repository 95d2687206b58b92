// JsonScanner reads back what the decision log writes (and what other JSON
// writers may put in a line): every escape, \u code points as UTF-8, raw
// bytes from the writer's \u00XX, and malformed strings refused.
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "decisions/json_text.h"

namespace strangler {
namespace {

TEST_CASE("json_text: every escape a JSON string may hold is read back") {
  struct Case {
    std::string json, want;
  };
  const std::vector<Case> cases = {
      {R"("plain")", "plain"},
      {R"("a\"b\\c\/d")", "a\"b\\c/d"},
      {R"("\b\f\n\r\t")", "\b\f\n\r\t"},
      {R"("\u00e9\u00C9")", "\xe9\xc9"},  // the writer's escape for one raw byte
      {R"("\u0100")", "\xc4\x80"},        // two-byte UTF-8
      {R"("\u20AC")", "\xe2\x82\xac"},    // three bytes: the euro sign
      {R"("\uD83D\uDE00")", "\xf0\x9f\x98\x80"},  // a surrogate pair: four bytes
      {R"("x\u0041y")", "xAy"},
  };
  for (const Case& c : cases) {
    INFO(c.json);
    JsonScanner s(c.json);
    std::string_view got;
    std::string scratch;
    REQUIRE(s.String(&got, &scratch));
    CHECK(std::string(got) == c.want);
    CHECK(s.AtEnd());
    // Skipped without a place to put it, the cursor ends at the same place.
    JsonScanner skip(c.json);
    CHECK(skip.SkipValue());
    CHECK(skip.AtEnd());
  }
}

TEST_CASE("json_text: malformed strings are refused") {
  for (const std::string bad : {R"("unterminated)", R"("bad escape \x")", R"("\u12")",
                                R"("\u00G1")", R"("\u0g00")", R"("\uD83D\uZZZZ")", "\"ends in \\",
                                "\"escape then end \\u", R"(no quote)"}) {
    INFO(bad);
    JsonScanner s(bad);
    std::string_view got;
    std::string scratch;
    CHECK_FALSE(s.String(&got, &scratch));
    JsonScanner skip(bad);
    CHECK_FALSE(skip.String(nullptr, nullptr));
  }
}

TEST_CASE("json_text: every byte written by AppendJsonString reads back as itself") {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string json;
  AppendJsonString(all, &json);
  JsonScanner s(json);
  std::string_view got;
  std::string scratch;
  REQUIRE(s.String(&got, &scratch));
  CHECK(got == std::string_view(all));
}

TEST_CASE("json_text: SkipValue skips nested values, minding brackets in strings") {
  JsonScanner s(R"({"a":[1,{"b":"]}"}],"c":"x"} , 7)");
  CHECK(s.SkipValue());
  CHECK(s.Eat(','));
  CHECK(s.Scalar() == "7");
  CHECK(s.AtEnd());
  for (const std::string bad : {R"({"a":[1,2})", R"({"a":"unterminated})", R"([)", ""}) {
    INFO(bad);
    JsonScanner b(bad);
    CHECK_FALSE(b.SkipValue());
  }
}

}  // namespace
}  // namespace strangler
