#include "safety/compare.h"

#include <algorithm>
#include <cctype>
#include <cinttypes>
#include <cstdio>
#include <optional>

#include "base/text.h"

namespace strangler {
namespace {

// --- small string helpers --------------------------------------------------

// "Application/Problem+JSON; charset=utf-8" -> "application/problem+json"
std::string MediaType(std::string_view content_type) {
  std::string_view type = Trim(content_type.substr(0, content_type.find(';')));
  std::string out(type);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool IsJsonType(std::string_view content_type) {
  std::string type = MediaType(content_type);
  return type == "application/json" || EndsWith(type, "+json");
}

// JSON counts as text: a JSON body that does not parse is compared line by line.
bool IsTextType(std::string_view content_type) {
  std::string type = MediaType(content_type);
  return type.rfind("text/", 0) == 0 || type == "application/xml" ||
         type == "application/x-www-form-urlencoded" || type == "application/javascript" ||
         IsJsonType(type);
}

std::string Hex16(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016" PRIx64, v);
  return buf;
}

// --- UTF-8 -----------------------------------------------------------------

bool IsUtf8WithoutNul(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '\0') return false;
    size_t len = Utf8SequenceLength(s, i);
    if (len == 0) return false;
    i += len;
  }
  return true;
}

// At most max_bytes of s as valid UTF-8, cut at a character boundary, each
// invalid byte replaced by U+FFFD. Diff values end up in JSON, which must be
// valid UTF-8 (nlohmann's dump() throws otherwise), and response bytes need not be.
std::string SafeUtf8(std::string_view s, size_t max_bytes) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t len = Utf8SequenceLength(s, i);
    std::string_view piece = len ? s.substr(i, len) : kReplacement;
    if (out.size() + piece.size() > max_bytes) break;
    out += piece;
    i += len ? len : 1;
  }
  return out;
}

// --- collecting differences ------------------------------------------------

// A differing value as it is kept: whole when its JSON text is at most
// kMaxDiffLineBytes, else that text cut there and marked, as a string (a
// 1 MB value that differs must not cost the store and every /diff reader a
// megabyte per mismatch).
Json BoundedValue(Json v) {
  if (v.is_number() || v.is_boolean() || v.is_null()) return v;
  if (v.is_string() && v.get_ref<const std::string&>().size() <= kMaxDiffLineBytes) return v;
  const std::string text = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() <= kMaxDiffLineBytes) return v;
  return SafeUtf8(text, kMaxDiffLineBytes) + "… (" + std::to_string(text.size()) + " bytes)";
}

void AddDiff(Comparison* out, FieldDiff d) {
  out->equal = false;
  if (out->diffs.size() < kMaxDiffs) {
    d.primary = BoundedValue(std::move(d.primary));
    d.mirror = BoundedValue(std::move(d.mirror));
    out->diffs.push_back(std::move(d));
  } else {
    ++out->more;
  }
}

FieldDiff BothSides(std::string where, Json primary, Json mirror) {
  FieldDiff d;
  d.where = std::move(where);
  d.primary = std::move(primary);
  d.mirror = std::move(mirror);
  return d;
}

FieldDiff OnlyPrimary(std::string where, Json primary) {
  FieldDiff d = BothSides(std::move(where), std::move(primary), Json());
  d.mirror_missing = true;
  return d;
}

FieldDiff OnlyMirror(std::string where, Json mirror) {
  FieldDiff d = BothSides(std::move(where), Json(), std::move(mirror));
  d.primary_missing = true;
  return d;
}

// --- headers ---------------------------------------------------------------

// Every value of header `name`, trimmed and joined with ", " as a proxy may
// fold them; nullopt when the response has none.
std::optional<std::string> HeaderValue(const CapturedResponse& r, std::string_view name) {
  std::optional<std::string> joined;
  for (const auto& [n, v] : r.headers) {
    if (!IEquals(n, name)) continue;
    if (joined) {
      *joined += ", ";
    } else {
      joined.emplace();
    }
    *joined += Trim(v);
  }
  return joined;
}

