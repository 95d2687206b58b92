#include "http/header_fields.h"

#include <cstdio>

namespace strangler {

bool ListsToken(std::string_view value, std::string_view token) {
  bool found = false;
  ForEachToken(value, [&](std::string_view tok) { found = found || IEquals(tok, token); });
  return found;
}

bool IsHopByHop(std::string_view name) {
  switch (name.size()) {
    case 2: return IEquals(name, "te");
    case 7: return IEquals(name, "trailer") || IEquals(name, "upgrade");
    case 10: return IEquals(name, "connection") || IEquals(name, "keep-alive");
    case 16: return IEquals(name, "proxy-connection");
    case 17: return IEquals(name, "transfer-encoding");
    default: return false;
  }
}

bool ConnectionTokens::Names(std::string_view header) const {
  for (size_t i = 0; i < n_; ++i) {
    if (IEquals(tokens_[i], header)) return true;
  }
  return false;
}

const char* ConnectionTokens::NamesFraming() const {
  for (size_t i = 0; i < n_; ++i) {
    if (IEquals(tokens_[i], "content-length")) return "Content-Length";
    if (IEquals(tokens_[i], "transfer-encoding")) return "Transfer-Encoding";
    if (IEquals(tokens_[i], "host")) return "Host";
  }
  return nullptr;
}

void AppendHeader(std::string* out, std::string_view name, std::string_view value) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

void AppendChunk(std::string* out, const char* data, size_t len) {
  char hex[20];
  int n = std::snprintf(hex, sizeof(hex), "%zx\r\n", len);
  out->append(hex, static_cast<size_t>(n));
  out->append(data, len);
  out->append("\r\n");
}

}  // namespace strangler
