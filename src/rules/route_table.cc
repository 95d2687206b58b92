#include "rules/route_table.h"

#include <re2/re2.h>

#include <algorithm>
#include <tuple>

namespace strangler {

std::string_view ReasonName(Reason r) {
  switch (r) {
    case Reason::kDefault: return "default";
    case Reason::kRoute: return "route";
    case Reason::kSplit: return "split";
    case Reason::kFallback: return "fallback";
    case Reason::kShadow: return "shadow";
    case Reason::kOverride: return "override";
  }
  return "default";
}

uint64_t Fnv1a64(std::string_view salt, std::string_view key) {
  constexpr uint64_t kPrime = 1099511628211ULL;
  uint64_t h = 14695981039346656037ULL;
  for (unsigned char c : salt) h = (h ^ c) * kPrime;
  h = (h ^ 0u) * kPrime;
  for (unsigned char c : key) h = (h ^ c) * kPrime;
  return h;
}

int Bucket(std::string_view salt, std::string_view key) {
  return static_cast<int>(Fnv1a64(salt, key) % kFullPercentBp);
}

namespace {

bool IsUnreserved(unsigned char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         c == '-' || c == '.' || c == '_' || c == '~';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

// Percent-decodes a query component ('+' is a space). Returns `s` itself when
// there is nothing to decode.
std::string_view DecodeComponent(std::string_view s, std::string* scratch) {
  if (s.find_first_of("%+") == std::string_view::npos) return s;
  scratch->clear();
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      scratch->push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() + 0 && HexValue(s[i + 1]) >= 0 &&
               HexValue(s[i + 2]) >= 0) {
      scratch->push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      scratch->push_back(s[i]);
    }
  }
  return *scratch;
}

}  // namespace

std::string_view NormalizePath(std::string_view raw, std::string* scratch, bool* ambiguous,
                               bool* dot_segments) {
  if (ambiguous) *ambiguous = false;
  if (dot_segments) *dot_segments = false;
  // Fast path: nothing that normalising could change.
  bool plain = !raw.empty() && raw[0] == '/';
  for (size_t i = 0; plain && i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '%' || c == '\\' || c == ';' ||
        (c == '/' && i + 1 < raw.size() && (raw[i + 1] == '/' || raw[i + 1] == '.'))) {
      plain = false;
    }
  }
  if (plain || raw == "*") return raw;

  // 1. Percent-decoding: unreserved characters, and %2F/%5C as '/'; other
  //    escapes stay escaped, with upper-case hex digits. A literal '\' is
  //    '/' too (some origins treat it so).
  std::string decoded;
  decoded.reserve(raw.size() + 1);
  bool encoded_backslash = false;
  for (size_t i = 0; i < raw.size(); ++i) {
    char c = raw[i];
    if (c == '%' && i + 2 < raw.size() && HexValue(raw[i + 1]) >= 0 && HexValue(raw[i + 2]) >= 0) {
      unsigned char d = static_cast<unsigned char>(HexValue(raw[i + 1]) * 16 + HexValue(raw[i + 2]));
      i += 2;
      if (IsUnreserved(d)) {
        decoded.push_back(static_cast<char>(d));
      } else if (d == '/' || d == '\\') {
        encoded_backslash = encoded_backslash || d == '\\';
        decoded.push_back('/');
      } else {
        static const char kHex[] = "0123456789ABCDEF";
        decoded.push_back('%');
        decoded.push_back(kHex[d >> 4]);
        decoded.push_back(kHex[d & 15]);
      }
      continue;
    }
    decoded.push_back(c == '\\' ? '/' : c);
  }
  // Not a path from the root (the proxy gives none such; explain refuses
  // them): nothing to route on, left as it is.
  if (decoded.empty() || decoded[0] != '/') return raw;

  // 2. Segments: path parameters (";..." up to the next '/') dropped, as
  //    Java servers drop them (so "/admin;x" and "/x/..;/admin" cannot skip
  //    a route); empty segments ("//") merged; dot segments resolved
  //    (RFC 3986 5.2.4), never above the root.
  std::string out;
  out.reserve(decoded.size());
  std::string_view in = decoded;
  // ';' or a backslash beside a dot segment: backends disagree on what such
  // a path names ("/admin/..;/x" is /x to Tomcat, a path under /admin to
  // most others), so no routing of it is safe.
  const bool odd = raw.find_first_of(";\\") != std::string_view::npos;
  bool dots = false;
  while (!in.empty()) {
    in.remove_prefix(1);  // the '/' that opens a segment
    size_t end = in.find('/');
    std::string_view seg = in.substr(0, end);
    in = end == std::string_view::npos ? std::string_view() : in.substr(end);
    seg = seg.substr(0, seg.find(';'));
    bool last = in.empty();
    dots = dots || seg == "." || seg == "..";
    if (seg.empty() || seg == ".") {
      if (last) out.push_back('/');
      continue;
    }
    if (seg == "..") {
      size_t cut = out.rfind('/');
      out.resize(cut == std::string::npos ? 0 : cut);
      if (last) out.push_back('/');
      continue;
    }
    out.push_back('/');
    out.append(seg);
  }
  if (out.empty()) out = "/";
  if (ambiguous) *ambiguous = dots && (odd || encoded_backslash);
  if (dot_segments) *dot_segments = dots;
  if (out == raw) return raw;
  *scratch = std::move(out);
  return *scratch;
}

