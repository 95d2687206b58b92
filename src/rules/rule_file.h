// Rule files: the whole rule set as one JSON document,
// {"backends": [...], "routes": [...]}, with the objects of rules.h's ToJson.
// ParseRuleFile reads and checks a file, collecting every problem rather than
// stopping at the first; PlanApply diffs a file against the store's rule set,
// field by field, into the ordered list of writes that makes the store match.
// Pure values and functions: no I/O, no SQL (the store runs a plan in one
// transaction, see Store::ApplyRuleFile). Safe to use from any thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "rules/rules.h"

namespace strangler {

// A rule file as read: every object valid on its own, names unique, every
// route's to/else naming a backend of the file, exactly one default backend
// (when there are backends). References never reach outside the file.
struct RuleFile {
  std::vector<Backend> backends;
  std::vector<Route> routes;
};

// Reads `text` (the contents of a rule file). On success `problems` is empty.
// Otherwise the result is unusable and `problems` lists each problem as one
// line: JSON syntax errors with line and column, unknown fields, bad names,
// bad patterns and specs, duplicate names, unknown backend references, the
// number of defaults. The whole file is always checked.
RuleFile ParseRuleFile(std::string_view text, std::vector<std::string>* problems);

// The rule set as a rule file: backends and routes sorted by name, each as
// ToJson, pretty-printed with a 2-space indent and a final newline, so that
// it diffs well in git. ParseRuleFile reads it back to the same objects.
std::string ExportRuleFile(const RuleSet& rules);

enum class ObjectKind { kBackend, kRoute };
enum class PlanAction { kAdd, kChange, kRemove, kKeep };
enum class Prune { kNo, kYes };

struct FieldChange {
  std::string field;
  Json before;
  Json after;
};

// One step of a plan. For kAdd `after` holds the object, for kRemove and
// kKeep `before`; for kChange both, with `fields` listing what differs.
struct PlanStep {
  PlanAction action = PlanAction::kKeep;
  ObjectKind kind = ObjectKind::kBackend;
  std::string name;
  Backend backend;  // the state to write (kAdd, kChange) when kind == kBackend
  Route route;      // likewise for routes
  Json before;      // null for kAdd
  Json after;       // null for kRemove and kKeep
  std::vector<FieldChange> fields;
};

// Steps in the order they must run so that every reference holds at every
// point: backends added or changed (the file's default first), routes
// removed, routes added, routes changed, backends removed. kKeep steps (only
// without --prune: in the store, not in the file) come last and write nothing.
struct ApplyPlan {
  std::vector<PlanStep> steps;
  int adds = 0;
  int changes = 0;
  int removes = 0;
  int kept = 0;
  bool has_writes() const { return adds + changes + removes > 0; }
};

// What makes `current` match `file`. Objects equal in both are left out.
// Without Prune::kYes, objects missing from the file are kept (kKeep); a kept
// backend that is the default while the file names another default is
// changed to non-default (the store allows one default).
ApplyPlan PlanApply(const RuleSet& current, const RuleFile& file, Prune prune);

// Human form, one line per step (an add names the fields that differ from a
// new object's defaults, a change the fields that differ; "-" is an option
// not set, i.e. at its default):
//   add backend orders: urls [http://127.0.0.1:9002], timeout_ms 5000, max_conns 10
//   change backend orders: max_conns 10 → 20, max_queue - → 100
//   change route orders: percent 5 → 30
//   remove route old-beta
//   keep route legacy-x (not in file; --prune removes)
std::string FormatPlan(const ApplyPlan& plan);
// JSON form: [{"action": "add", "kind": "route", "name", "before", "after",
// "fields": [{"field", "before", "after"}]}].
Json PlanJson(const ApplyPlan& plan);

const char* PlanActionName(PlanAction a);  // "add", "change", "remove", "keep"
const char* ObjectKindName(ObjectKind k);  // "backend", "route"

}  // namespace strangler
