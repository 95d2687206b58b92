// Text helpers with no other home: ASCII-only, for protocol tokens and names.
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

}  // namespace strangler
