#include "rules/rule_file.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include "base/text.h"

namespace strangler {

namespace {

using OrderedJson = nlohmann::ordered_json;

// Field order in exported files and plans: the order of the CLI's options.
// Every field a rule file may hold, in export order: the same lists the
// JSON readers take (so an option the CLI can set is never refused here).
const std::vector<std::string>& FieldOrder(ObjectKind kind) {
  return kind == ObjectKind::kBackend ? BackendFields() : RouteFields();
}

// Keys of `a` and `b` in export order, then any others sorted.
std::vector<std::string> OrderedKeys(ObjectKind kind, const Json& a, const Json& b) {
  std::vector<std::string> keys = FieldOrder(kind);
  std::set<std::string> extra;
  for (const Json* j : {&a, &b}) {
    if (!j->is_object()) continue;
    for (auto it = j->begin(); it != j->end(); ++it) {
      if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) extra.insert(it.key());
    }
  }
  keys.insert(keys.end(), extra.begin(), extra.end());
  return keys;
}

OrderedJson Ordered(ObjectKind kind, const Json& j) {
  OrderedJson out = OrderedJson::object();
  for (const std::string& k : OrderedKeys(kind, j, Json())) {
    auto it = j.find(k);
    if (it != j.end()) out[k] = OrderedJson::parse(it->dump());
  }
  return out;
}

std::string Where(const char* list, size_t i, const Json& j) {
  std::string w = std::string(list) + "[" + std::to_string(i) + "]";
  if (j.is_object()) {
    auto n = j.find("name");
    if (n != j.end() && n->is_string()) w += " (" + n->get<std::string>() + ")";
  }
  return w;
}

bool ValidNameString(const Json& j, const char* key, const char* what) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() && ValidateName(what, it->get<std::string>()).ok();
}

// Reads one backend or route object, adding a problem for each unknown
// field and each bad field (each field is checked on its own against a
// valid base object, so one bad field does not hide another).
template <typename T, typename FromJson>
bool ReadObject(const Json& j, const std::string& where, ObjectKind kind, FromJson from_json,
                T* out, std::vector<std::string>* problems) {
  const char* what = ObjectKindName(kind);
  if (!j.is_object()) {
    problems->push_back(where + ": a " + std::string(what) + " must be a JSON object");
    return false;
  }
  const std::vector<std::string>& known = FieldOrder(kind);
  Json known_only = Json::object();
  bool ok = true;
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) == known.end()) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      problems->push_back(where + ": unknown field '" + it.key() + "' (known: " + list + ")");
      ok = false;
    } else {
      known_only[it.key()] = it.value();
    }
  }
  std::vector<const char*> required = {"name"};
  if (kind == ObjectKind::kRoute) required.push_back("to");
  if (kind == ObjectKind::kBackend) required.push_back("urls");
  for (const char* r : required) {
    if (!known_only.contains(r) || known_only[r].is_null()) {
      problems->push_back(where + ": missing field '" + r + "'");
      ok = false;
    }
  }
  Result<T> whole = from_json(known_only);
  if (whole.ok()) {
    if (ok) *out = std::move(whole.value());
    return ok;
  }
  // Probe each field on a base object whose other fields are valid.
  Json base = Json::object();
  base["name"] = ValidNameString(j, "name", what) ? j["name"] : Json("probe");
  if (kind == ObjectKind::kRoute) {
    base["to"] = ValidNameString(j, "to", "backend") ? j["to"] : Json("probe");
  } else {
    base["urls"] = Json::array({"http://127.0.0.1:1"});
  }
  bool found = false;
  for (auto it = known_only.begin(); it != known_only.end(); ++it) {
    if (it.value().is_null() &&
        std::find(required.begin(), required.end(), it.key()) != required.end()) {
      continue;  // reported as missing
    }
    Json probe = base;
    probe[it.key()] = it.value();
    Result<T> one = from_json(probe);
    if (!one.ok()) {
      problems->push_back(where + ": " + it.key() + ": " + one.status().message());
      found = true;
    }
  }
  if (!found && ok) problems->push_back(where + ": " + whole.status().message());
  return false;
}

