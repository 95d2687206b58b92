#include "rules/rules.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>

#include "base/time.h"

namespace strangler {
namespace {

bool IsTokenChar(char c) {
  // RFC 9110 tchar
  if (std::isalnum(static_cast<unsigned char>(c))) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), IsTokenChar);
}

Status CheckRegex(std::string_view what, const std::string& source) {
  RE2::Options opts;
  opts.set_log_errors(false);
  RE2 re(source, opts);
  if (!re.ok()) {
    return Status::Usage("bad regex in " + std::string(what) + " '" + source + "': " + re.error());
  }
  return Status::Ok();
}

std::vector<std::string> SplitSegments(std::string_view path) {
  // "/a/b" -> {"a","b"}; "/" -> {""}
  std::vector<std::string> out;
  size_t start = 1;
  while (true) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      out.emplace_back(path.substr(start));
      break;
    }
    out.emplace_back(path.substr(start, slash - start));
    start = slash + 1;
  }
  return out;
}

}  // namespace

Result<PathPattern> ParsePathPattern(std::string_view text) {
  PathPattern p;
  if (text.empty()) return p;
  if (text[0] == '~') {
    p.kind = PathKind::kRegex;
    p.regex = std::string(text.substr(1));
    if (p.regex.empty()) return Status::Usage("empty regex in --path '~': write ~REGEX");
    STRANGLER_RETURN_IF_ERROR(CheckRegex("--path", p.regex));
    return p;
  }
  bool exact = text[0] == '=';
  std::string_view path = exact ? text.substr(1) : text;
  if (path.empty() || path[0] != '/') {
    return Status::Usage("--path '" + std::string(text) +
                         "' must start with '/' (prefix), '=/' (exact) or '~' (regex)");
  }
  for (char c : path) {
    if (static_cast<unsigned char>(c) <= 0x20 || c == 0x7f || c == '?' || c == '#') {
      return Status::Usage("--path '" + std::string(text) +
                           "' contains a space, control character, '?' or '#'");
    }
  }
  if (exact) {
    p.kind = PathKind::kExact;
    p.segments = SplitSegments(path);
    p.literal_chars = static_cast<int>(path.size());
    return p;
  }
  // Prefix or glob. A trailing slash is ignored: /api/ == /api.
  std::string_view trimmed = path;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.remove_suffix(1);
  p.kind = PathKind::kPrefix;
  if (trimmed != "/") p.segments = SplitSegments(trimmed);
  for (size_t i = 0; i < p.segments.size(); ++i) {
    const std::string& s = p.segments[i];
    if (s == "*" || s == "**") {
      p.kind = PathKind::kGlob;
      if (s == "**" && i + 1 != p.segments.size()) {
        return Status::Usage("--path '" + std::string(text) +
                             "': '**' may only be the last segment");
      }
    } else if (s.find('*') != std::string::npos) {
      return Status::Usage("--path '" + std::string(text) +
                           "': '*' must be a whole segment (/a/*/b); use ~REGEX for more");
    } else {
      p.literal_chars += static_cast<int>(s.size()) + 1;
    }
  }
  return p;
}

Result<MatchSpec> ParseMatchSpec(std::string_view text) {
  MatchSpec m;
  std::string t(text);
  if (!t.empty() && t[0] == '!') {
    m.op = SpecOp::kAbsent;
    m.name = t.substr(1);
  } else {
    size_t eq = t.find('=');
    size_t tilde = t.find('~');
    size_t at = std::min(eq, tilde);
    if (at == std::string::npos) {
      m.op = SpecOp::kPresent;
      m.name = t;
    } else {
      m.op = at == eq ? SpecOp::kEquals : SpecOp::kRegex;
      m.name = t.substr(0, at);
      m.value = t.substr(at + 1);
    }
  }
  if (!IsToken(m.name) || m.name.find_first_of("=~") != std::string::npos) {
    return Status::Usage("bad match spec '" + t +
                         "': write Name=value, Name~regex, Name or !Name (Name a token)");
  }
  if (m.op == SpecOp::kRegex) STRANGLER_RETURN_IF_ERROR(CheckRegex("spec '" + t + "'", m.value));
  return m;
}

