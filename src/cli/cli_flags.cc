// Pure CLI helpers that turn command-line values into rule-model fields:
// option merging for add/set, method lists, explain targets, -H headers.
#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/text.h"
#include "base/time.h"
#include "cli/cli.h"
#include "proxy/tls_context.h"

namespace strangler {

namespace {

// The rule parsers' messages already say what was wrong and what to write;
// a bad value on the command line is a usage error (exit 2).
Status UsageFrom(const Status& s) { return Status::Usage(s.message()); }

}  // namespace

Status ApplyBackendFlags(const BackendFlags& f, Backend* b) {
  Backend next = *b;
  if (!f.urls.empty()) {
    for (const auto& u : f.urls) {
      auto url = ParseUrl(u);
      if (!url.ok()) {
        return UsageFrom(url.status());
      }
    }
    next.urls = f.urls;
  }
  if (f.make_default) next.is_default = true;
  if (f.timeout_ms) {
    if (*f.timeout_ms <= 0) {
      return Status::Usage("bad --timeout-ms " + std::to_string(*f.timeout_ms) +
                           "; give a positive number of milliseconds");
    }
    next.timeout_ms = *f.timeout_ms;
  }
  if (f.connect_timeout_ms) next.connect_timeout_ms = *f.connect_timeout_ms;
  if (f.max_conns) next.max_conns = *f.max_conns;
  if (f.max_queue) next.max_queue = *f.max_queue;
  if (f.reuse_quiet_ms) next.reuse_quiet_ms = *f.reuse_quiet_ms;
  if (f.eject_after) next.eject_after = *f.eject_after;
  // Durations past int's range are past the limit too; ValidateBackend
  // names the limit.
  auto duration = [](const std::optional<std::string>& text, const char* flag, int* out) {
    if (!text) return Status::Ok();
    auto ms = ParseDurationMs(*text);
    if (!ms.ok()) return Status::Usage(std::string("bad ") + flag + ": " + ms.status().message());
    *out = static_cast<int>(std::min<int64_t>(*ms, INT_MAX));
    return Status::Ok();
  };
  STRANGLER_RETURN_IF_ERROR(duration(f.queue_timeout, "--queue-timeout", &next.queue_timeout_ms));
  STRANGLER_RETURN_IF_ERROR(duration(f.eject_for, "--eject-for", &next.eject_for_ms));
  STRANGLER_RETURN_IF_ERROR(duration(f.health_every, "--health-every", &next.health_every_ms));
  if (f.health_path) next.health_path = *f.health_path;
  if (f.tls_insecure) next.tls_insecure = *f.tls_insecure;
  if (f.ca_file) {
    next.ca_file = *f.ca_file;
    if (!next.ca_file.empty()) {
      // serve reads it from its own directory: the path is kept whole.
      STRANGLER_RETURN_IF_ERROR(CheckCaFile(next.ca_file));
      if (char* abs = realpath(next.ca_file.c_str(), nullptr)) {
        next.ca_file = abs;
        free(abs);
      }
    }
  }
  Status v = ValidateBackend(next);
  if (!v.ok()) return UsageFrom(v);
  *b = std::move(next);
  return Status::Ok();
}

Result<std::vector<std::string>> ParseMethodList(std::string_view text) {
  std::vector<std::string> out;
  if (Trim(text).empty()) return out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view token = Trim(text.substr(start, comma - start));
    auto m = ParseMethod(token);
    if (!m.ok() || token.empty()) {
      return Status::Usage("bad --method '" + std::string(token) +
                           "': not an HTTP method token; give a comma-separated list, e.g. "
                           "GET,POST");
    }
    bool dup = false;
    for (const auto& e : out) dup = dup || e == m.value();
    if (!dup) out.push_back(m.value());
    start = comma + 1;
  }
  return out;
}