// A JSON value as a short human string: strings bare, null as "-".
std::string Show(const Json& v) {
  if (v.is_null()) return "-";
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    return s.empty() ? "''" : s;
  }
  if (v.is_array()) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) {
      if (i) s += ",";
      s += v[i].is_string() ? v[i].get<std::string>() : v[i].dump();
    }
    return s + "]";
  }
  return v.dump();
}

std::vector<FieldChange> Diff(ObjectKind kind, const Json& before, const Json& after) {
  std::vector<FieldChange> out;
  for (const std::string& k : OrderedKeys(kind, before, after)) {
    Json b = before.is_object() && before.contains(k) ? before[k] : Json();
    Json a = after.is_object() && after.contains(k) ? after[k] : Json();
    if (b != a) out.push_back(FieldChange{k, b, a});
  }
  return out;
}

template <typename T>
std::map<std::string, const T*> ByName(const std::vector<T>& v) {
  std::map<std::string, const T*> m;
  for (const T& x : v) m.emplace(x.name, &x);
  return m;
}

}  // namespace

const char* PlanActionName(PlanAction a) {
  switch (a) {
    case PlanAction::kAdd:
      return "add";
    case PlanAction::kChange:
      return "change";
    case PlanAction::kRemove:
      return "remove";
    case PlanAction::kKeep:
      return "keep";
  }
  return "?";
}

const char* ObjectKindName(ObjectKind k) { return k == ObjectKind::kBackend ? "backend" : "route"; }

// Deeper documents are refused before they are parsed (JsonNestingWithin).
constexpr int kMaxRuleFileDepth = 32;

RuleFile ParseRuleFile(std::string_view text, std::vector<std::string>* problems) {
  problems->clear();
  RuleFile file;
  Json doc;
  if (!JsonNestingWithin(text, kMaxRuleFileDepth)) {
    problems->push_back("nests deeper than " + std::to_string(kMaxRuleFileDepth) +
                        " levels; a rule file's objects hold a few");
    return file;
  }
  try {
    doc = Json::parse(text.begin(), text.end());
  } catch (const Json::exception& e) {
    // "[json.exception.parse_error.101] parse error at line 3, column 5: ..."
    // (also out_of_range.406, a number beyond double's range)
    std::string msg = e.what();
    size_t close = msg.find("] ");
    if (close != std::string::npos) msg = msg.substr(close + 2);
    problems->push_back("not valid JSON: " + msg);
    return file;
  }
  if (!doc.is_object()) {
    problems->push_back(
        "a rule file must be a JSON object {\"backends\": [...], \"routes\": [...]}");
    return file;
  }
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() != "backends" && it.key() != "routes") {
      problems->push_back("unknown top-level field '" + it.key() +
                          "' (a rule file holds only \"backends\" and \"routes\")");
    }
  }
  auto list = [&](const char* key) -> const Json* {
    auto it = doc.find(key);
    if (it == doc.end() || it->is_null()) return nullptr;
    if (!it->is_array()) {
      problems->push_back(std::string("\"") + key + "\" must be an array");
      return nullptr;
    }
    return &*it;
  };

  // Names, duplicates and references are checked on the raw objects, so an
  // object with a bad field still takes part (and hides no other problem).
  std::set<std::string> backend_names;
  if (const Json* backends = list("backends")) {
    for (size_t i = 0; i < backends->size(); ++i) {
      const Json& j = (*backends)[i];
      std::string where = Where("backends", i, j);
      if (ValidNameString(j, "name", "backend") &&
          !backend_names.insert(j["name"].get<std::string>()).second) {
        problems->push_back(where + ": duplicate backend name '" + j["name"].get<std::string>() +
                            "'");
        continue;
      }
      Backend b;
      if (ReadObject<Backend>(j, where, ObjectKind::kBackend, BackendFromJson, &b, problems)) {
        file.backends.push_back(std::move(b));
      }
    }
  }
  // Counted on the raw objects, so a backend with another bad field still counts.
  if (doc.contains("backends") && doc["backends"].is_array() && !doc["backends"].empty()) {
    int raw_defaults = 0;
    for (const Json& j : doc["backends"]) {
      if (j.is_object() && j.contains("default") && j["default"] == true) ++raw_defaults;
    }
    if (raw_defaults != 1) {
      problems->push_back("exactly one backend must have \"default\": true (found " +
                          std::to_string(raw_defaults) + ")");
    }
  }

  if (const Json* routes = list("routes")) {
    std::set<std::string> route_names;
    for (size_t i = 0; i < routes->size(); ++i) {
      const Json& j = (*routes)[i];
      std::string where = Where("routes", i, j);
      if (ValidNameString(j, "name", "route") &&
          !route_names.insert(j["name"].get<std::string>()).second) {
        problems->push_back(where + ": duplicate route name '" + j["name"].get<std::string>() +
                            "'");
        continue;
      }
      if (j.is_object()) {
        for (const char* field : {"to", "else"}) {
          if (!ValidNameString(j, field, "backend")) continue;
          std::string ref = j[field].get<std::string>();
          if (backend_names.count(ref) == 0) {
            problems->push_back(where + ": " + field + ": unknown backend '" + ref +
                                "' (a rule file must define every backend its routes name)");
          }
        }
      }
      Route r;
      if (ReadObject<Route>(j, where, ObjectKind::kRoute, RouteFromJson, &r, problems)) {
        file.routes.push_back(std::move(r));
      }
    }
  }
  if (!problems->empty()) return RuleFile{};
  return file;
}

