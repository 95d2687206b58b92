#include "http/request_target.h"

#include <cstring>

#include "base/text.h"

namespace strangler {

const char* BadTarget(std::string_view target) {
  for (char c : target) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '#') return "a request target cannot hold '#'";
    if (u <= 0x20 || u == 0x7f) return "a request target cannot hold a space or a control byte";
  }
  return nullptr;
}

bool ValidHost(std::string_view h) {
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  auto alnum = [&](char c) { return digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); };
  size_t i = 0;
  if (!h.empty() && h[0] == '[') {  // IP-literal
    size_t close = h.find(']');
    if (close == std::string_view::npos || close == 1) return false;
    for (i = 1; i < close; ++i) {
      char c = h[i];
      bool hex = digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
      if (!hex && c != ':' && c != '.') return false;
    }
    i = close + 1;
  } else {  // reg-name or IPv4address
    for (; i < h.size() && h[i] != ':'; ++i) {
      char c = h[i];
      if (!alnum(c) && std::strchr("-._~%!$&'()*+,;=", c) == nullptr) return false;
    }
    if (i == 0) return false;
  }
  if (i == h.size()) return true;
  if (h[i] != ':') return false;
  for (++i; i < h.size(); ++i) {
    if (!digit(h[i])) return false;
  }
  return true;
}

bool HasEncodedSlash(std::string_view path) {
  for (size_t i = 0; i + 2 < path.size(); ++i) {
    if (path[i] != '%') continue;
    char a = path[i + 1], b = static_cast<char>(path[i + 2] | 0x20);
    if ((a == '2' && b == 'f') || (a == '5' && b == 'c')) return true;
  }
  return false;
}

bool HasEncodedControl(std::string_view path) {
  auto hex = [](char c) {
    c = static_cast<char>(c | 0x20);
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
  };
  for (size_t i = path.find('%'); i != std::string_view::npos && i + 2 < path.size();
       i = path.find('%', i + 1)) {
    int hi = hex(path[i + 1]), lo = hex(path[i + 2]);
    if (hi < 0 || lo < 0) continue;
    int byte = hi * 16 + lo;
    if (byte < 0x20 || byte == 0x7f) return true;
  }
  return false;
}

TargetParts SplitTarget(std::string_view target, std::string* scratch) {
  TargetParts out;
  out.path_and_query = target;
  if (target.empty() || target[0] == '/' || target == "*") return out;
  size_t scheme = target.find("://");
  std::string_view name = scheme == std::string_view::npos ? target : target.substr(0, scheme);
  if (!IEquals(name, "http") && !IEquals(name, "https")) {
    out.error = "a target is /path or http://host/path";
    return out;
  }
  size_t end = target.find_first_of("/?", scheme + 3);
  std::string_view authority = target.substr(scheme + 3, end - (scheme + 3));
  if (!ValidHost(authority)) {
    out.error = "the target's host is not host[:port]";
    return out;
  }
  out.absolute = true;
  out.authority = authority;
  if (end == std::string_view::npos) {
    out.path_and_query = "/";
  } else if (target[end] == '?') {  // "http://x?q": the path is "/", all after it the query
    scratch->assign("/");
    scratch->append(target.substr(end));
    out.path_and_query = *scratch;
  } else {
    out.path_and_query = target.substr(end);
  }
  return out;
}

}  // namespace strangler
