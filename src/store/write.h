// One write transaction of the store and the history rows it appends, and the
// time stamps rows carry. Private to src/store/. A Write lives on the stack of
// one Store call and uses that Store's connection: not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "store/sql.h"
#include "store/store.h"

namespace strangler {
namespace store_internal {

// Now as a row's time stamp: RFC 3339 UTC with milliseconds
// (2026-11-28T04:13:55.123Z, base/time.h's AppendRfc3339Ms).
std::string NowRfc3339();

Result<int64_t> QueryRulesetVersion(sqlite3* db);

// One write transaction in progress: the time and ruleset version stamped on
// every row it writes, and how many objects it changed. A write that changes
// nothing records nothing and leaves the version alone. Several operations
// can share one Write (that is how a whole rule file can be applied at once).
// `ctx` is a copy: a ramp tick gives each row its own reason.
struct Write {
  sqlite3* db;
  ChangeContext ctx;
  std::string ts;
  int64_t now_ms = 0;   // the same instant as `ts`
  int64_t version = 0;  // the version this write produces
  int changed = 0;
  std::vector<ChangeRow> recorded;  // the history rows written, oldest first
};

Result<Write> BeginWrite(sqlite3* db, Txn* txn, const ChangeContext& ctx);

Status FinishWrite(const Write& w, Txn* txn);

// Whether a history row is a change of the rules (which serve compiles) or
// bookkeeping beside them (ramp rows), which leaves the ruleset version alone.
enum class Bump { kYes, kNo };

// Appends one history row. A kNo row carries the ruleset version in effect
// when it is written: this write's version once it changed a rule, else the
// current one.
Status RecordChange(Write* w, std::string_view action, std::string_view kind,
                    const std::string& name, const Json& before, const Json& after,
                    Bump bump = Bump::kYes);

// Runs `op` as one write transaction: all of it or none of it. With commit
// false, op runs and everything it wrote is rolled back.
template <typename Op>
Status RunWrite(sqlite3* db, const ChangeContext& ctx, Op op, bool commit = true) {
  Txn txn(db);
  Result<Write> w = BeginWrite(db, &txn, ctx);
  if (!w.ok()) return w.status();
  STRANGLER_RETURN_IF_ERROR(op(&*w));
  if (!commit) return Status::Ok();  // ~Txn rolls back
  return FinishWrite(*w, &txn);
}

}  // namespace store_internal
}  // namespace strangler