std::string ExportRuleFile(const RuleSet& rules) {
  std::vector<Backend> backends = rules.backends;
  std::vector<Route> routes = rules.routes;
  std::sort(backends.begin(), backends.end(),
            [](const Backend& a, const Backend& b) { return a.name < b.name; });
  std::sort(routes.begin(), routes.end(),
            [](const Route& a, const Route& b) { return a.name < b.name; });
  OrderedJson doc = OrderedJson::object();
  doc["backends"] = OrderedJson::array();
  doc["routes"] = OrderedJson::array();
  for (const Backend& b : backends)
    doc["backends"].push_back(Ordered(ObjectKind::kBackend, ToJson(b)));
  for (const Route& r : routes) doc["routes"].push_back(Ordered(ObjectKind::kRoute, ToJson(r)));
  return doc.dump(2) + "\n";
}

ApplyPlan PlanApply(const RuleSet& current, const RuleFile& file, Prune prune) {
  ApplyPlan plan;
  auto have_b = ByName(current.backends);
  auto want_b = ByName(file.backends);
  auto have_r = ByName(current.routes);
  auto want_r = ByName(file.routes);

  std::string file_default;
  for (const Backend& b : file.backends) {
    if (b.is_default) file_default = b.name;
  }

  auto backend_step = [&](PlanAction action, const Backend& b, const Json& before) {
    PlanStep s;
    s.action = action;
    s.kind = ObjectKind::kBackend;
    s.name = b.name;
    s.backend = b;
    s.before = before;
    if (action == PlanAction::kAdd || action == PlanAction::kChange) s.after = ToJson(b);
    if (action == PlanAction::kAdd) {
      Backend dflt;
      dflt.name = b.name;
      Json d = ToJson(dflt);
      d["urls"] = nullptr;
      s.fields = Diff(ObjectKind::kBackend, d, s.after);
    } else if (action == PlanAction::kChange) {
      s.fields = Diff(ObjectKind::kBackend, before, s.after);
    }
    return s;
  };
  auto route_step = [&](PlanAction action, const Route& r, const Json& before) {
    PlanStep s;
    s.action = action;
    s.kind = ObjectKind::kRoute;
    s.name = r.name;
    s.route = r;
    s.before = before;
    if (action == PlanAction::kAdd || action == PlanAction::kChange) s.after = ToJson(r);
    if (action == PlanAction::kAdd) {
      Route dflt;
      dflt.name = r.name;
      Json d = ToJson(dflt);
      d["to"] = nullptr;
      s.fields = Diff(ObjectKind::kRoute, d, s.after);
    } else if (action == PlanAction::kChange) {
      s.fields = Diff(ObjectKind::kRoute, before, s.after);
    }
    return s;
  };

  std::vector<PlanStep> backend_writes, undefault, route_removes, route_adds, route_changes,
      backend_removes, kept;
  // The file's default first: it takes the default from any other backend.
  std::vector<const Backend*> order;
  for (const Backend& b : file.backends) {
    if (b.name == file_default)
      order.insert(order.begin(), &b);
    else
      order.push_back(&b);
  }
  for (const Backend* b : order) {
    auto it = have_b.find(b->name);
    if (it == have_b.end()) {
      backend_writes.push_back(backend_step(PlanAction::kAdd, *b, Json()));
    } else if (ToJson(*it->second) != ToJson(*b)) {
      backend_writes.push_back(backend_step(PlanAction::kChange, *b, ToJson(*it->second)));
    }
  }
  const Backend* removed_default = nullptr;
  for (const Backend& b : current.backends) {
    if (want_b.count(b.name)) continue;
    if (prune == Prune::kYes) {
      if (b.is_default)
        removed_default = &b;
      else
        backend_removes.push_back(backend_step(PlanAction::kRemove, b, ToJson(b)));
    } else if (b.is_default && !file_default.empty()) {
      Backend now = b;
      now.is_default = false;
      undefault.push_back(backend_step(PlanAction::kChange, now, ToJson(b)));
    } else {
      kept.push_back(backend_step(PlanAction::kKeep, b, ToJson(b)));
    }
  }
  // The default goes last: the store refuses to remove it while others exist.
  if (removed_default != nullptr) {
    backend_removes.push_back(
        backend_step(PlanAction::kRemove, *removed_default, ToJson(*removed_default)));
  }
  for (const Route& r : current.routes) {
    if (want_r.count(r.name)) continue;
    if (prune == Prune::kYes)
      route_removes.push_back(route_step(PlanAction::kRemove, r, ToJson(r)));
    else
      kept.push_back(route_step(PlanAction::kKeep, r, ToJson(r)));
  }
  for (const Route& r : file.routes) {
    auto it = have_r.find(r.name);
    if (it == have_r.end()) {
      route_adds.push_back(route_step(PlanAction::kAdd, r, Json()));
    } else if (ToJson(*it->second) != ToJson(r)) {
      route_changes.push_back(route_step(PlanAction::kChange, r, ToJson(*it->second)));
    }
  }
  for (auto* part : {&backend_writes, &undefault, &route_removes, &route_adds, &route_changes,
                     &backend_removes, &kept}) {
    for (PlanStep& s : *part) {
      switch (s.action) {
        case PlanAction::kAdd:
          ++plan.adds;
          break;
        case PlanAction::kChange:
          ++plan.changes;
          break;
        case PlanAction::kRemove:
          ++plan.removes;
          break;
        case PlanAction::kKeep:
          ++plan.kept;
          break;
      }
      plan.steps.push_back(std::move(s));
    }
  }
  return plan;
}