// --- compiled form ----------------------------------------------------------

namespace {

struct CompiledSpec {
  MatchSpec spec;
  std::unique_ptr<RE2> re;
};

struct CompiledRoute {
  PathPattern path;
  std::unique_ptr<RE2> path_re;
  std::vector<std::string> methods;
  std::vector<CompiledSpec> headers, query, cookies;
  Sticky sticky;
  int to = -1;
  int else_backend = -1;
  int percent_bp = kFullPercentBp;
  std::string salt;
};

struct TrieNode {
  std::vector<std::pair<std::string, int>> children;  // sorted by segment
  int star = -1;
  std::vector<int> end_routes;   // the path must end at this node
  std::vector<int> rest_routes;  // the path may go on below this node
};

int SpecificityClass(PathKind k) {
  switch (k) {
    case PathKind::kExact: return 0;
    case PathKind::kPrefix:
    case PathKind::kGlob: return 1;
    case PathKind::kRegex: return 2;
    case PathKind::kNone: return 3;
  }
  return 3;
}

std::unique_ptr<RE2> MakeRegex(const std::string& source) {
  RE2::Options opts;
  opts.set_log_errors(false);
  return std::make_unique<RE2>(source, opts);
}

Result<CompiledSpec> CompileSpec(const std::string& text, bool lower_name) {
  auto parsed = ParseMatchSpec(text);
  if (!parsed.ok()) return parsed.status();
  CompiledSpec cs;
  cs.spec = std::move(parsed.value());
  if (lower_name) {
    for (char& c : cs.spec.name) c = AsciiLower(c);
  }
  if (cs.spec.op == SpecOp::kRegex) cs.re = MakeRegex(cs.spec.value);
  return cs;
}

}  // namespace

struct RouteTable::Compiled {
  std::vector<CompiledRoute> routes;  // parallel to rules_.routes
  std::vector<TrieNode> nodes;        // nodes[0] is the root
  std::vector<int> unindexed;         // regex and no-path routes, ascending
  int Child(int node, std::string_view seg) const {
    const auto& ch = nodes[node].children;
    auto it = std::lower_bound(ch.begin(), ch.end(), seg,
                               [](const auto& p, std::string_view s) { return p.first < s; });
    return (it != ch.end() && it->first == seg) ? it->second : -1;
  }
};

