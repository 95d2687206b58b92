#include "control/api.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/stat.h>

#include <httplib.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iterator>
#include <optional>

#include "base/text.h"
#include "control/explain.h"
#include "rules/rule_file.h"
#include "rules/rules.h"
#include "store/diff_report.h"
#include "store/store.h"

namespace strangler {
namespace {

// No rule-file object nests deeper than a few levels; a body nesting deeper
// than this is refused before it is parsed (see JsonNestingWithin).
constexpr int kMaxBodyDepth = 32;

void Answer(httplib::Response& res, int status, const Json& body) {
  res.status = status;
  // (Text from before the store refused non-UTF-8 reasons is replaced, not thrown on.)
  res.set_content(body.dump(2, ' ', false, Json::error_handler_t::replace) + "\n",
                  "application/json");
}

void Error(httplib::Response& res, int status, const std::string& message) {
  Answer(res, status, Json{{"error", message}});
}

// A store error as the API answers it: the CLI's message, its kind as the
// status. `missing` is the status for kNotFound: 404 when the object named
// by the URL is missing, 400 when the body names something missing.
void StoreError(httplib::Response& res, const Status& st, int missing = 404) {
  int status = 500;
  switch (st.code()) {
    case Code::kUsage:
    case Code::kInvalid:
      status = 400;
      break;
    case Code::kNotFound:
      status = missing;
      break;
    case Code::kConflict:
      status = 409;
      break;
    default:
      break;
  }
  Error(res, status, st.message());
}

// The body as a JSON object, or an error answered (nullopt).
std::optional<Json> BodyObject(const httplib::Request& req, httplib::Response& res) {
  if (!JsonNestingWithin(req.body, kMaxBodyDepth)) {
    Error(res, 400, "the body nests deeper than " + std::to_string(kMaxBodyDepth) + " levels");
    return std::nullopt;
  }
  Json body = Json::parse(req.body, nullptr, false);
  if (body.is_discarded()) {
    Error(res, 400, "the body is not JSON");
    return std::nullopt;
  }
  if (!body.is_object()) {
    Error(res, 400, "the body must be a JSON object");
    return std::nullopt;
  }
  if (body.contains("reason") && !body["reason"].is_string()) {
    Error(res, 400, "\"reason\" must be a string");
    return std::nullopt;
  }
  return body;
}

// Who and why, for the history row: the token's name, and the reason from
// X-Reason or the body's "reason" (taken out of the body).
ChangeContext Change(const httplib::Request& req, const TokenEntry& caller, Json* body) {
  ChangeContext ctx;
  ctx.actor = caller.name;
  if (body != nullptr && body->contains("reason")) {
    if ((*body)["reason"].is_string()) ctx.reason = (*body)["reason"].get<std::string>();
    body->erase("reason");
  }
  if (req.has_header("X-Reason")) ctx.reason = req.get_header_value("X-Reason");
  return ctx;
}

// Who and why for a write whose body may only give a reason (DELETE,
// revert, ramp pause|resume|abort): no body, or {"reason": "..."}. False
// with a 400 answered otherwise.
bool ReasonOnly(const httplib::Request& req, httplib::Response& res, const TokenEntry& caller,
                ChangeContext* ctx) {
  Json body = Json::object();
  if (!req.body.empty()) {
    std::optional<Json> given = BodyObject(req, res);
    if (!given) return false;
    body = std::move(*given);
  }
  *ctx = Change(req, caller, &body);
  if (!body.empty()) {
    Error(res, 400,
          "unknown field '" + body.begin().key() + "': this request takes only \"reason\"");
    return false;
  }
  return true;
}

// The object a PUT or PATCH body describes, named by the URL: a name in the
// body must be the same.
bool NameFromPath(Json* body, const std::string& name, httplib::Response& res) {
  if (body->contains("name") && (*body)["name"] != name) {
    Error(res, 400,
          "the body names '" + (*body)["name"].dump() + "' but the path names '" + name +
              "' (a rename is a DELETE and a PUT)");
    return false;
  }
  (*body)["name"] = name;
  return true;
}

// Whether a Host header names an IP address or localhost (with or without a
// port): "127.0.0.1:9901", "[::1]:9901", "localhost", not "admin.example".
bool AddressedByIp(const std::string& host) {
  std::string h = host;
  if (!h.empty() && h[0] == '[') {
    const size_t close = h.find(']');
    if (close == std::string::npos) return false;
    const std::string rest = h.substr(close + 1);
    if (!rest.empty() &&
        (rest[0] != ':' || rest.find_first_not_of("0123456789", 1) != std::string::npos)) {
      return false;
    }
    in6_addr a6{};
    return inet_pton(AF_INET6, h.substr(1, close - 1).c_str(), &a6) == 1;
  }
  const size_t colon = h.rfind(':');
  if (colon != std::string::npos) {
    if (h.find_first_not_of("0123456789", colon + 1) != std::string::npos) return false;
    h = h.substr(0, colon);
  }
  if (h == "localhost") return true;
  in_addr a4{};
  return inet_pton(AF_INET, h.c_str(), &a4) == 1;
}

// ?limit=N (1..10000) into *limit when given; false with a 400 answered
// when bad.
bool LimitParam(const httplib::Request& req, httplib::Response& res, int* limit) {
  if (!req.has_param("limit")) return true;
  const std::string v = req.get_param_value("limit");
  char* end = nullptr;
  long n = std::strtol(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0' || n < 1 || n > 10000) {
    Error(res, 400, "bad limit '" + v + "': 1..10000");
    return false;
  }
  *limit = static_cast<int>(n);
  return true;
}

// A ramp spec from POST /api/v1/ramps/NAME's body: the options of `strangler
// ramp NAME` by name (to, step, every, max_error_rate, min_requests,
// on_breach); numbers or strings.
Result<RampSpec> RampSpecFromJson(const std::string& route, const Json& body) {
  static const char* const kFields[] = {"to",           "step",     "every", "max_error_rate",
                                        "min_requests", "on_breach"};
  RampFields f;
  f.route = route;
  for (const auto& [key, value] : body.items()) {
    if (std::find(std::begin(kFields), std::end(kFields), key) == std::end(kFields)) {
      return Status::Usage("unknown field '" + key +
                           "' in a ramp (known: to, step, every, max_error_rate, "
                           "min_requests, on_breach, reason)");
    }
    if (key == "min_requests") {
      if (!value.is_number_integer()) return Status::Usage("min_requests must be a whole number");
      f.min_requests = value.get<int64_t>();
      continue;
    }
    if (!value.is_string() && !value.is_number()) {
      return Status::Usage(key + " must be a string or a number");
    }
    std::string text = value.is_string() ? value.get<std::string>() : value.dump();
    if (key == "to") f.to = text;
    if (key == "step") f.step = text;
    if (key == "every") f.every = text;
    if (key == "max_error_rate") f.max_error_rate = text;
    if (key == "on_breach") f.on_breach = text;
  }
  return ParseRampSpec(f);
}

// The store calls that read and write one kind of object (a route, a backend).
template <typename T>
struct ObjectCalls {
  Result<T> (Store::*get)(const std::string&);
  Status (Store::*add)(const T&, const ChangeContext&);
  Status (Store::*set)(const T&, const ChangeContext&);
  Result<T> (*from_json)(const Json&);
};

// PUT (create or replace) or PATCH (change the fields given) of the object
// the URL names; the body is its rule-file object.
enum class Verb { kPut, kPatch };
template <typename T>
void WriteObject(const ObjectCalls<T>& calls, Verb verb, const httplib::Request& req,
                 httplib::Response& res, const TokenEntry& caller, Store& s) {
  std::optional<Json> body = BodyObject(req, res);
  if (!body) return;
  const std::string name = req.matches[1];
  ChangeContext ctx = Change(req, caller, &*body);
  if (!NameFromPath(&*body, name, res)) return;
  Result<T> current = (s.*calls.get)(name);
  if (!current.ok() && current.status().code() != Code::kNotFound) {
    return StoreError(res, current.status());
  }
  if (verb == Verb::kPatch) {
    if (!current.ok()) return StoreError(res, current.status());
    Json merged = ToJson(current.value());
    merged.merge_patch(*body);
    *body = merged;
  }
  Result<T> object = calls.from_json(*body);
  if (!object.ok()) return StoreError(res, object.status(), 400);
  Status st =
      current.ok() ? (s.*calls.set)(object.value(), ctx) : (s.*calls.add)(object.value(), ctx);
  if (!st.ok()) return StoreError(res, st, 400);
  Result<T> now = (s.*calls.get)(name);
  if (!now.ok()) return StoreError(res, now.status());
  Answer(res, current.ok() ? 200 : 201, ToJson(now.value()));
}

}  // namespace

ControlApi::ControlApi(std::string db_path, std::string token_file, bool public_read)
    : db_path_(std::move(db_path)), token_file_(std::move(token_file)), public_read_(public_read) {}

Result<std::unique_ptr<ControlApi>> ControlApi::Make(std::string db_path, std::string token_file,
                                                     bool public_read) {
  std::unique_ptr<ControlApi> api(
      new ControlApi(std::move(db_path), std::move(token_file), public_read));
  if (!api->token_file_.empty()) {
    std::lock_guard<std::mutex> lock(api->mu_);
    if (Status st = api->RefreshTokens(); !st.ok()) return st;
  }
  return api;
}

void ControlApi::SetLive(std::function<Json()> live) {
  std::lock_guard<std::mutex> lock(live_mu_);
  live_ = std::move(live);
}

Status ControlApi::RefreshTokens() {
  if (token_file_.empty()) return Status::Ok();  // public reads only
  struct stat st {};
  if (stat(token_file_.c_str(), &st) != 0) {
    return Status::Io("cannot read --admin-token-file " + token_file_);
  }
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (mtime == tokens_mtime_ns_ && st.st_size == tokens_size_) return Status::Ok();
  auto read = ReadTokenFile(token_file_);
  if (!read.ok()) return read.status();
  tokens_ = std::move(read.value());
  tokens_mtime_ns_ = mtime;
  tokens_size_ = st.st_size;
  return Status::Ok();
}

bool ControlApi::Limited(const std::string& client, int* retry_after_s) {
  auto it = failures_.find(client);
  if (it == failures_.end() || it->second.count < kMaxFailures) return false;
  auto left = kFailureWindow - (std::chrono::steady_clock::now() - it->second.since);
  if (left <= std::chrono::steady_clock::duration::zero()) {
    failures_.erase(it);
    return false;
  }
  *retry_after_s = static_cast<int>(std::chrono::ceil<std::chrono::seconds>(left).count());
  return true;
}

void ControlApi::Failed(const std::string& client) {
  const auto now = std::chrono::steady_clock::now();
  if (failures_.size() > 4096) {  // bounded: windows that ended go first
    for (auto it = failures_.begin(); it != failures_.end();) {
      it = now - it->second.since > kFailureWindow ? failures_.erase(it) : std::next(it);
    }
  }
  Failures& f = failures_[client];
  if (f.count == 0 || now - f.since > kFailureWindow) f = Failures{0, now};
  ++f.count;
}

bool ControlApi::Authorize(const httplib::Request& req, httplib::Response& res, Need need,
                           TokenEntry* caller) {
  if (token_file_.empty() && !public_read_) {
    Error(res, 404, "the control API is off: start serve with --admin-token-file FILE");
    return false;
  }
  const std::string auth = req.get_header_value("Authorization");
  if (auth.empty() && need == Need::kRead && public_read_) {
    // Only for a request addressed to the listener by IP or localhost: a
    // page of another site whose name was made to resolve to this address
    // (DNS rebinding) sends its own name as Host and gets nothing.
    if (!AddressedByIp(req.get_header_value("Host"))) {
      res.set_header("WWW-Authenticate", "Bearer");
      Error(res, 401,
            "reads without a token need the admin listener addressed by IP or localhost (Host: " +
                req.get_header_value("Host") + "); send Authorization: Bearer TOKEN");
      return false;
    }
    *caller = TokenEntry{};
    caller->role = TokenRole::kRead;
    return true;
  }
  std::lock_guard<std::mutex> lock(mu_);
  // A file that turned bad keeps the tokens read last (and says why in the log
  // of nobody: the request is answered as usual).
  (void)RefreshTokens();
  const std::string kBearer = "Bearer ";
  const TokenEntry* found = nullptr;
  if (auth.size() > kBearer.size() && auth.compare(0, kBearer.size(), kBearer) == 0) {
    found = FindToken(tokens_, std::string_view(auth).substr(kBearer.size()));
  }
  if (found == nullptr) {
    // An address that guessed wrong too often is not heard for a while. A
    // valid token still is: a token is 256 random bits, which no guessing
    // finds, so the limit only keeps floods of guesses out of the log and
    // the CPU, and must not let anyone on the same address lock the
    // operators out. Only a wrong token counts: a request without one
    // guesses nothing (the dashboard asks so before it has a token).
    int retry_after = 0;
    if (Limited(req.remote_addr, &retry_after)) {
      res.set_header("Retry-After", std::to_string(retry_after));
      Error(res, 429,
            "too many failed attempts from " + req.remote_addr + "; try again in " +
                std::to_string(retry_after) + " s");
      return false;
    }
    if (!auth.empty()) Failed(req.remote_addr);
    res.set_header("WWW-Authenticate", "Bearer");
    Error(res, 401, auth.empty() ? "no token: send Authorization: Bearer TOKEN" : "unknown token");
    return false;
  }
  if (need == Need::kWrite && found->role != TokenRole::kWrite) {
    Error(res, 403, "token '" + found->name + "' may only read");
    return false;
  }
  *caller = *found;
  return true;
}

void ControlApi::Register(httplib::Server& server) {
  using Req = const httplib::Request&;
  using Res = httplib::Response&;
  // Every request with a body here is a write: its token is checked before
  // cpp-httplib reads the body (a pre-routing handler runs after the head),
  // so that nobody without a write token can make serve hold one.
  server.set_pre_routing_handler([this](Req req, Res res) {
    // cpp-httplib caps a body with a Content-Length (set_payload_max_length
    // in admin.cc) but not a chunked one: none is taken here (a rule file,
    // the largest body, is sent whole).
    if (req.has_header("Transfer-Encoding")) {
      res.set_header("Connection", "close");
      Error(res, 411, "send the body with a Content-Length (chunked bodies are not taken here)");
      return httplib::Server::HandlerResponse::Handled;
    }
    const bool writes = req.method == "POST" || req.method == "PUT" || req.method == "PATCH" ||
                        req.method == "DELETE";
    if (!writes || req.path.rfind("/api/v1/", 0) != 0) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    TokenEntry caller;
    if (Authorize(req, res, Need::kWrite, &caller)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    res.set_header("Connection", "close");  // its body is never read
    return httplib::Server::HandlerResponse::Handled;
  });
  // A handler with the caller authorized and the store open.
  using Body = std::function<void(Req, Res, const TokenEntry&, Store&)>;
  auto with = [this](Need need, Body body) {
    return [this, need, body](Req req, Res res) {
      TokenEntry caller;
      if (!Authorize(req, res, need, &caller)) return;
      auto store = Store::Open(db_path_);
      if (!store.ok()) return Error(res, 503, store.status().message());
      body(req, res, caller, *store.value());
    };
  };

  server.Get("/api/v1/backends", with(Need::kRead, [](Req, Res res, const TokenEntry&, Store& s) {
               auto list = s.ListBackends();
               if (!list.ok()) return StoreError(res, list.status());
               Json arr = Json::array();
               for (const Backend& b : list.value()) arr.push_back(ToJson(b));
               Answer(res, 200, arr);
             }));
  server.Get("/api/v1/routes", with(Need::kRead, [](Req, Res res, const TokenEntry&, Store& s) {
               auto list = s.ListRoutes();
               if (!list.ok()) return StoreError(res, list.status());
               Json arr = Json::array();
               for (const Route& r : list.value()) arr.push_back(ToJson(r));
               Answer(res, 200, arr);
             }));
  server.Get(R"(/api/v1/routes/([^/]+))",
             with(Need::kRead, [](Req req, Res res, const TokenEntry&, Store& s) {
               auto r = s.GetRoute(req.matches[1]);
               if (!r.ok()) return StoreError(res, r.status());
               Answer(res, 200, ToJson(r.value()));
             }));
  server.Get(R"(/api/v1/backends/([^/]+))",
             with(Need::kRead, [](Req req, Res res, const TokenEntry&, Store& s) {
               auto b = s.GetBackend(req.matches[1]);
               if (!b.ok()) return StoreError(res, b.status());
               Answer(res, 200, ToJson(b.value()));
             }));
  server.Get("/api/v1/ramps", with(Need::kRead, [](Req, Res res, const TokenEntry&, Store& s) {
               auto views = RampViews(s);
               if (!views.ok()) return StoreError(res, views.status());
               Answer(res, 200, RampsJson(views.value()));
             }));
  server.Get("/api/v1/whoami",
             with(Need::kRead, [](Req, Res res, const TokenEntry& caller, Store&) {
               if (caller.name.empty()) {
                 return Answer(res, 200, Json{{"name", nullptr}, {"role", "public"}});
               }
               Answer(res, 200,
                      Json{{"name", caller.name},
                           {"role", caller.role == TokenRole::kWrite ? "write" : "read"}});
             }));
  server.Get("/api/v1/live", with(Need::kRead, [this](Req, Res res, const TokenEntry&, Store& s) {
               Json live;
               {
                 std::lock_guard<std::mutex> lock(live_mu_);
                 if (!live_) return Error(res, 503, "serve is starting");
                 live = live_();
               }
               auto views = RampViews(s);
               if (!views.ok()) return StoreError(res, views.status());
               Json ramps = RampsJson(views.value());
               for (Json& route : live["routes"]) {
                 route["ramp"] = nullptr;
                 for (const Json& ramp : ramps) {
                   if (ramp["route"] == route["route"]) route["ramp"] = ramp;
                 }
               }
               Answer(res, 200, live);
             }));
  server.Get("/api/v1/diff", with(Need::kRead, [](Req req, Res res, const TokenEntry&, Store& s) {
               int limit = 10;
               if (!LimitParam(req, res, &limit)) return;
               auto report = LoadDiffReport(s, req.get_param_value("route"), limit);
               if (!report.ok()) return StoreError(res, report.status());
               Answer(res, 200, DiffReportJson(report.value()));
             }));
  server.Get("/api/v1/explain",
             with(Need::kRead, [](Req req, Res res, const TokenEntry&, Store& s) {
               std::vector<std::string> positionals;
               if (req.has_param("method")) positionals.push_back(req.get_param_value("method"));
               positionals.push_back(req.get_param_value("path"));
               auto target = ParseExplainTarget(positionals);
               if (!target.ok()) return StoreError(res, target.status());
               ExplainQuery q;
               q.target = std::move(target).value();
               for (size_t i = 0; i < req.get_param_value_count("header"); ++i) {
                 auto h = ParseHeaderArg(req.get_param_value("header", i));
                 if (!h.ok()) return StoreError(res, h.status());
                 q.headers.push_back(std::move(h).value());
               }
               if (req.has_param("ip")) q.ip = req.get_param_value("ip");
               auto outcome = ExplainStored(s, q);
               if (!outcome.ok()) return StoreError(res, outcome.status());
               Json j = outcome->json;
               j["split"] = outcome->split.empty() ? Json() : Json(outcome->split);
               Answer(res, 200, j);
             }));
  server.Get(
      "/api/v1/history", with(Need::kRead, [](Req req, Res res, const TokenEntry&, Store& s) {
        int limit = 20;
        if (!LimitParam(req, res, &limit)) return;
        // object=NAME (every kind by that name, as `history NAME`) or
        // object=KIND/NAME (route/orders: that object only).
        const std::string object = req.get_param_value("object");
        const size_t slash = object.find('/');
        auto rows = slash == std::string::npos
                        ? s.History(object, limit)
                        : s.History(object.substr(slash + 1), limit, object.substr(0, slash));
        if (!rows.ok()) return StoreError(res, rows.status());
        Answer(res, 200, ChangeRowsJson(rows.value()));
      }));

  // PUT (create or replace) and PATCH (change the fields given) of a route
  // or a backend: the body is its rule-file object.
  auto route_calls =
      ObjectCalls<Route>{&Store::GetRoute, &Store::AddRoute, &Store::SetRoute, &RouteFromJson};
  auto backend_calls = ObjectCalls<Backend>{&Store::GetBackend, &Store::AddBackend,
                                            &Store::SetBackend, &BackendFromJson};
  auto route_write = [&](Verb verb) {
    return with(Need::kWrite,
                [verb, route_calls](Req req, Res res, const TokenEntry& caller, Store& s) {
                  WriteObject(route_calls, verb, req, res, caller, s);
                });
  };
  auto backend_write = [&](Verb verb) {
    return with(Need::kWrite,
                [verb, backend_calls](Req req, Res res, const TokenEntry& caller, Store& s) {
                  WriteObject(backend_calls, verb, req, res, caller, s);
                });
  };
  server.Put(R"(/api/v1/routes/([^/]+))", route_write(Verb::kPut));
  server.Patch(R"(/api/v1/routes/([^/]+))", route_write(Verb::kPatch));
  server.Put(R"(/api/v1/backends/([^/]+))", backend_write(Verb::kPut));
  server.Patch(R"(/api/v1/backends/([^/]+))", backend_write(Verb::kPatch));
  // DELETE of a route or a backend, as `route rm` and `backend rm`.
  using RemoveCall = Status (Store::*)(const std::string&, const ChangeContext&);
  const std::pair<const char*, RemoveCall> removals[] = {{"routes", &Store::RemoveRoute},
                                                         {"backends", &Store::RemoveBackend}};
  for (const auto& [plural, call] : removals) {
    const std::string kind = std::string(plural).substr(0, std::strlen(plural) - 1);
    RemoveCall c = call;
    server.Delete(
        "/api/v1/" + std::string(plural) + "/([^/]+)",
        with(Need::kWrite, [c, kind](Req req, Res res, const TokenEntry& caller, Store& s) {
          const std::string name = req.matches[1];
          ChangeContext ctx;
          if (!ReasonOnly(req, res, caller, &ctx)) return;
          if (Status st = (s.*c)(name, ctx); !st.ok()) {
            return StoreError(res, st);
          }
          Answer(res, 200, Json{{"removed", kind + "/" + name}});
        }));
  }
  server.Post(R"(/api/v1/revert/(\d{1,18}))",
              with(Need::kWrite, [](Req req, Res res, const TokenEntry& caller, Store& s) {
                const int64_t id = std::strtoll(req.matches[1].str().c_str(), nullptr, 10);
                ChangeContext ctx;
                if (!ReasonOnly(req, res, caller, &ctx)) return;
                auto rows = s.Revert(id, ctx);
                if (!rows.ok()) return StoreError(res, rows.status());
                Answer(res, 200, ChangeRowsJson(rows.value()));
              }));
  // The whole store as a rule file, as `strangler export` prints it.
  server.Get("/api/v1/export", with(Need::kRead, [](Req, Res res, const TokenEntry&, Store& s) {
               auto rules = s.Load();
               if (!rules.ok()) return StoreError(res, rules.status());
               res.status = 200;
               res.set_content(ExportRuleFile(rules.value()), "application/json");
             }));
  // Make the store match a rule file (the body), as `strangler apply`:
  // ?dry_run=1 plans only, ?prune=1 removes what the file lacks.
  server.Post(
      "/api/v1/apply", with(Need::kWrite, [](Req req, Res res, const TokenEntry& caller, Store& s) {
        std::vector<std::string> problems;
        RuleFile file = ParseRuleFile(req.body, &problems);
        if (!problems.empty()) {
          Json out = {{"error", "the rule file is invalid (" + std::to_string(problems.size()) +
                                    (problems.size() == 1 ? " problem" : " problems") +
                                    "); nothing was applied"},
                      {"problems", problems}};
          return Answer(res, 400, out);
        }
        const Prune prune = req.get_param_value("prune") == "1" ? Prune::kYes : Prune::kNo;
        if (req.get_param_value("dry_run") == "1") {
          auto rules = s.Load();
          if (!rules.ok()) return StoreError(res, rules.status());
          ApplyPlan plan = PlanApply(rules.value(), file, prune);
          return Answer(res, 200, Json{{"dry_run", true}, {"plan", PlanJson(plan)}});
        }
        ChangeContext ctx = Change(req, caller, nullptr);
        if (ctx.reason.empty()) ctx.reason = "apply (control API)";
        auto result = s.ApplyRuleFile(file, prune, ctx);
        if (!result.ok()) return StoreError(res, result.status(), 400);
        auto version = s.RulesetVersion();
        Answer(res, 200,
               Json{{"dry_run", false},
                    {"plan", PlanJson(result->plan)},
                    {"recorded", ChangeRowsJson(result->recorded)},
                    {"ruleset", version.ok() ? Json(version.value()) : Json()}});
      }));
  // Forget a route's mirror comparisons, as `strangler diff --reset ROUTE`.
  server.Post(R"(/api/v1/diff/([^/]+)/reset)",
              with(Need::kWrite, [](Req req, Res res, const TokenEntry& caller, Store& s) {
                const std::string route = req.matches[1];
                ChangeContext ctx;
                if (!ReasonOnly(req, res, caller, &ctx)) return;
                if (Status st = s.ResetDiffs(route, ctx); !st.ok()) return StoreError(res, st);
                Answer(res, 200, Json{{"reset", route}});
              }));
  // Starts (or replaces) a route's ramp, as `strangler ramp NAME --to ...`.
  server.Post(R"(/api/v1/ramps/([^/]+))",
              with(Need::kWrite, [](Req req, Res res, const TokenEntry& caller, Store& s) {
                std::optional<Json> body = BodyObject(req, res);
                if (!body) return;
                const std::string route = req.matches[1];
                ChangeContext ctx = Change(req, caller, &*body);
                auto spec = RampSpecFromJson(route, *body);
                if (!spec.ok()) return StoreError(res, spec.status());
                if (auto r = s.GetRoute(route); !r.ok()) return StoreError(res, r.status());
                if (Status st = s.StartRamp(spec.value(), ctx); !st.ok()) {
                  return StoreError(res, st, 400);
                }
                auto views = RampViews(s);
                if (!views.ok()) return StoreError(res, views.status());
                for (const Json& ramp : RampsJson(views.value())) {
                  if (ramp["route"] == route) return Answer(res, 201, ramp);
                }
                Answer(res, 201, Json{{"ramp", route}});
              }));
  using RampCall = Status (Store::*)(const std::string&, const ChangeContext&);
  const std::pair<const char*, RampCall> ramp_calls[] = {
      {"pause", &Store::PauseRamp}, {"resume", &Store::ResumeRamp}, {"abort", &Store::AbortRamp}};
  for (const auto& [verb, call] : ramp_calls) {
    RampCall c = call;
    server.Post(std::string(R"(/api/v1/ramps/([^/]+)/)") + verb,
                with(Need::kWrite, [c](Req req, Res res, const TokenEntry& caller, Store& s) {
                  const std::string route = req.matches[1];
                  ChangeContext ctx;
                  if (!ReasonOnly(req, res, caller, &ctx)) return;
                  if (Status st = (s.*c)(route, ctx); !st.ok()) {
                    return StoreError(res, st);
                  }
                  Answer(res, 200, Json{{"ramp", route}});
                }));
  }
}

}  // namespace strangler
