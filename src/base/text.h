// Text helpers with no other home: ASCII case for protocol tokens and names,
// display width for tables. Pure functions.
#pragma once

#include <cstddef>
#include <string_view>

namespace strangler {

// ASCII case-insensitive equality, for header names and tokens.
inline bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x + 32);
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y + 32);
    if (x != y) return false;
  }
  return true;
}

// `s` without leading and trailing spaces and tabs (optional whitespace in
// HTTP's grammar).
inline std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Width of `s` on a terminal, in code points: "→" and "é" in UTF-8 count as
// one column each (bytes that are not UTF-8 count as one each too).
inline size_t DisplayWidth(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace strangler
