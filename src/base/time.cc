#include "base/time.h"

#include <chrono>
#include <cstdio>
#include <ctime>

namespace strangler {

namespace {

bool Digits(std::string_view s, size_t pos, size_t n, int* out) {
  if (pos + n > s.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (s[i] - '0');
  }
  *out = v;
  return true;
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void AppendRfc3339Ms(int64_t ts_ms, std::string* out) {
  // gmtime once per second per thread; the milliseconds by hand.
  thread_local int64_t cached_sec = -1;
  thread_local char prefix[40];  // "2026-11-28T04:13:55."
  int64_t sec = ts_ms / 1000;
  if (sec != cached_sec) {
    time_t secs = static_cast<time_t>(sec);
    tm t{};
    gmtime_r(&secs, &t);
    std::snprintf(prefix, sizeof(prefix), "%04d-%02d-%02dT%02d:%02d:%02d.",
                  (t.tm_year + 1900) % 10000, (t.tm_mon + 1) % 100, t.tm_mday % 100,
                  t.tm_hour % 100, t.tm_min % 100, t.tm_sec % 100);
    cached_sec = sec;
  }
  int ms = static_cast<int>(ts_ms % 1000);
  out->append(prefix, 20);
  out->push_back(static_cast<char>('0' + ms / 100));
  out->push_back(static_cast<char>('0' + ms / 10 % 10));
  out->push_back(static_cast<char>('0' + ms % 10));
  out->push_back('Z');
}

Result<int64_t> ParseRfc3339Ms(std::string_view t) {
  auto bad = [&] {
    return Status::Usage("bad time '" + std::string(t) +
                         "': give RFC 3339 (2026-11-28T04:13:55Z, 2026-11-28T06:13:55+02:00), a "
                         "date (2026-11-28) or a duration before now (15m, 2h, 1d)");
  };
  int y, mo, d;
  if (!Digits(t, 0, 4, &y) || t.size() < 10 || t[4] != '-' || !Digits(t, 5, 2, &mo) ||
      t[7] != '-' || !Digits(t, 8, 2, &d) || mo < 1 || mo > 12 || d < 1 || d > 31) {
    return bad();
  }
  int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  if (t.size() == 10) return days * 86400000;
  int h, mi, sec = 0;
  if (t.size() < 16 || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') || !Digits(t, 11, 2, &h) ||
      t[13] != ':' || !Digits(t, 14, 2, &mi) || h > 23 || mi > 59) {
    return bad();
  }
  size_t p = 16;
  int64_t frac_ms = 0;
  if (p < t.size() && t[p] == ':') {
    if (!Digits(t, p + 1, 2, &sec) || sec > 60) return bad();
    p += 3;
    if (p < t.size() && t[p] == '.') {
      ++p;
      size_t start = p;
      int64_t scale = 100;
      while (p < t.size() && t[p] >= '0' && t[p] <= '9') {
        frac_ms += (t[p] - '0') * scale;
        scale /= 10;
        ++p;
      }
      if (p == start) return bad();
    }
  }
  int64_t offset_min = 0;
  if (p < t.size() && (t[p] == 'Z' || t[p] == 'z')) {
    ++p;
  } else if (p < t.size() && (t[p] == '+' || t[p] == '-')) {
    int oh, om;
    if (!Digits(t, p + 1, 2, &oh) || p + 3 >= t.size() || t[p + 3] != ':' ||
        !Digits(t, p + 4, 2, &om)) {
      return bad();
    }
    offset_min = (oh * 60 + om) * (t[p] == '-' ? -1 : 1);
    p += 6;
  } else {
    return bad();  // RFC 3339 needs the offset
  }
  if (p != t.size()) return bad();
  return ((days * 24 + h) * 60 + mi - offset_min) * 60000 + sec * 1000 + frac_ms;
}

Result<int64_t> ParseDurationMs(std::string_view text) {
  auto bad = [&] {
    return Status::Usage("bad duration '" + std::string(text) +
                         "': give a number and a unit (ms, s, m, h, d), e.g. 15m, 2h, 1h30m");
  };
  if (text.empty()) return bad();
  int64_t total = 0;
  size_t p = 0;
  while (p < text.size()) {
    size_t start = p;
    int64_t n = 0;
    while (p < text.size() && text[p] >= '0' && text[p] <= '9') {
      n = n * 10 + (text[p] - '0');
      if (n > 1000000000LL) return bad();
      ++p;
    }
    if (p == start) return bad();
    size_t ustart = p;
    while (p < text.size() && text[p] >= 'a' && text[p] <= 'z') ++p;
    std::string_view unit = text.substr(ustart, p - ustart);
    int64_t mult = 0;
    if (unit == "ms")
      mult = 1;
    else if (unit == "s")
      mult = 1000;
    else if (unit == "m")
      mult = 60000;
    else if (unit == "h")
      mult = 3600000;
    else if (unit == "d")
      mult = 86400000;
    else
      return bad();
    total += n * mult;
  }
  return total;
}

std::string FormatDurationMs(int64_t ms) {
  if (ms <= 0 || ms % 1000 != 0) return std::to_string(ms) + "ms";
  int64_t s = ms / 1000;
  std::string out;
  if (s >= 3600) out += std::to_string(s / 3600) + "h";
  if (s % 3600 >= 60) out += std::to_string(s % 3600 / 60) + "m";
  if (s % 60 != 0) out += std::to_string(s % 60) + "s";
  return out;
}

Result<int64_t> ParseTimeArg(std::string_view text, int64_t now_ms) {
  // A duration never contains '-' or ':'; an RFC 3339 time always has '-'.
  if (text.find('-') == std::string_view::npos) {
    auto d = ParseDurationMs(text);
    if (!d.ok()) return d.status();
    return now_ms - *d;
  }
  return ParseRfc3339Ms(text);
}

}  // namespace strangler
