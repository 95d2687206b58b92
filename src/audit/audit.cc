#include "audit/audit.h"

#include "audit/line_reader.h"

namespace strangler {

Status ScanLogs(const std::vector<std::string>& files, const AuditFilter& filter,
                const std::function<void(const DecisionLine&)>& on_match, ScanStats* stats) {
  DecisionReader decisions;
  DecisionLine d;
  for (const std::string& file : files) {
    auto reader = LineReader::Open(file);
    if (!reader.ok()) return reader.status();
    std::string_view line;
    uint64_t number = 0;
    while ((*reader)->Next(&line)) {
      ++number;
      if (line.empty()) continue;
      ++stats->lines;
      if (!decisions.Read(line, &d)) {
        if ((*reader)->unterminated()) {  // still being written
          --stats->lines;
          continue;
        }
        if (stats->bad++ == 0) stats->first_bad = file + ":" + std::to_string(number);
        continue;
      }
      if (!filter.Matches(d.record)) continue;
      ++stats->matched;
      on_match(d);
    }
    STRANGLER_RETURN_IF_ERROR((*reader)->status());
  }
  return Status::Ok();
}

}  // namespace strangler