void CompareHeaders(const CapturedResponse& p, const CapturedResponse& m,
                    const std::vector<std::string>& names, Comparison* out) {
  for (const std::string& name : names) {
    std::optional<std::string> pv = HeaderValue(p, name), mv = HeaderValue(m, name);
    if (pv == mv) continue;
    std::string where = "header " + name;
    if (!pv) {
      AddDiff(out, OnlyMirror(where, SafeUtf8(*mv, SIZE_MAX)));
    } else if (!mv) {
      AddDiff(out, OnlyPrimary(where, SafeUtf8(*pv, SIZE_MAX)));
    } else {
      AddDiff(out, BothSides(where, SafeUtf8(*pv, SIZE_MAX), SafeUtf8(*mv, SIZE_MAX)));
    }
  }
}

// --- JSON bodies -----------------------------------------------------------

std::optional<Json> ParseJson(std::string_view body) {
  // Our walks recurse once per level and may run on a small fiber stack, so
  // deeper documents are never parsed (they are compared as text instead).
  if (!JsonNestingWithin(body, kMaxJsonDepth)) return std::nullopt;
  Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return std::nullopt;
  return j;
}

// Removes what `steps[i..]` names below `node`.
void RemoveIgnored(Json& node, const std::vector<std::string>& steps, size_t i) {
  const std::string& step = steps[i];
  bool last = i + 1 == steps.size();
  if (step == IgnoreField::kEveryElement) {
    if (!node.is_array()) return;
    if (last) {
      node = Json::array();  // every element ignored: only the array's presence is left
      return;
    }
    for (Json& element : node) RemoveIgnored(element, steps, i + 1);
    return;
  }
  if (!node.is_object()) return;
  auto it = node.find(step);
  if (it == node.end()) return;
  if (last) {
    node.erase(it);
  } else {
    RemoveIgnored(*it, steps, i + 1);
  }
}

bool IsIdentifier(const std::string& key) {
  if (key.empty() || std::isdigit(static_cast<unsigned char>(key[0]))) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
  });
}

std::string KeyPath(const std::string& parent, const std::string& key) {
  if (IsIdentifier(key)) return parent + "." + key;
  // Keys come from parsed JSON, so they are valid UTF-8; replace is a safety net.
  return parent + "[" + Json(key).dump(-1, ' ', false, Json::error_handler_t::replace) + "]";
}

std::string IndexPath(const std::string& parent, size_t index) {
  return parent + "[" + std::to_string(index) + "]";
}

void CompareJsonValues(const Json& p, const Json& m, const std::string& path, Comparison* out);

void CompareObjects(const Json& p, const Json& m, const std::string& path, Comparison* out) {
  for (auto it = p.begin(); it != p.end(); ++it) {
    auto other = m.find(it.key());
    std::string child = KeyPath(path, it.key());
    if (other == m.end()) {
      AddDiff(out, OnlyPrimary(child, it.value()));
    } else {
      CompareJsonValues(it.value(), *other, child, out);
    }
  }
  for (auto it = m.begin(); it != m.end(); ++it) {
    if (!p.contains(it.key())) AddDiff(out, OnlyMirror(KeyPath(path, it.key()), it.value()));
  }
}

// Element by element: an inserted element shows as a run of differences,
// which is what a client reading by index would see.
void CompareArrays(const Json& p, const Json& m, const std::string& path, Comparison* out) {
  size_t common = std::min(p.size(), m.size());
  for (size_t i = 0; i < common; ++i) CompareJsonValues(p[i], m[i], IndexPath(path, i), out);
  for (size_t i = common; i < p.size(); ++i) AddDiff(out, OnlyPrimary(IndexPath(path, i), p[i]));
  for (size_t i = common; i < m.size(); ++i) AddDiff(out, OnlyMirror(IndexPath(path, i), m[i]));
}

