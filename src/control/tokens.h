// Bearer tokens of the control API (PRODUCT.md "Operating a running
// router"). A token file holds one line per token, NAME:ROLE:SHA256 (the
// token's SHA-256, hex), made by `strangler token add`; the token itself is
// shown once and kept nowhere. A presented token is hashed and compared with
// every line's digest in constant time. Pure functions apart from the file
// reads and writes; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"

namespace strangler {

enum class TokenRole { kRead, kWrite };
std::string_view TokenRoleName(TokenRole role);

struct TokenEntry {
  std::string name;
  TokenRole role = TokenRole::kRead;
  std::string sha256;  // 64 lower-case hex digits
};

// Reads a token file. Blank lines and lines starting with '#' are skipped;
// any other line that is not NAME:ROLE:SHA256 fails the whole read, naming
// the line. A file that does not exist is an error (kNotFound).
Result<std::vector<TokenEntry>> ReadTokenFile(const std::string& path);
// Writes the whole file anew (a temp file renamed over it, mode 0600), so
// that a reader never sees half of it.
[[nodiscard]] Status WriteTokenFile(const std::string& path,
                                    const std::vector<TokenEntry>& entries);

// A new token: 32 random bytes (OpenSSL's RAND_bytes), base64url, after
// "strangler_".
Result<std::string> NewToken();
std::string Sha256Hex(std::string_view data);
// The entry `token` belongs to, or nullptr. Every entry is compared, each
// in constant time, so the time taken says nothing of which came close.
const TokenEntry* FindToken(const std::vector<TokenEntry>& entries, std::string_view token);

}  // namespace strangler
