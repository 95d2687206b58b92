// Header-field helpers shared by the request and the response paths of the
// data plane: hop-by-hop names, Connection tokens, and writing fields and
// chunks. Stateless (ConnectionTokens holds views into one message's
// buffer); thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "http/http_message.h"

namespace strangler {

// Calls fn(token) for each non-empty element of a comma-separated list,
// optional whitespace trimmed (RFC 9110 5.6.1).
template <typename Fn>
void ForEachToken(std::string_view value, Fn fn) {
  while (!value.empty()) {
    size_t comma = value.find(',');
    std::string_view tok = value.substr(0, comma);
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
    while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
    while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
    if (!tok.empty()) fn(tok);
  }
}

// True when a comma-separated header value lists `token` (any case).
bool ListsToken(std::string_view value, std::string_view token);

// RFC 9110 7.6.1 plus the legacy ones the contract names.
bool IsHopByHop(std::string_view name);

// Tokens of every Connection header of one message, which name more
// hop-by-hop headers. Views into the message's buffer.
class ConnectionTokens {
 public:
  void Reset() { n_ = 0; }
  void Add(std::string_view value) {
    ForEachToken(value, [this](std::string_view tok) {
      if (n_ < kMax) tokens_[n_++] = tok;
    });
  }
  bool Names(std::string_view header) const;
  // A token that would take away the message's framing or its Host if
  // honoured ("Content-Length", "Transfer-Encoding", "Host"), or null. The
  // router's framing is its own, so a request naming one is refused.
  const char* NamesFraming() const;

 private:
  static constexpr size_t kMax = 32;
  std::string_view tokens_[kMax];
  size_t n_ = 0;
};

void AppendHeader(std::string* out, std::string_view name, std::string_view value);
// One chunk of a chunked body: size line, data, CRLF. len must be > 0.
void AppendChunk(std::string* out, const char* data, size_t len);

}  // namespace strangler
