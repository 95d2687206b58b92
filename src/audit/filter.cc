#include "audit/filter.h"

namespace strangler {

std::string_view RouteGroup(const DecisionRecord& r) {
  if (r.reason == kRefusedReason) return kRefusedGroup;
  return r.route.empty() ? std::string_view(kDefaultGroup) : r.route;
}

std::string_view BackendGroup(const DecisionRecord& r) {
  return r.backend.empty() ? std::string_view(kRouterGroup) : r.backend;
}

bool PathHasPrefix(std::string_view path, std::string_view prefix) {
  if (prefix.empty() || prefix == "/") return true;
  if (path.substr(0, prefix.size()) != prefix) return false;
  return path.size() == prefix.size() || prefix.back() == '/' || path[prefix.size()] == '/';
}

Status ParseStatusFilter(std::string_view text, AuditFilter* f) {
  auto bad = [&] {
    return Status::Usage("bad --status '" + std::string(text) +
                         "': give a code (404) or a class (1xx, 2xx, 3xx, 4xx, 5xx)");
  };
  if (text.size() != 3) return bad();
  if ((text[1] == 'x' || text[1] == 'X') && (text[2] == 'x' || text[2] == 'X')) {
    if (text[0] < '1' || text[0] > '5') return bad();
    f->status_lo = (text[0] - '0') * 100;
    f->status_hi = f->status_lo + 99;
    return Status::Ok();
  }
  int code = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return bad();
    code = code * 10 + (c - '0');
  }
  if (code < 100 || code > 599) return bad();
  f->status_lo = f->status_hi = code;
  return Status::Ok();
}

bool AuditFilter::Matches(const DecisionRecord& r) const {
  if (since_ms != std::numeric_limits<int64_t>::min() ||
      until_ms != std::numeric_limits<int64_t>::max()) {
    if (r.ts_ms < 0 || r.ts_ms < since_ms || r.ts_ms >= until_ms) return false;
  }
  if (status_lo != 0 && (r.status < status_lo || r.status > status_hi)) return false;
  // `--route ''` and `--backend ''` name no group.
  if (route && (route->empty() || RouteGroup(r) != *route)) return false;
  if (backend && (backend->empty() || BackendGroup(r) != *backend)) return false;
  // A request id may be given by a prefix (README's examples use 8 of its
  // 32 characters).
  if (request_id && r.request_id.compare(0, request_id->size(), *request_id) != 0) return false;
  if (path_prefix && !PathHasPrefix(r.path, *path_prefix)) return false;
  return true;
}

}  // namespace strangler