Result<Sticky> ParseSticky(std::string_view text) {
  Sticky s;
  if (text.empty()) return s;
  if (text == "ip") {
    s.kind = StickyKind::kIp;
    return s;
  }
  size_t colon = text.find(':');
  std::string_view kind = text.substr(0, colon);
  if (colon != std::string_view::npos) s.name = std::string(text.substr(colon + 1));
  if (kind == "header")
    s.kind = StickyKind::kHeader;
  else if (kind == "cookie")
    s.kind = StickyKind::kCookie;
  else if (kind == "query")
    s.kind = StickyKind::kQuery;
  if (s.kind == StickyKind::kNone || !IsToken(s.name)) {
    return Status::Usage("bad --sticky '" + std::string(text) +
                         "': use header:NAME, cookie:NAME, query:NAME or ip");
  }
  return s;
}

Result<int> ParsePercent(std::string_view text) {
  auto bad = [&] {
    return Status::Usage("bad percent '" + std::string(text) +
                         "': use a number from 0 to 100 with at most two decimals, e.g. 30 or "
                         "12.5");
  };
  size_t i = 0;
  long whole = 0;
  int digits = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    whole = whole * 10 + (text[i] - '0');
    if (whole > 1000) return bad();
    ++i;
    ++digits;
  }
  if (digits == 0) return bad();
  int frac = 0;
  if (i < text.size() && text[i] == '.') {
    ++i;
    int fd = 0;
    while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
      if (++fd > 2) return bad();
      frac = frac * 10 + (text[i] - '0');
      ++i;
    }
    if (fd == 0) return bad();
    if (fd == 1) frac *= 10;
  }
  if (i != text.size()) return bad();
  long bp = whole * 100 + frac;
  if (bp > kFullPercentBp) return bad();
  return static_cast<int>(bp);
}

Result<int> PercentFromJson(const Json& j) {
  // A number as written (its shortest form), read and refused as the CLI
  // reads --percent, with the same message.
  if (j.is_number()) return ParsePercent(j.dump());
  if (j.is_string()) return ParsePercent(j.get<std::string>());
  return Status::Invalid("percent must be a number");
}

std::string FormatPercent(int bp) {
  std::string s = std::to_string(bp / 100);
  int frac = bp % 100;
  if (frac != 0) {
    s += '.';
    s += static_cast<char>('0' + frac / 10);
    if (frac % 10 != 0) s += static_cast<char>('0' + frac % 10);
  }
  return s;
}

Status ValidateName(std::string_view what, std::string_view name) {
  bool ok = !name.empty() && name.size() <= 64;
  for (size_t i = 0; ok && i < name.size(); ++i) {
    char c = name[i];
    bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    ok = alnum || (i > 0 && (c == '_' || c == '-'));
  }
  if (!ok) {
    return Status::Usage("bad " + std::string(what) + " name '" + std::string(name) +
                         "': use 1-64 of a-z 0-9 _ -, starting with a letter or digit");
  }
  return Status::Ok();
}