namespace {

// Up to this many path candidates are gathered on the stack; a request that
// gathers more falls back to checking every route (Explain's walk).
constexpr int kMaxCandidates = 128;

struct Candidates {
  int n = 0;
  bool overflow = false;
  int idx[kMaxCandidates];
  void Add(const std::vector<int>& v) {
    for (int i : v) {
      if (n == kMaxCandidates) {
        overflow = true;
        return;
      }
      idx[n++] = i;
    }
  }
};

void Walk(const RouteTable::Compiled& c, int node, std::string_view path, size_t pos,
          Candidates* out) {
  const TrieNode& t = c.nodes[node];
  out->Add(t.rest_routes);
  if (pos > path.size()) {
    out->Add(t.end_routes);
    return;
  }
  size_t end = path.find('/', pos);
  if (end == std::string_view::npos) end = path.size();
  std::string_view seg = path.substr(pos, end - pos);
  size_t next = end == path.size() ? path.size() + 1 : end + 1;
  int child = c.Child(node, seg);
  if (child >= 0) Walk(c, child, path, next, out);
  if (t.star >= 0) Walk(c, t.star, path, next, out);
}

// Per-route path check, independent of the trie (used by Explain).
bool PathMatches(const CompiledRoute& r, std::string_view path) {
  switch (r.path.kind) {
    case PathKind::kNone: return true;
    case PathKind::kRegex: return RE2::PartialMatch(path, *r.path_re);
    default: break;
  }
  if (path.empty() || path[0] != '/') return false;
  const auto& segs = r.path.segments;
  size_t pos = 1;
  for (size_t i = 0; i < segs.size(); ++i) {
    if (segs[i] == "**" && r.path.kind == PathKind::kGlob) return true;
    if (pos > path.size()) return false;
    size_t end = path.find('/', pos);
    if (end == std::string_view::npos) end = path.size();
    std::string_view seg = path.substr(pos, end - pos);
    bool wildcard = r.path.kind == PathKind::kGlob && segs[i] == "*";
    if (!wildcard && seg != segs[i]) return false;
    pos = end == path.size() ? path.size() + 1 : end + 1;
  }
  if (r.path.kind == PathKind::kPrefix) return true;
  return pos > path.size();
}

const HeaderView* FindHeader(const RequestView& req, std::string_view lower_name) {
  for (size_t i = 0; i < req.header_count; ++i) {
    if (EqualsIgnoreCase(req.headers[i].name, lower_name)) return &req.headers[i];
  }
  return nullptr;
}

// Finds query parameter `name` (decoded compare); value decoded into *scratch.
bool FindQuery(std::string_view query, std::string_view name, std::string_view* value,
               std::string* scratch) {
  std::string name_scratch;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    size_t eq = pair.find('=');
    std::string_view k = DecodeComponent(pair.substr(0, eq), &name_scratch);
    if (k != name) continue;
    *value = eq == std::string_view::npos ? std::string_view()
                                          : DecodeComponent(pair.substr(eq + 1), scratch);
    return true;
  }
  return false;
}

bool FindCookie(const RequestView& req, std::string_view name, std::string_view* value) {
  for (size_t i = 0; i < req.header_count; ++i) {
    if (!EqualsIgnoreCase(req.headers[i].name, "cookie")) continue;
    std::string_view rest = req.headers[i].value;
    while (!rest.empty()) {
      size_t semi = rest.find(';');
      std::string_view pair = rest.substr(0, semi);
      rest = semi == std::string_view::npos ? std::string_view() : rest.substr(semi + 1);
      while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) pair.remove_prefix(1);
      while (!pair.empty() && (pair.back() == ' ' || pair.back() == '\t')) pair.remove_suffix(1);
      size_t eq = pair.find('=');
      if (pair.substr(0, eq) != name) continue;
      *value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
      return true;
    }
  }
  return false;
}

enum class Where { kHeader, kQuery, kCookie };

const char* WhereName(Where w) {
  switch (w) {
    case Where::kHeader: return "header";
    case Where::kQuery: return "query";
    case Where::kCookie: return "cookie";
  }
  return "";
}

bool SpecHolds(const CompiledSpec& cs, const RequestView& req, Where where, std::string* why) {
  std::string_view value;
  std::string scratch;
  bool present = false;
  if (where == Where::kHeader) {
    const HeaderView* h = FindHeader(req, cs.spec.name);
    present = h != nullptr;
    if (h) value = h->value;
  } else if (where == Where::kQuery) {
    present = FindQuery(req.query, cs.spec.name, &value, &scratch);
  } else {
    present = FindCookie(req, cs.spec.name, &value);
  }
  bool holds = false;
  switch (cs.spec.op) {
    case SpecOp::kPresent: holds = present; break;
    case SpecOp::kAbsent: holds = !present; break;
    case SpecOp::kEquals: holds = present && value == cs.spec.value; break;
    case SpecOp::kRegex: holds = present && RE2::PartialMatch(value, *cs.re); break;
  }
  if (!holds && why) {
    std::string w = std::string(WhereName(where)) + " " + cs.spec.name;
    switch (cs.spec.op) {
      case SpecOp::kPresent: *why = w + " is absent"; break;
      case SpecOp::kAbsent: *why = w + " is present"; break;
      case SpecOp::kEquals:
      case SpecOp::kRegex:
        *why = present ? w + " is '" + std::string(value) + "', wanted " +
                             (cs.spec.op == SpecOp::kEquals ? "= '" : "~ '") + cs.spec.value + "'"
                       : w + " is absent";
        break;
    }
  }
  return holds;
}

