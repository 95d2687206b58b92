#include "decisions/decision_line.h"

#include <charconv>

#include "base/time.h"
#include "decisions/json_text.h"

namespace strangler {

namespace {

using F = DecisionField;

// `{"ts":` for the first field, `,"name":` for the others, made once from
// kDecisionFieldNames.
const std::array<std::string, kDecisionFieldCount>& KeyPrefixes() {
  static const std::array<std::string, kDecisionFieldCount> kPrefixes = [] {
    std::array<std::string, kDecisionFieldCount> p;
    for (size_t i = 0; i < kDecisionFieldCount; ++i) {
      p[i] = (i == 0 ? "{\"" : ",\"") + std::string(kDecisionFieldNames[i]) + "\":";
    }
    return p;
  }();
  return kPrefixes;
}

void AppendUint(uint64_t v, std::string* out) {
  char buf[20];
  int n = 0;
  do {
    buf[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) out->push_back(buf[--n]);
}

// Milliseconds with three decimals ("0.512"), without printf.
void AppendMs(double ms, std::string* out) {
  uint64_t us = ms <= 0 ? 0 : static_cast<uint64_t>(ms * 1000.0 + 0.5);
  AppendUint(us / 1000, out);
  out->push_back('.');
  uint64_t frac = us % 1000;
  out->push_back(static_cast<char>('0' + frac / 100));
  out->push_back(static_cast<char>('0' + frac / 10 % 10));
  out->push_back(static_cast<char>('0' + frac % 10));
}

// The field `key` names (kDecisionFieldCount when none). `expected` is tried
// first: a line FormatDecision wrote holds the fields in order.
size_t FieldIndex(std::string_view key, size_t expected) {
  if (expected < kDecisionFieldCount && kDecisionFieldNames[expected] == key) return expected;
  for (size_t i = 0; i < kDecisionFieldCount; ++i) {
    if (kDecisionFieldNames[i] == key) return i;
  }
  return kDecisionFieldCount;
}

// The whole of `text` as a number; *out is left alone otherwise.
template <typename T>
bool Number(std::string_view text, T* out) {
  T v{};
  auto r = std::from_chars(text.data(), text.data() + text.size(), v);
  if (r.ec != std::errc() || r.ptr != text.data() + text.size()) return false;
  *out = v;
  return true;
}

// A number the reader does not insist on: null, a bad number or any other
// value leaves *out as it was. False only when the JSON itself is broken.
template <typename T>
bool OptionalNumber(JsonScanner* s, T* out) {
  char c = s->Peek();
  if (c == '"' || c == '{' || c == '[') return s->SkipValue();
  std::string_view text = s->Scalar();
  if (text.empty()) return false;
  (void)Number(text, out);
  return true;
}

}  // namespace

void FormatDecision(const DecisionRecord& r, std::string* out) {
  const auto& key = KeyPrefixes();
  auto field = [&](F f) { out->append(key[static_cast<size_t>(f)]); };
  auto text = [&](F f, std::string_view v) {
    field(f);
    AppendJsonString(v, out);
  };
  auto null = [&](F f) {
    field(f);
    out->append("null");
  };
  auto number = [&](F f, uint64_t v) {
    field(f);
    AppendUint(v, out);
  };
  auto ms = [&](F f, double v) {
    field(f);
    AppendMs(v, out);
  };
  field(F::kTs);
  out->push_back('"');
  AppendRfc3339Ms(r.ts_ms, out);
  out->push_back('"');
  text(F::kRequestId, r.request_id);
  text(F::kMethod, r.method);
  text(F::kPath, r.path);
  if (r.route.empty()) {
    null(F::kRoute);
  } else {
    text(F::kRoute, r.route);
  }
  if (r.backend.empty()) {
    null(F::kBackend);  // the router's own answer (reason "refused")
  } else {
    text(F::kBackend, r.backend);
  }
  text(F::kReason, r.reason);
  if (r.bucket < 0) {
    null(F::kBucket);
  } else {
    number(F::kBucket, static_cast<uint64_t>(r.bucket));
  }
  number(F::kStatus, static_cast<uint64_t>(r.status));
  ms(F::kUpstreamMs, r.upstream_ms);
  ms(F::kTotalMs, r.total_ms);
  number(F::kBytesIn, r.bytes_in);
  number(F::kBytesOut, r.bytes_out);
  text(F::kClient, r.client);
  number(F::kRuleset, static_cast<uint64_t>(r.ruleset < 0 ? 0 : r.ruleset));
  if (!r.fallback.empty()) text(F::kFallback, r.fallback);
  if (r.queue_ms >= 0) ms(F::kQueueMs, r.queue_ms);
  if (!r.instances.empty()) text(F::kInstances, r.instances);
  out->push_back('}');
}

bool DecisionReader::Read(std::string_view line, DecisionLine* out) {
  out->text = line;
  out->ts_text = {};
  DecisionRecord& r = out->record;
  r = DecisionRecord();
  r.ts_ms = -1;
  bool has_status = false;
  bool has_backend = false;

  JsonScanner s(line);
  if (!s.Eat('{')) return false;
  if (s.Eat('}')) return false;
  size_t next = 0;
  for (;;) {
    std::string_view key;
    if (!s.String(&key, &key_)) return false;
    if (!s.Eat(':')) return false;
    const size_t i = FieldIndex(key, next);
    next = i + 1;
    const bool is_string = s.Peek() == '"';
    std::string_view* text = nullptr;  // where a string field goes
    bool ok = true;
    switch (static_cast<F>(i)) {
      case F::kTs: text = &out->ts_text; break;
      case F::kRequestId: text = &r.request_id; break;
      case F::kMethod: text = &r.method; break;
      case F::kPath: text = &r.path; break;
      case F::kRoute: text = &r.route; break;
      case F::kBackend:
        text = &r.backend;  // null: the router's own answer
        has_backend = is_string || s.Peek() == 'n';
        break;
      case F::kReason: text = &r.reason; break;
      case F::kClient: text = &r.client; break;
      case F::kFallback: text = &r.fallback; break;
      case F::kInstances: text = &r.instances; break;
      case F::kStatus:
        ok = Number(s.Scalar(), &r.status);
        has_status = true;
        break;
      case F::kTotalMs: ok = Number(s.Scalar(), &r.total_ms); break;
      case F::kBucket: ok = OptionalNumber(&s, &r.bucket); break;
      case F::kUpstreamMs: ok = OptionalNumber(&s, &r.upstream_ms); break;
      case F::kBytesIn: ok = OptionalNumber(&s, &r.bytes_in); break;
      case F::kBytesOut: ok = OptionalNumber(&s, &r.bytes_out); break;
      case F::kRuleset: ok = OptionalNumber(&s, &r.ruleset); break;
      case F::kQueueMs: ok = OptionalNumber(&s, &r.queue_ms); break;
      default: ok = s.SkipValue(); break;  // a field this schema does not have
    }
    if (text != nullptr) {
      // A string field holding another value (null, say) is skipped.
      if (!is_string) {
        ok = s.SkipValue();
      } else if (!s.String(text, &unescaped_[i])) {
        return false;
      } else if (text == &out->ts_text) {
        auto t = ParseRfc3339Ms(*text);
        r.ts_ms = t.ok() ? *t : -1;
      }
    }
    if (!ok) return false;
    if (s.Eat(',')) continue;
    if (s.Eat('}')) break;
    return false;
  }
  return s.AtEnd() && has_status && has_backend;
}

}  // namespace strangler