namespace {

// A base path goes in front of every forwarded target, so it must read the
// same to every server behind: plain segments of RFC 3986 path characters
// (%XX escapes of other bytes than '/', '.' and '\\'), no empty, '.' or '..'
// segment, none of ';' and '\\' that some servers give meanings of their own.
Status CheckBasePath(std::string_view path) {
  auto refuse = [](const std::string& why) { return Status::Usage("base path " + why); };
  size_t begin = 1;  // after the leading '/'
  while (begin <= path.size() && !path.empty()) {
    size_t end = path.find('/', begin);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(begin, end - begin);
    if (seg.empty()) return refuse("has an empty segment ('//')");
    if (seg == "." || seg == "..") return refuse("has a '" + std::string(seg) + "' segment");
    for (size_t i = 0; i < seg.size(); ++i) {
      const unsigned char c = static_cast<unsigned char>(seg[i]);
      if (c == '%') {
        auto hex = [&](size_t k) {
          return k < seg.size() && std::isxdigit(static_cast<unsigned char>(seg[k]));
        };
        if (!hex(i + 1) || !hex(i + 2)) return refuse("has a '%' not followed by two hex digits");
        const int v = std::stoi(std::string(seg.substr(i + 1, 2)), nullptr, 16);
        if (v == '/' || v == '.' || v == '\\' || v < 0x20 || v == 0x7f) {
          return refuse("has an escaped '/', '.', '\\' or control byte (" +
                        std::string(seg.substr(i, 3)) + ")");
        }
        i += 2;
        continue;
      }
      const bool ok =
          std::isalnum(c) ||
          std::string_view("-._~!$&'()*+,=:@").find(static_cast<char>(c)) != std::string_view::npos;
      if (!ok) {
        if (c < 0x20 || c >= 0x7f)
          return refuse("has a control or non-ASCII byte (escape it as %XX)");
        return refuse("has '" + std::string(1, static_cast<char>(c)) +
                      "' (letters, digits, -._~!$&'()*+,=:@ and %XX only)");
      }
    }
    begin = end + 1;
  }
  return Status::Ok();
}

}  // namespace

Result<Url> ParseUrl(std::string_view text) {
  auto bad = [&](const std::string& why) {
    return Status::Usage("bad backend URL '" + std::string(text) + "': " + why +
                         " (expected http[s]://host:port[/base-path])");
  };
  Url u;
  std::string_view rest;
  if (text.substr(0, 7) == "http://") {
    rest = text.substr(7);
  } else if (text.substr(0, 8) == "https://") {
    rest = text.substr(8);
    u.tls = true;
    u.port = 443;
  } else {
    return bad("must start with http:// or https://");
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  std::string_view port_text;
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unclosed '['");
    u.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after[0] != ':') return bad("junk after ']'");
      port_text = after.substr(1);
      if (port_text.empty()) return bad("empty port");
    }
  } else {
    size_t colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      if (port_text.empty()) return bad("empty port");
    }
  }
  if (u.host.empty()) return bad("missing host");
  for (char c : u.host) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == ':' ||
          c == '_')) {
      return bad("bad character in host");
    }
  }
  if (!port_text.empty()) {
    long port = 0;
    for (char c : port_text) {
      if (!std::isdigit(static_cast<unsigned char>(c))) return bad("port is not a number");
      port = port * 10 + (c - '0');
      if (port > 65535) return bad("port out of range");
    }
    if (port == 0) return bad("port out of range");
    u.port = static_cast<uint16_t>(port);
  }
  if (path.find_first_of("?# \t\r\n") != std::string_view::npos) {
    return bad("base path must not contain '?', '#' or spaces");
  }
  while (!path.empty() && path.back() == '/') path.remove_suffix(1);
  u.base_path = std::string(path);
  return u;
}

Status CheckNewBackendUrl(std::string_view text) {
  auto u = ParseUrl(text);
  if (!u.ok()) return u.status();
  if (Status st = CheckBasePath(u->base_path); !st.ok()) {
    return Status::Usage("bad backend URL '" + std::string(text) + "': " + st.message() +
                         " (expected http[s]://host:port[/base-path])");
  }
  return Status::Ok();
}

