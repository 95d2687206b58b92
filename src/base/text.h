// Text helpers with no other home: ASCII case for protocol tokens and names,
// display width for tables. Pure functions.
#pragma once

#include <cstddef>
#include <cstdint>
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

// The length of the well-formed UTF-8 sequence at s[i] (1 to 4), or 0 when
// the bytes there are not one (overlong, a surrogate, past U+10FFFF, cut).
inline size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t len;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    len = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    len = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    len = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    const unsigned char cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Whether `s` is well-formed UTF-8.
inline bool ValidUtf8(std::string_view s) {
  for (size_t i = 0, len; i < s.size(); i += len) {
    if ((len = Utf8SequenceLength(s, i)) == 0) return false;
  }
  return true;
}

// Whether UTF-8 text `s` has a character a terminal would act on rather
// than show: C0 and C1 controls, DEL, and the bidirectional overrides and
// isolates (U+202A..U+202E, U+2066..U+2069) that reorder what follows.
inline bool HasControlCharacter(std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c == 0x7f) return true;
    if (c == 0xC2 && i + 1 < s.size()) {
      const unsigned char d = static_cast<unsigned char>(s[i + 1]);
      if (d >= 0x80 && d <= 0x9F) return true;  // U+0080..U+009F
    }
    if (c == 0xE2 && i + 2 < s.size()) {
      const unsigned char d = static_cast<unsigned char>(s[i + 1]);
      const unsigned char e = static_cast<unsigned char>(s[i + 2]);
      if (d == 0x80 && e >= 0xAA && e <= 0xAE) return true;  // U+202A..U+202E
      if (d == 0x81 && e >= 0xA6 && e <= 0xA9) return true;  // U+2066..U+2069
    }
  }
  return false;
}

// True when no bracket of JSON text `s` outside a string nests deeper than
// `max_depth`. Checked before parsing text from outside: the JSON library
// and our walks recurse once per level (merge_patch, dump, compare), so a
// deep enough document would overflow a thread's stack.
inline bool JsonNestingWithin(std::string_view s, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

// Width of `s` on a terminal, in code points: "→" and "é" in UTF-8 count as
// one column each (bytes that are not UTF-8 count as one each too).
inline size_t DisplayWidth(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace strangler
