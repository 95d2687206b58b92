// One decision-log line, written and read back here and nowhere else:
// FormatDecision writes a DecisionRecord as a JSON object (the proxy's
// DecisionLog), DecisionReader reads such a line back into one (audit). The
// fields and their names are in decision_record.h.
#pragma once

#include <array>
#include <string>
#include <string_view>

#include "decisions/decision_record.h"

namespace strangler {

// Appends the record as one JSON object (no newline) to *out: every field
// in DecisionField order, `route` and `bucket` null when unset, `fallback`
// only when set. Thread-safe.
void FormatDecision(const DecisionRecord& r, std::string* out);

// A line read back: the record, and the text it was read from.
struct DecisionLine {
  std::string_view text;     // the whole line
  std::string_view ts_text;  // `ts` as the line has it; "" when it has none
  DecisionRecord record;
};

// Reads decision lines. The views it fills point into the line or into the
// reader, valid until the next Read and while the line lives; steady-state
// reading allocates nothing. Not thread-safe: one reader per thread.
class DecisionReader {
 public:
  // Reads `line` into *out. False when it is not a decision line: a flat
  // JSON object with a numeric `status` and a string `backend`; a
  // `total_ms` must be a number. Other fields may be missing or of another
  // type (then left as a DecisionRecord has them: ts_ms -1, route "" ...),
  // unknown fields are skipped, order and white space do not matter.
  bool Read(std::string_view line, DecisionLine* out);

 private:
  std::string key_;
  std::array<std::string, kDecisionFieldCount> unescaped_;  // strings that held escapes
};

}  // namespace strangler