Result<IgnoreField> ParseIgnoreField(std::string_view text) {
  auto refuse = [&](const std::string& why) {
    return Status::Usage("--ignore-field '" + std::string(text) + "': " + why);
  };
  if (text.empty()) return refuse("empty path");
  IgnoreField field;
  field.text = std::string(text);
  size_t i = 0;
  // Each round reads one "key[]...", the key optional only at the very start.
  while (true) {
    if (!(i == 0 && text[0] == '[')) {
      size_t end = std::min(text.find_first_of(".[]", i), text.size());
      if (end == i) return refuse("empty key");
      field.steps.emplace_back(text.substr(i, end - i));
      i = end;
    }
    while (i < text.size() && text[i] == '[') {
      if (i + 1 >= text.size() || text[i + 1] != ']') {
        return refuse("'[' must be followed by ']' (only [], every element, is supported)");
      }
      field.steps.emplace_back(IgnoreField::kEveryElement);
      i += 2;
    }
    if (i == text.size()) return field;
    if (text[i] != '.') {
      return refuse("unexpected '" + std::string(1, text[i]) + "' at offset " + std::to_string(i) +
                    " (expected '.' or '[]')");
    }
    if (++i == text.size()) return refuse("empty key");
  }
}

Result<std::string> ParseMethod(std::string_view text) {
  if (!IsToken(text)) {
    return Status::Usage("bad method '" + std::string(text) + "': use tokens like GET,POST");
  }
  std::string m(text);
  for (char& c : m) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return m;
}

namespace {

constexpr int kMaxTimeoutMs = 3600 * 1000;

// How a field's value is written in messages: as given to its flag.
enum class Unit { kNumber, kDuration };

// The integer fields of a backend: JSON key, the flag that sets it, its
// default and range.
struct IntField {
  const char* key;
  const char* flag;
  int Backend::*member;
  int fallback;
  int min;
  int max;
  Unit unit;
};

// timeout_ms is always written (and has a column of its own in the store).
constexpr IntField kTimeoutField = {
    "timeout_ms",  "--timeout-ms", &Backend::timeout_ms, kDefaultTimeoutMs, 1,
    kMaxTimeoutMs, Unit::kNumber};
// The options: written only when they differ from their defaults.
constexpr IntField kOptionFields[] = {
    {"connect_timeout_ms", "--connect-timeout-ms", &Backend::connect_timeout_ms,
     kDefaultConnectTimeoutMs, 1, kMaxTimeoutMs, Unit::kNumber},
    {"max_conns", "--max-conns", &Backend::max_conns, 0, 0, 100000, Unit::kNumber},
    {"max_queue", "--max-queue", &Backend::max_queue, 0, 0, 1000000, Unit::kNumber},
    {"queue_timeout_ms", "--queue-timeout", &Backend::queue_timeout_ms, kDefaultQueueTimeoutMs, 1,
     kMaxTimeoutMs, Unit::kDuration},
    {"reuse_quiet_ms", "--reuse-quiet-ms", &Backend::reuse_quiet_ms, kDefaultReuseQuietMs, 0, 1000,
     Unit::kNumber},
    {"eject_after", "--eject-after", &Backend::eject_after, kDefaultEjectAfter, 0, 1000,
     Unit::kNumber},
    {"eject_for_ms", "--eject-for", &Backend::eject_for_ms, kDefaultEjectForMs, 100, kMaxEjectForMs,
     Unit::kDuration},
    {"health_every_ms", "--health-every", &Backend::health_every_ms, kDefaultHealthEveryMs, 100,
     kMaxTimeoutMs, Unit::kDuration},
};
// The string and flag options: written only when set.
constexpr const char* kHealthPathKey = "health_path";
constexpr const char* kCaFileKey = "ca_file";
constexpr const char* kTlsInsecureKey = "tls_insecure";
constexpr size_t kMaxCaFile = 4096;
constexpr size_t kMaxHealthPath = 1024;

std::vector<const IntField*> AllIntFields() {
  std::vector<const IntField*> all = {&kTimeoutField};
  for (const IntField& f : kOptionFields) all.push_back(&f);
  return all;
}

}  // namespace