void CompareJsonValues(const Json& p, const Json& m, const std::string& path, Comparison* out) {
  if (p.is_object() && m.is_object()) return CompareObjects(p, m, path, out);
  if (p.is_array() && m.is_array()) return CompareArrays(p, m, path, out);
  // nlohmann compares numbers by value across integer and float, so 1 == 1.0.
  if (p != m) AddDiff(out, BothSides(path, p, m));
}

bool IsContainer(const std::optional<Json>& j) { return j && (j->is_object() || j->is_array()); }

// Compares the bodies as JSON when either side says JSON, or when both bodies
// are JSON objects or arrays whatever their type says. Returns false, having
// added nothing, when they are not both JSON.
bool CompareAsJson(const CapturedResponse& p, const CapturedResponse& m,
                   const std::vector<IgnoreField>& ignore, Comparison* out) {
  bool typed = IsJsonType(p.content_type) || IsJsonType(m.content_type);
  std::optional<Json> pj = ParseJson(p.body);
  if (!pj || (!typed && !IsContainer(pj))) return false;
  std::optional<Json> mj = ParseJson(m.body);
  if (!mj || (!typed && !IsContainer(mj))) return false;
  for (const IgnoreField& field : ignore) {
    if (field.steps.empty()) continue;  // only a default-constructed field has none
    RemoveIgnored(*pj, field.steps, 0);
    RemoveIgnored(*mj, field.steps, 0);
  }
  out->kind = "json";
  CompareJsonValues(*pj, *mj, "$", out);
  return true;
}

// --- text, binary and hash bodies ------------------------------------------

// The lines of s split at '\n': "a\n" has two lines, "a" and "".
std::vector<std::string_view> SplitLines(std::string_view s) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  for (size_t nl; (nl = s.find('\n', start)) != std::string_view::npos; start = nl + 1) {
    lines.push_back(s.substr(start, nl - start));
  }
  lines.push_back(s.substr(start));
  return lines;
}

void CompareText(std::string_view p, std::string_view m, Comparison* out) {
  out->kind = "text";
  if (p == m) return;
  std::vector<std::string_view> pl = SplitLines(p), ml = SplitLines(m);
  // The bodies differ, so the line lists do too: some index tells them apart.
  size_t i = 0;
  while (i < pl.size() && i < ml.size() && pl[i] == ml[i]) ++i;
  std::string where = "body line " + std::to_string(i + 1);
  if (i >= pl.size()) {
    AddDiff(out, OnlyMirror(where, SafeUtf8(ml[i], kMaxDiffLineBytes)));
  } else if (i >= ml.size()) {
    AddDiff(out, OnlyPrimary(where, SafeUtf8(pl[i], kMaxDiffLineBytes)));
  } else {
    AddDiff(out, BothSides(where, SafeUtf8(pl[i], kMaxDiffLineBytes),
                           SafeUtf8(ml[i], kMaxDiffLineBytes)));
  }
}

// Size and hash of the whole body. A response that was not truncated holds
// all of it, so its own fields are not trusted to have been filled in.
struct BodySummary {
  uint64_t bytes = 0;
  uint64_t hash = 0;
  bool operator==(const BodySummary& o) const { return bytes == o.bytes && hash == o.hash; }
  Json AsJson() const { return {{"bytes", bytes}, {"hash", Hex16(hash)}}; }
};

BodySummary Summarize(const CapturedResponse& r) {
  if (r.truncated) return {r.body_bytes, r.body_hash};
  BodyHasher h;
  h.Update(r.body);
  return {r.body.size(), h.value()};
}

void CompareSummaries(const CapturedResponse& p, const CapturedResponse& m, Comparison* out) {
  BodySummary ps = Summarize(p), ms = Summarize(m);
  if (!(ps == ms)) AddDiff(out, BothSides("body", ps.AsJson(), ms.AsJson()));
}