namespace {

Status ApplyMirrorFlags(const RouteFlags& f, Route* next) {
  if (f.mirror) {
    if (f.mirror->empty()) {  // no mirror: its options go with it
      Route cleared;
      next->mirror.clear();
      next->mirror_percent_bp = cleared.mirror_percent_bp;
      next->mirror_writes = cleared.mirror_writes;
      next->compare_headers.clear();
      next->ignore_fields.clear();
      next->keep_diffs = cleared.keep_diffs;
    } else {
      next->mirror = *f.mirror;
    }
  }
  if (f.mirror_percent) {
    auto p = ParsePercentArg(*f.mirror_percent);
    if (!p.ok()) return Status::Usage("bad --mirror-percent: " + p.status().message());
    next->mirror_percent_bp = p.value();
  }
  if (f.mirror_writes) next->mirror_writes = *f.mirror_writes;
  if (f.clear_compare_headers) next->compare_headers.clear();
  if (!f.compare_headers.empty()) next->compare_headers = f.compare_headers;
  if (f.clear_ignore_fields) next->ignore_fields.clear();
  if (!f.ignore_fields.empty()) next->ignore_fields = f.ignore_fields;
  if (f.keep_diffs) next->keep_diffs = *f.keep_diffs;
  return Status::Ok();
}

}  // namespace

Status ApplyRouteFlags(const RouteFlags& f, Route* r) {
  Route next = *r;
  if (f.to) next.to = *f.to;
  if (f.else_backend) next.else_backend = *f.else_backend;
  if (f.path) {
    if (!f.path->empty()) {
      auto p = ParsePathPattern(*f.path);
      if (!p.ok()) {
        return UsageFrom(p.status());
      }
    }
    next.path = *f.path;
  }
  if (f.methods) {
    auto m = ParseMethodList(*f.methods);
    if (!m.ok()) return m.status();
    next.methods = std::move(m).value();
  }
  struct ListFlag {
    const char* option;
    bool clear;
    const std::vector<std::string>* given;
    std::vector<std::string>* field;
  };
  const ListFlag lists[] = {{"--header", f.clear_headers, &f.headers, &next.headers},
                            {"--query", f.clear_query, &f.query, &next.query},
                            {"--cookie", f.clear_cookies, &f.cookies, &next.cookies}};
  for (const auto& l : lists) {
    if (l.clear) l.field->clear();
    if (l.given->empty()) continue;
    for (const auto& spec : *l.given) {
      auto s = ParseMatchSpec(spec);
      if (!s.ok()) {
        return UsageFrom(s.status());
      }
    }
    *l.field = *l.given;
  }
  if (f.percent) {
    auto p = ParsePercentArg(*f.percent);
    if (!p.ok()) {
      return UsageFrom(p.status());
    }
    next.percent_bp = p.value();
  }
  if (f.sticky) {
    if (!f.sticky->empty()) {
      auto s = ParseSticky(*f.sticky);
      if (!s.ok()) {
        return UsageFrom(s.status());
      }
    }
    next.sticky = *f.sticky;
  }
  if (f.salt) next.salt = *f.salt;
  if (f.priority) next.priority = *f.priority;
  if (f.enabled) next.enabled = *f.enabled;
  if (f.fallback) {
    next.fallback = *f.fallback;
    if (!*f.fallback) next.fallback_on_5xx = false;
  }
  if (f.fallback_on_5xx) {
    next.fallback_on_5xx = *f.fallback_on_5xx;
    if (*f.fallback_on_5xx) next.fallback = true;
  }
  STRANGLER_RETURN_IF_ERROR(ApplyMirrorFlags(f, &next));
  if (next.to.empty()) {
    return Status::Usage("route '" + next.name +
                         "' needs --to BACKEND; name the backend that "
                         "matched traffic goes to");
  }
  Status v = ValidateRoute(next);
  if (!v.ok()) return UsageFrom(v);
  *r = std::move(next);
  return Status::Ok();
}

}  // namespace strangler