// Everything but the path. Sets *why (when given) to the first failed check.
bool ConditionsHold(const CompiledRoute& r, const RequestView& req, std::string* why) {
  if (!r.methods.empty()) {
    bool any = false;
    for (const std::string& m : r.methods) any = any || m == req.method;
    if (!any) {
      if (why) {
        *why = "method " + std::string(req.method) + " is not one of ";
        for (size_t i = 0; i < r.methods.size(); ++i) *why += (i ? "," : "") + r.methods[i];
      }
      return false;
    }
  }
  for (const auto& cs : r.headers) if (!SpecHolds(cs, req, Where::kHeader, why)) return false;
  for (const auto& cs : r.query) if (!SpecHolds(cs, req, Where::kQuery, why)) return false;
  for (const auto& cs : r.cookies) if (!SpecHolds(cs, req, Where::kCookie, why)) return false;
  return true;
}

// The bucket and backend for a route that matched.
Decision Split(const CompiledRoute& r, int route_index, const RequestView& req, uint64_t random) {
  Decision d;
  d.route = route_index;
  if (r.percent_bp >= kFullPercentBp) {
    d.backend = r.to;
    d.reason = Reason::kRoute;
    return d;
  }
  std::string_view key;
  std::string scratch;
  bool has_key = false;
  switch (r.sticky.kind) {
    case StickyKind::kNone: break;
    case StickyKind::kHeader: {
      const HeaderView* h = FindHeader(req, r.sticky.name);
      if (h) {
        key = h->value;
        has_key = true;
      }
      break;
    }
    case StickyKind::kCookie: has_key = FindCookie(req, r.sticky.name, &key); break;
    case StickyKind::kQuery: has_key = FindQuery(req.query, r.sticky.name, &key, &scratch); break;
    case StickyKind::kIp:
      key = req.client_ip;
      has_key = !key.empty();
      break;
  }
  d.bucket = has_key ? Bucket(r.salt, key) : static_cast<int>(random % kFullPercentBp);
  d.backend = d.bucket < r.percent_bp ? r.to : r.else_backend;
  d.reason = Reason::kSplit;
  return d;
}

std::string DescribePath(const Route& r, const PathPattern& p) {
  switch (p.kind) {
    case PathKind::kExact: return "exact " + r.path.substr(1);
    case PathKind::kPrefix: return "prefix " + r.path;
    case PathKind::kGlob: return "glob " + r.path;
    case PathKind::kRegex: return "regex " + r.path.substr(1);
    case PathKind::kNone: return "any path";
  }
  return "";
}

}  // namespace

RouteTable::~RouteTable() = default;