Status ValidateBackend(const Backend& b) {
  STRANGLER_RETURN_IF_ERROR(ValidateName("backend", b.name));
  if (b.urls.empty()) {
    return Status::Usage("backend '" + b.name + "' needs at least one URL");
  }
  bool any_tls = false;
  for (const std::string& u : b.urls) {
    auto parsed = ParseUrl(u);
    if (!parsed.ok()) return parsed.status();
    any_tls = any_tls || parsed->tls;
  }
  if ((!b.ca_file.empty() || b.tls_insecure) && !any_tls) {
    return Status::Usage(std::string(b.tls_insecure ? "--tls-insecure" : "--ca") +
                         " is for https:// backends; backend '" + b.name + "' has no https:// URL");
  }
  if (!b.ca_file.empty() && b.tls_insecure) {
    return Status::Usage("backend '" + b.name +
                         "': --ca and --tls-insecure together (--tls-insecure checks no "
                         "certificate, so the CA file would be unused); give one");
  }
  const std::string& ca = b.ca_file;
  if (!ca.empty() && (ca.size() > kMaxCaFile || std::any_of(ca.begin(), ca.end(), [](char c) {
                        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                      }))) {
    return Status::Usage("bad --ca for backend '" + b.name +
                         "': a file path (no control byte, at most " + std::to_string(kMaxCaFile) +
                         " bytes)");
  }
  for (const IntField* f : AllIntFields()) {
    const int v = b.*f->member;
    if (v >= f->min && v <= f->max) continue;
    auto show = [f](int n) {
      return f->unit == Unit::kDuration ? FormatDurationMs(n) : std::to_string(n);
    };
    return Status::Usage("bad " + std::string(f->flag) + " " + show(v) + " for backend '" + b.name +
                         "': use " + show(f->min) + ".." + show(f->max));
  }
  const std::string& hp = b.health_path;
  bool printable = std::all_of(hp.begin(), hp.end(), [](char c) {
    return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f && c != '#';
  });
  if (!hp.empty() && (hp[0] != '/' || !printable || hp.size() > kMaxHealthPath)) {
    return Status::Usage("bad --health-path '" + hp + "' for backend '" + b.name +
                         "': give a path such as /healthz (a '/' first, no space, control byte "
                         "or '#', at most " +
                         std::to_string(kMaxHealthPath) + " bytes)");
  }
  return Status::Ok();
}

namespace {

Status ValidateMirror(const Route& r) {
  bool any = r.mirror_percent_bp != kFullPercentBp || r.mirror_writes ||
             !r.compare_headers.empty() || !r.ignore_fields.empty() ||
             r.keep_diffs != kDefaultKeepDiffs;
  if (r.mirror.empty()) {
    if (any) {
      return Status::Usage("route '" + r.name +
                           "': mirror options need --mirror BACKEND (the backend that gets "
                           "the copies)");
    }
    return Status::Ok();
  }
  STRANGLER_RETURN_IF_ERROR(ValidateName("backend", r.mirror));
  if (r.mirror == r.to) {
    return Status::Usage("route '" + r.name + "': --mirror '" + r.mirror +
                         "' is also --to; mirror to the other backend of the comparison");
  }
  if (r.mirror_percent_bp < 0 || r.mirror_percent_bp > kFullPercentBp) {
    return Status::Usage("mirror percent must be 0..100");
  }
  if (r.keep_diffs < 1 || r.keep_diffs > kMaxKeepDiffs) {
    return Status::Usage("--keep-diffs must be 1.." + std::to_string(kMaxKeepDiffs));
  }
  for (const std::string& h : r.compare_headers) {
    if (!IsToken(h)) return Status::Usage("bad --compare-header '" + h + "': not a header name");
  }
  for (const std::string& f : r.ignore_fields) {
    auto parsed = ParseIgnoreField(f);
    if (!parsed.ok()) return parsed.status();
  }
  return Status::Ok();
}

}  // namespace

