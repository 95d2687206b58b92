#include "control/tokens.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>

#include "rules/rules.h"

namespace strangler {
namespace {

bool ValidDigest(const std::string& hex) {
  if (hex.size() != 64) return false;
  for (char c : hex) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

std::string_view TokenRoleName(TokenRole role) {
  return role == TokenRole::kWrite ? "write" : "read";
}

Result<std::vector<TokenEntry>> ReadTokenFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    if (errno == ENOENT) return Status::NotFound("token file " + path + " does not exist");
    return Status::Io("cannot read token file " + path + ": " + std::strerror(errno));
  }
  std::vector<TokenEntry> entries;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    size_t a = line.find(':'), b = a == std::string::npos ? a : line.find(':', a + 1);
    TokenEntry e;
    std::string role;
    if (b != std::string::npos) {
      e.name = line.substr(0, a);
      role = line.substr(a + 1, b - a - 1);
      e.sha256 = line.substr(b + 1);
    }
    if (b == std::string::npos || !ValidateName("token", e.name).ok() ||
        (role != "read" && role != "write") || !ValidDigest(e.sha256)) {
      return Status::Invalid("token file " + path + " line " + std::to_string(n) +
                             ": not NAME:read|write:SHA256 (64 hex digits)");
    }
    e.role = role == "write" ? TokenRole::kWrite : TokenRole::kRead;
    entries.push_back(std::move(e));
  }
  return entries;
}

Status WriteTokenFile(const std::string& path, const std::vector<TokenEntry>& entries) {
  std::string text = "# strangler API tokens: NAME:ROLE:SHA256 (made by 'strangler token add')\n";
  for (const TokenEntry& e : entries) {
    text += e.name + ":" + std::string(TokenRoleName(e.role)) + ":" + e.sha256 + "\n";
  }
  const std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return Status::Io("cannot write token file " + path + ": " + std::strerror(errno));
  bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ok = fsync(fd) == 0 && ok;
  ok = close(fd) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    return Status::Io("cannot write token file " + path + ": " + why);
  }
  return Status::Ok();
}

Result<std::string> NewToken() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) return Status::Internal("no random bytes for a token");
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string token = "strangler_";
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : raw) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      token.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) token.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  return token;
}

std::string Sha256Hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex.push_back(kHex[digest[i] >> 4]);
    hex.push_back(kHex[digest[i] & 15]);
  }
  return hex;
}

const TokenEntry* FindToken(const std::vector<TokenEntry>& entries, std::string_view token) {
  const std::string digest = Sha256Hex(token);
  const TokenEntry* found = nullptr;
  for (const TokenEntry& e : entries) {
    // Digests are all 64 hex digits: equal lengths, compared in full.
    if (CRYPTO_memcmp(e.sha256.data(), digest.data(), digest.size()) == 0 && found == nullptr) {
      found = &e;
    }
  }
  return found;
}

}  // namespace strangler
