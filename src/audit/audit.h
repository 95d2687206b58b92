// Audit: reading decision logs back. ScanLogs streams the lines of a log's
// files (ExpandLogPaths in decisions/log_files.h finds them, LineReader
// reads them), reads each into a DecisionLine (decisions/decision_line.h) and
// hands those that pass an AuditFilter (filter.h) to the caller, which may
// group them in an AuditSummary (summary.h). Audit computes; the CLI prints
// (cli/audit_output.h).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "audit/filter.h"
#include "base/status.h"
#include "decisions/decision_line.h"

namespace strangler {

struct ScanStats {
  uint64_t lines = 0;     // lines read
  uint64_t matched = 0;   // passed the filter
  uint64_t bad = 0;       // not decision lines (skipped)
  std::string first_bad;  // "FILE:LINE" of the first
};

// Reads every file in order, calling on_match for each line that passes
// `filter`; the line is valid during the call only. An unterminated last
// line that does not parse is ignored (it is still being written), not
// counted as bad.
Status ScanLogs(const std::vector<std::string>& files, const AuditFilter& filter,
                const std::function<void(const DecisionLine&)>& on_match, ScanStats* stats);

}  // namespace strangler