Status ValidateRoute(const Route& r) {
  STRANGLER_RETURN_IF_ERROR(ValidateName("route", r.name));
  STRANGLER_RETURN_IF_ERROR(ValidateName("backend", r.to));
  if (!r.else_backend.empty()) STRANGLER_RETURN_IF_ERROR(ValidateName("backend", r.else_backend));
  auto path = ParsePathPattern(r.path);
  if (!path.ok()) return path.status();
  for (const std::string& m : r.methods) {
    auto pm = ParseMethod(m);
    if (!pm.ok()) return pm.status();
  }
  for (const auto* list : {&r.headers, &r.query, &r.cookies}) {
    for (const std::string& spec : *list) {
      auto ps = ParseMatchSpec(spec);
      if (!ps.ok()) return ps.status();
    }
  }
  if (r.percent_bp < 0 || r.percent_bp > kFullPercentBp) {
    return Status::Usage("percent must be 0..100");
  }
  auto sticky = ParseSticky(r.sticky);
  if (!sticky.ok()) return sticky.status();
  return ValidateMirror(r);
}

Status ValidateRuleSet(const RuleSet& rules) {
  std::set<std::string> names;
  int defaults = 0;
  for (const Backend& b : rules.backends) {
    STRANGLER_RETURN_IF_ERROR(ValidateBackend(b));
    if (!names.insert(b.name).second) return Status::Conflict("duplicate backend '" + b.name + "'");
    if (b.is_default) ++defaults;
  }
  if (!rules.backends.empty() && defaults != 1) {
    return Status::Invalid("exactly one backend must be the default (found " +
                           std::to_string(defaults) + ")");
  }
  std::set<std::string> route_names;
  for (const Route& r : rules.routes) {
    STRANGLER_RETURN_IF_ERROR(ValidateRoute(r));
    if (!route_names.insert(r.name).second) {
      return Status::Conflict("duplicate route '" + r.name + "'");
    }
    for (const std::string* ref : r.backend_refs()) {
      if (!names.count(*ref)) {
        return Status::NotFound("route '" + r.name + "' points at unknown backend '" + *ref + "'");
      }
    }
  }
  return Status::Ok();
}

// --- JSON -------------------------------------------------------------------

Json PercentJson(int bp) {
  if (bp % 100 == 0) return Json(bp / 100);
  return Json(bp / 100.0);
}

namespace {

Json NullIfEmpty(const std::string& s) { return s.empty() ? Json(nullptr) : Json(s); }

// Reads an optional string field; null and absent leave *out unchanged.
Status ReadString(const Json& j, const char* key, std::string* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return Status::Invalid(std::string("field '") + key + "' must be a string");
  *out = it->get<std::string>();
  return Status::Ok();
}

Status ReadStringList(const Json& j, const char* key, std::vector<std::string>* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Status::Invalid(std::string("field '") + key + "' must be an array");
  out->clear();
  for (const Json& v : *it) {
    if (!v.is_string()) {
      return Status::Invalid(std::string("field '") + key + "' must hold strings");
    }
    out->push_back(v.get<std::string>());
  }
  return Status::Ok();
}

Status ReadInt(const Json& j, const char* key, int* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_number_integer() && !it->is_number_unsigned()) {
    return Status::Invalid(std::string("field '") + key + "' must be an integer");
  }
  long long v = it->get<long long>();
  if (v < -1000000000LL || v > 1000000000LL) {
    return Status::Invalid(std::string("field '") + key + "' is out of range");
  }
  *out = static_cast<int>(v);
  return Status::Ok();
}

Status ReadBool(const Json& j, const char* key, bool* out) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean())
    return Status::Invalid(std::string("field '") + key + "' must be true or false");
  *out = it->get<bool>();
  return Status::Ok();
}

// Reads the backend options `j` holds; the others are left as they are.
Status ReadOptionFields(const Json& j, Backend* b) {
  for (const IntField& f : kOptionFields) {
    STRANGLER_RETURN_IF_ERROR(ReadInt(j, f.key, &(b->*f.member)));
  }
  STRANGLER_RETURN_IF_ERROR(ReadString(j, kCaFileKey, &b->ca_file));
  STRANGLER_RETURN_IF_ERROR(ReadBool(j, kTlsInsecureKey, &b->tls_insecure));
  return ReadString(j, kHealthPathKey, &b->health_path);
}