Result<std::shared_ptr<const RouteTable>> RouteTable::Compile(const RuleSet& rules) {
  STRANGLER_RETURN_IF_ERROR(ValidateRuleSet(rules));
  if (rules.backends.empty()) {
    return Status::Invalid("no backends: add the monolith with `strangler backend add NAME URL`");
  }
  std::shared_ptr<RouteTable> t(new RouteTable());
  t->rules_.version = rules.version;
  t->rules_.backends = rules.backends;
  for (size_t i = 0; i < rules.backends.size(); ++i) {
    if (rules.backends[i].is_default) t->default_backend_ = static_cast<int>(i);
  }
  auto backend_index = [&](const std::string& name) {
    if (name.empty()) return t->default_backend_;
    for (size_t i = 0; i < rules.backends.size(); ++i) {
      if (rules.backends[i].name == name) return static_cast<int>(i);
    }
    return -1;
  };

  // Enabled routes in evaluation order.
  struct Entry {
    const Route* route;
    PathPattern path;
  };
  std::vector<Entry> entries;
  for (const Route& r : rules.routes) {
    if (!r.enabled) continue;
    auto p = ParsePathPattern(r.path);
    if (!p.ok()) return p.status();
    entries.push_back({&r, std::move(p.value())});
  }
  auto key = [](const Entry& e) {
    return std::make_tuple(-e.route->priority, SpecificityClass(e.path.kind),
                           -e.path.literal_chars, std::cref(e.route->name));
  };
  std::sort(entries.begin(), entries.end(),
            [&](const Entry& a, const Entry& b) { return key(a) < key(b); });

  auto c = std::make_unique<Compiled>();
  c->nodes.emplace_back();
  for (size_t i = 0; i < entries.size(); ++i) {
    const Route& r = *entries[i].route;
    t->rules_.routes.push_back(r);
    CompiledRoute cr;
    cr.path = std::move(entries[i].path);
    if (cr.path.kind == PathKind::kRegex) cr.path_re = MakeRegex(cr.path.regex);
    cr.methods = r.methods;
    for (const auto& s : r.headers) {
      auto cs = CompileSpec(s, true);
      if (!cs.ok()) return cs.status();
      cr.headers.push_back(std::move(cs.value()));
    }
    for (const auto& s : r.query) {
      auto cs = CompileSpec(s, false);
      if (!cs.ok()) return cs.status();
      cr.query.push_back(std::move(cs.value()));
    }
    for (const auto& s : r.cookies) {
      auto cs = CompileSpec(s, false);
      if (!cs.ok()) return cs.status();
      cr.cookies.push_back(std::move(cs.value()));
    }
    auto sticky = ParseSticky(r.sticky);
    if (!sticky.ok()) return sticky.status();
    cr.sticky = sticky.value();
    if (cr.sticky.kind == StickyKind::kHeader) {
      for (char& ch : cr.sticky.name) ch = AsciiLower(ch);
    }
    cr.to = backend_index(r.to);
    cr.else_backend = backend_index(r.else_backend);
    cr.percent_bp = r.percent_bp;
    cr.salt = r.effective_salt();

    // Index the path.
    int idx = static_cast<int>(i);
    if (cr.path.kind == PathKind::kNone || cr.path.kind == PathKind::kRegex) {
      c->unindexed.push_back(idx);
    } else {
      int node = 0;
      bool rest = cr.path.kind == PathKind::kPrefix;
      for (const std::string& seg : cr.path.segments) {
        bool glob = cr.path.kind == PathKind::kGlob;
        if (glob && seg == "**") {
          rest = true;
          break;
        }
        int next;
        if (glob && seg == "*") {
          next = c->nodes[node].star;
          if (next < 0) {
            next = static_cast<int>(c->nodes.size());
            c->nodes[node].star = next;
            c->nodes.emplace_back();
          }
        } else {
          next = c->Child(node, seg);
          if (next < 0) {
            next = static_cast<int>(c->nodes.size());
            auto& ch = c->nodes[node].children;
            auto it = std::lower_bound(
                ch.begin(), ch.end(), seg,
                [](const auto& p, const std::string& s) { return p.first < s; });
            ch.insert(it, {seg, next});
            c->nodes.emplace_back();
          }
        }
        node = next;
      }
      (rest ? c->nodes[node].rest_routes : c->nodes[node].end_routes).push_back(idx);
    }
    c->routes.push_back(std::move(cr));
  }
  t->compiled_ = std::move(c);
  return std::shared_ptr<const RouteTable>(std::move(t));
}

int RouteTable::ElseBackend(int route) const {
  return compiled_->routes[static_cast<size_t>(route)].else_backend;
}

Decision RouteTable::Decide(const RequestView& req, uint64_t random) const {
  const Compiled& c = *compiled_;
  Candidates cand;
  if (!req.path.empty() && req.path[0] == '/') Walk(c, 0, req.path, 1, &cand);
  if (cand.overflow) return Explain(req, random).decision;
  std::sort(cand.idx, cand.idx + cand.n);
  // Merge the path candidates with the unindexed routes, in evaluation order.
  int a = 0;
  size_t b = 0;
  while (a < cand.n || b < c.unindexed.size()) {
    int idx;
    if (b == c.unindexed.size() || (a < cand.n && cand.idx[a] < c.unindexed[b])) {
      idx = cand.idx[a++];
    } else {
      idx = c.unindexed[b++];
      const CompiledRoute& r = c.routes[idx];
      if (r.path.kind == PathKind::kRegex && !RE2::PartialMatch(req.path, *r.path_re)) continue;
    }
    const CompiledRoute& r = c.routes[idx];
    if (ConditionsHold(r, req, nullptr)) return Split(r, idx, req, random);
  }
  Decision d;
  d.backend = default_backend_;
  return d;
}

Explanation RouteTable::Explain(const RequestView& req, uint64_t random) const {
  const Compiled& c = *compiled_;
  Explanation e;
  for (size_t i = 0; i < c.routes.size(); ++i) {
    const CompiledRoute& r = c.routes[i];
    RouteTrace trace;
    trace.route = rules_.routes[i].name;
    if (!PathMatches(r, req.path)) {
      trace.why = "path " + std::string(req.path) + " does not match " +
                  DescribePath(rules_.routes[i], r.path);
    } else if (ConditionsHold(r, req, &trace.why)) {
      trace.matched = true;
      e.tried.push_back(std::move(trace));
      e.decision = Split(r, static_cast<int>(i), req, random);
      return e;
    }
    e.tried.push_back(std::move(trace));
  }
  e.decision.backend = default_backend_;
  return e;
}

}  // namespace strangler