void CompareBodies(const CapturedResponse& p, const CapturedResponse& m, const CompareOptions& opts,
                   Comparison* out) {
  if (p.truncated || m.truncated) {
    out->kind = "hash";
    CompareSummaries(p, m, out);
    return;
  }
  if (CompareAsJson(p, m, opts.ignore, out)) return;
  if (IsTextType(p.content_type) || IsTextType(m.content_type) ||
      (IsUtf8WithoutNul(p.body) && IsUtf8WithoutNul(m.body))) {
    CompareText(p.body, m.body, out);
    return;
  }
  out->kind = "binary";
  // Bytes decide, not hashes: two different bodies are never equal by collision.
  if (p.body != m.body) {
    AddDiff(out, BothSides("body", Summarize(p).AsJson(), Summarize(m).AsJson()));
  }
}

// --- ComparisonFromJson helpers --------------------------------------------

Status Malformed(const std::string& why) { return Status::Invalid("stored comparison: " + why); }

Result<FieldDiff> FieldDiffFromJson(const Json& j) {
  if (!j.is_object()) return Malformed("a diff is not an object");
  auto where = j.find("where");
  if (where == j.end() || !where->is_string()) return Malformed("a diff has no 'where' string");
  FieldDiff d;
  d.where = where->get<std::string>();
  auto primary = j.find("primary"), mirror = j.find("mirror");
  d.primary_missing = primary == j.end();
  d.mirror_missing = mirror == j.end();
  if (!d.primary_missing) d.primary = *primary;
  if (!d.mirror_missing) d.mirror = *mirror;
  return d;
}

}  // namespace

void BodyHasher::Update(const void* data, size_t n) {
  const auto* bytes = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < n; ++i) {
    hash_ ^= bytes[i];
    hash_ *= 0x100000001b3ULL;  // FNV-1a 64 prime
  }
}

Comparison CompareResponses(const CapturedResponse& primary, const CapturedResponse& mirror,
                            const CompareOptions& opts) {
  Comparison out;
  if (primary.status != mirror.status) {
    AddDiff(&out, BothSides("status", primary.status, mirror.status));
  }
  CompareHeaders(primary, mirror, opts.headers, &out);
  CompareBodies(primary, mirror, opts, &out);
  return out;
}

Json ToJson(const Comparison& c) {
  Json diffs = Json::array();
  for (const FieldDiff& d : c.diffs) {
    Json entry = {{"where", d.where}};
    if (!d.primary_missing) entry["primary"] = d.primary;
    if (!d.mirror_missing) entry["mirror"] = d.mirror;
    diffs.push_back(std::move(entry));
  }
  return {{"equal", c.equal}, {"kind", c.kind}, {"diffs", std::move(diffs)}, {"more", c.more}};
}

Result<Comparison> ComparisonFromJson(const Json& j) {
  if (!j.is_object()) return Malformed("not an object");
  auto equal = j.find("equal"), kind = j.find("kind"), diffs = j.find("diffs"),
       more = j.find("more");
  if (equal == j.end() || !equal->is_boolean()) return Malformed("'equal' must be a boolean");
  if (kind == j.end() || !kind->is_string()) return Malformed("'kind' must be a string");
  if (diffs == j.end() || !diffs->is_array()) return Malformed("'diffs' must be an array");
  if (more == j.end() || !more->is_number_unsigned()) {
    return Malformed("'more' must be a non-negative integer");
  }
  Comparison c;
  c.equal = equal->get<bool>();
  c.kind = kind->get<std::string>();
  c.more = more->get<size_t>();
  for (const Json& entry : *diffs) {
    Result<FieldDiff> d = FieldDiffFromJson(entry);
    if (!d.ok()) return d.status();
    c.diffs.push_back(std::move(d).value());
  }
  return c;
}

}  // namespace strangler
