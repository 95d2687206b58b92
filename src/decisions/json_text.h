// JSON text for the decision log: AppendJsonString writes a string the way
// every decision line does, and JsonScanner reads flat JSON objects back
// quickly (audit reads ~1M lines a second with it; a DOM parser is several
// times slower). Both are pure; a JsonScanner is used by one thread at a time.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace strangler {

// Appends s as a JSON string, quotes included. Control bytes and bytes
// >= 0x80 are written as \u00XX (paths and ids are bytes, not always UTF-8),
// so the output is valid JSON whatever the input.
void AppendJsonString(std::string_view s, std::string* out);

// A cursor over JSON text, for reading objects whose values are mostly
// scalars. `text` must outlive the scanner and the views it hands out.
class JsonScanner {
 public:
  explicit JsonScanner(std::string_view text) : s_(text) {}

  // The small steps are inline: a line calls them dozens of times.
  void SkipWs() {
    while (p_ < s_.size() &&
           (s_[p_] == ' ' || s_[p_] == '\t' || s_[p_] == '\r' || s_[p_] == '\n')) {
      ++p_;
    }
  }
  // Consumes c (after white space) when it is next.
  bool Eat(char c) {
    SkipWs();
    if (p_ < s_.size() && s_[p_] == c) {
      ++p_;
      return true;
    }
    return false;
  }
  // The next character after white space; '\0' at the end.
  char Peek() {
    SkipWs();
    return p_ < s_.size() ? s_[p_] : '\0';
  }

  // A JSON string at the cursor. *out views it in the text when it holds no
  // escape, else views its unescaped bytes in *scratch (\u00XX, the
  // writer's escape for a raw byte, becomes that byte; other code points
  // become UTF-8). out == nullptr skips the string (scratch is then unused).
  bool String(std::string_view* out, std::string* scratch);
  // The raw text of a number or literal at the cursor.
  std::string_view Scalar() {
    SkipWs();
    size_t start = p_;
    while (p_ < s_.size() && s_[p_] != ',' && s_[p_] != '}' && s_[p_] != ']' && s_[p_] != ' ') {
      ++p_;
    }
    return s_.substr(start, p_ - start);
  }
  // Skips any value (objects and arrays by depth, minding strings).
  bool SkipValue();
  bool AtEnd() {
    SkipWs();
    return p_ == s_.size();
  }

 private:
  bool Hex4(uint32_t* v);
  static void AppendCodePoint(uint32_t cp, std::string* out);

  std::string_view s_;
  size_t p_ = 0;
};

}  // namespace strangler