std::string FormatPlan(const ApplyPlan& plan) {
  std::string out;
  for (const PlanStep& s : plan.steps) {
    std::string line =
        std::string(PlanActionName(s.action)) + " " + ObjectKindName(s.kind) + " " + s.name;
    if (s.action == PlanAction::kKeep) {
      line += " (not in file; --prune removes)";
    } else if (s.action == PlanAction::kAdd || s.action == PlanAction::kChange) {
      std::string fields;
      for (const FieldChange& f : s.fields) {
        if (f.field == "name") continue;
        fields += fields.empty() ? ": " : ", ";
        fields += f.field + " ";
        fields +=
            s.action == PlanAction::kAdd ? Show(f.after) : Show(f.before) + " → " + Show(f.after);
      }
      line += fields;
    }
    out += line + "\n";
  }
  return out;
}

Json PlanJson(const ApplyPlan& plan) {
  Json arr = Json::array();
  for (const PlanStep& s : plan.steps) {
    Json fields = Json::array();
    for (const FieldChange& f : s.fields) {
      if (f.field == "name") continue;
      fields.push_back({{"field", f.field}, {"before", f.before}, {"after", f.after}});
    }
    arr.push_back({{"action", PlanActionName(s.action)},
                   {"kind", ObjectKindName(s.kind)},
                   {"name", s.name},
                   {"before", s.before},
                   {"after", s.after},
                   {"fields", fields}});
  }
  return arr;
}

}  // namespace strangler