Status CheckKnownFields(const Json& j, const char* what, const std::vector<std::string>& known) {
  if (!j.is_object()) return Status::Invalid(std::string(what) + " must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      return Status::Invalid(std::string("unknown field '") + it.key() + "' in " + what);
    }
  }
  return Status::Ok();
}

}  // namespace

const std::vector<std::string>& BackendOptionFields() {
  static const std::vector<std::string> kFields = [] {
    std::vector<std::string> keys;
    for (const IntField& f : kOptionFields) keys.push_back(f.key);
    keys.push_back(kHealthPathKey);
    keys.push_back(kCaFileKey);
    keys.push_back(kTlsInsecureKey);
    return keys;
  }();
  return kFields;
}

const std::vector<std::string>& BackendFields() {
  static const std::vector<std::string> kFields = [] {
    std::vector<std::string> keys = {"name", "urls", "default", kTimeoutField.key};
    for (const std::string& k : BackendOptionFields()) keys.push_back(k);
    return keys;
  }();
  return kFields;
}

Json BackendOptionsJson(const Backend& b) {
  Json j = Json::object();
  for (const IntField& f : kOptionFields) {
    if (b.*f.member != f.fallback) j[f.key] = b.*f.member;
  }
  if (!b.health_path.empty()) j[kHealthPathKey] = b.health_path;
  if (!b.ca_file.empty()) j[kCaFileKey] = b.ca_file;
  if (b.tls_insecure) j[kTlsInsecureKey] = true;
  return j;
}

Status ReadBackendOptions(const Json& j, Backend* b) {
  STRANGLER_RETURN_IF_ERROR(CheckKnownFields(j, "backend options", BackendOptionFields()));
  return ReadOptionFields(j, b);
}

const std::vector<std::string>& RouteFields() {
  static const std::vector<std::string> kFields = {"name",
                                                   "to",
                                                   "else",
                                                   "path",
                                                   "methods",
                                                   "headers",
                                                   "query",
                                                   "cookies",
                                                   "percent",
                                                   "sticky",
                                                   "salt",
                                                   "priority",
                                                   "enabled",
                                                   "fallback",
                                                   "fallback_on_5xx",
                                                   "mirror",
                                                   "mirror_percent",
                                                   "mirror_writes",
                                                   "compare_headers",
                                                   "ignore_fields",
                                                   "keep_diffs"};
  return kFields;
}

Json ToJson(const Backend& b) {
  Json j = Json{{"name", b.name},
                {"urls", b.urls},
                {"default", b.is_default},
                {kTimeoutField.key, b.timeout_ms}};
  j.update(BackendOptionsJson(b));
  return j;
}

Json ToJson(const Route& r) {
  Json j = Json{{"name", r.name},
                {"to", r.to},
                {"else", NullIfEmpty(r.else_backend)},
                {"path", NullIfEmpty(r.path)},
                {"methods", r.methods},
                {"headers", r.headers},
                {"query", r.query},
                {"cookies", r.cookies},
                {"percent", PercentJson(r.percent_bp)},
                {"sticky", NullIfEmpty(r.sticky)},
                {"salt", NullIfEmpty(r.salt)},
                {"priority", r.priority},
                {"enabled", r.enabled}};
  // Options of "Migrating safely" appear only when set.
  if (r.fallback) j["fallback"] = true;
  if (r.fallback_on_5xx) j["fallback_on_5xx"] = true;
  if (!r.mirror.empty()) {
    j["mirror"] = r.mirror;
    j["mirror_percent"] = PercentJson(r.mirror_percent_bp);
    j["mirror_writes"] = r.mirror_writes;
    j["compare_headers"] = r.compare_headers;
    j["ignore_fields"] = r.ignore_fields;
    j["keep_diffs"] = r.keep_diffs;
  }
  return j;
}

