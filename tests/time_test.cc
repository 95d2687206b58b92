// Tests of the shared clock and time formats (base/time.h).
#include "base/time.h"

#include <doctest/doctest.h>

#include <string>
#include <utility>

namespace strangler {
namespace {

TEST_SUITE_BEGIN("time");

// 2026-01-01T00:00:00Z
constexpr int64_t kT0 = 1767225600000;

TEST_CASE("AppendRfc3339Ms writes what ParseRfc3339Ms reads back") {
  const std::pair<int64_t, const char*> cases[] = {
      {0, "1970-01-01T00:00:00.000Z"},
      {kT0, "2026-01-01T00:00:00.000Z"},
      {kT0 + 1234, "2026-01-01T00:00:01.234Z"},
      {kT0 - 1, "2025-12-31T23:59:59.999Z"},
      {kT0 + 59 * 86400000LL + 7, "2026-03-01T00:00:00.007Z"},
  };
  for (const auto& [ms, text] : cases) {
    CAPTURE(ms);
    std::string out = "x";
    AppendRfc3339Ms(ms, &out);
    CHECK(out == std::string("x") + text);
    auto back = ParseRfc3339Ms(text);
    REQUIRE(back.ok());
    CHECK(*back == ms);
  }
}

TEST_CASE("time arguments: RFC 3339 and durations before now") {
  struct Case {
    const char* text;
    int64_t want;
  };
  const int64_t now = kT0 + 86400000;
  Case ok[] = {
      {"2026-01-01T00:00:00Z", kT0},
      {"2026-01-01T00:00:00.250Z", kT0 + 250},
      {"2026-01-01t01:00:00+01:00", kT0},
      {"2025-12-31T23:30:00-00:30", kT0},
      {"2026-01-01 00:00Z", kT0},
      {"2026-01-01", kT0},
      {"15m", now - 15 * 60000},
      {"2h", now - 2 * 3600000},
      {"1h30m", now - 90 * 60000},
      {"1d", kT0},
      {"500ms", now - 500},
  };
  for (const Case& c : ok) {
    INFO(c.text);
    auto t = ParseTimeArg(c.text, now);
    REQUIRE(t.ok());
    CHECK(*t == c.want);
  }
  for (const char* bad : {"", "15", "15x", "m", "2026-01-01T00:00:00", "2026-13-01",
                          "2026-01-01T25:00Z", "yesterday", "1.5h", "-5m"}) {
    INFO(bad);
    auto t = ParseTimeArg(bad, now);
    CHECK_FALSE(t.ok());
    CHECK(t.status().code() == Code::kUsage);
  }
}

TEST_CASE("FormatDurationMs writes what ParseDurationMs reads back") {
  const std::pair<int64_t, const char*> cases[] = {
      {1500, "1500ms"},   {1000, "1s"},      {30000, "30s"},
      {300000, "5m"},     {90000, "1m30s"},  {3600000, "1h"},
      {5400000, "1h30m"}, {86400000, "24h"}, {3661000, "1h1m1s"},
  };
  for (const auto& [ms, text] : cases) {
    CAPTURE(ms);
    CHECK(FormatDurationMs(ms) == text);
    auto back = ParseDurationMs(text);
    REQUIRE(back.ok());
    CHECK(*back == ms);
  }
}

TEST_CASE("NowUnixMs is wall-clock time in ms since the epoch") {
  CHECK(NowUnixMs() > kT0 - 365LL * 86400000);  // not seconds, not a monotonic clock
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
