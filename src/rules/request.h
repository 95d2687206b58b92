// RequestView: what the decision sees of one request. A view: every
// string_view points into the connection's buffers, which must stay live and
// unchanged while the view is used.
#pragma once

#include <cstddef>
#include <string_view>

namespace strangler {

struct HeaderView {
  std::string_view name;
  std::string_view value;
};

struct RequestView {
  std::string_view method;     // as sent, e.g. "GET"
  std::string_view path;       // routing path: the target before '?', normalised
  std::string_view query;      // raw, without the '?'; "" when none
  const HeaderView* headers = nullptr;
  size_t header_count = 0;
  std::string_view client_ip;  // "127.0.0.1", "::1"
};

}  // namespace strangler