Result<Backend> BackendFromJson(const Json& j) {
  STRANGLER_RETURN_IF_ERROR(CheckKnownFields(j, "backend", BackendFields()));
  Backend b;
  STRANGLER_RETURN_IF_ERROR(ReadString(j, "name", &b.name));
  STRANGLER_RETURN_IF_ERROR(ReadStringList(j, "urls", &b.urls));
  STRANGLER_RETURN_IF_ERROR(ReadBool(j, "default", &b.is_default));
  STRANGLER_RETURN_IF_ERROR(ReadInt(j, kTimeoutField.key, &b.timeout_ms));
  STRANGLER_RETURN_IF_ERROR(ReadOptionFields(j, &b));
  Status st = ValidateBackend(b);
  if (!st.ok()) return Status::Invalid(st.message());
  return b;
}

Result<Route> RouteFromJson(const Json& j) {
  STRANGLER_RETURN_IF_ERROR(CheckKnownFields(j, "route", RouteFields()));
  Route r;
  STRANGLER_RETURN_IF_ERROR(ReadString(j, "name", &r.name));
  STRANGLER_RETURN_IF_ERROR(ReadString(j, "to", &r.to));
  STRANGLER_RETURN_IF_ERROR(ReadString(j, "else", &r.else_backend));
  STRANGLER_RETURN_IF_ERROR(ReadString(j, "path", &r.path));
  STRANGLER_RETURN_IF_ERROR(ReadStringList(j, "methods", &r.methods));
  for (std::string& m : r.methods) {
    auto pm = ParseMethod(m);
    if (!pm.ok()) return Status::Invalid(pm.status().message());
    m = *pm;
  }
  STRANGLER_RETURN_IF_ERROR(ReadStringList(j, "headers", &r.headers));
  STRANGLER_RETURN_IF_ERROR(ReadStringList(j, "query", &r.query));
  STRANGLER_RETURN_IF_ERROR(ReadStringList(j, "cookies", &r.cookies));
  auto pit = j.find("percent");
  if (pit != j.end() && !pit->is_null()) {
    auto bp = PercentFromJson(*pit);
    if (!bp.ok()) return Status::Invalid(bp.status().message());
    r.percent_bp = *bp;
  }
  STRANGLER_RETURN_IF_ERROR(ReadString(j, "sticky", &r.sticky));
  STRANGLER_RETURN_IF_ERROR(ReadString(j, "salt", &r.salt));
  STRANGLER_RETURN_IF_ERROR(ReadInt(j, "priority", &r.priority));
  STRANGLER_RETURN_IF_ERROR(ReadBool(j, "enabled", &r.enabled));
  STRANGLER_RETURN_IF_ERROR(ReadBool(j, "fallback", &r.fallback));
  STRANGLER_RETURN_IF_ERROR(ReadBool(j, "fallback_on_5xx", &r.fallback_on_5xx));
  if (r.fallback_on_5xx) r.fallback = true;
  STRANGLER_RETURN_IF_ERROR(ReadString(j, "mirror", &r.mirror));
  auto mp = j.find("mirror_percent");
  if (mp != j.end() && !mp->is_null()) {
    auto bp = PercentFromJson(*mp);
    if (!bp.ok()) return Status::Invalid("mirror_percent: " + bp.status().message());
    r.mirror_percent_bp = *bp;
  }
  STRANGLER_RETURN_IF_ERROR(ReadBool(j, "mirror_writes", &r.mirror_writes));
  STRANGLER_RETURN_IF_ERROR(ReadStringList(j, "compare_headers", &r.compare_headers));
  STRANGLER_RETURN_IF_ERROR(ReadStringList(j, "ignore_fields", &r.ignore_fields));
  STRANGLER_RETURN_IF_ERROR(ReadInt(j, "keep_diffs", &r.keep_diffs));
  Status st = ValidateRoute(r);
  if (!st.ok()) return Status::Invalid(st.message());
  return r;
}

}  // namespace strangler
