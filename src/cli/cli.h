// The command-line interface: `strangler <command> ...`. RunCli parses argv
// with CLI11, runs one command against the store (or starts `serve`) and
// returns the process exit code: 0 success, 1 failed operation, 2 usage error.
// Errors are one line on stderr: "strangler: <what was wrong>; <what to do>".
//
// The pure helpers below (option merging, formatting) are declared here so
// they can be tested without a store or a terminal. Nothing in the data plane
// depends on this file.
#pragma once

#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/status.h"
#include "rules/route_table.h"
#include "rules/rules.h"
#include "control/explain.h"
#include "store/store.h"

namespace strangler {

inline constexpr const char* kVersion = "0.1.0";

int RunCli(int argc, char** argv);
// Same, with the arguments after the program name and explicit streams
// (used by tests). Reads the environment for the --db/--actor defaults.
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

// --- global option defaults ------------------------------------------------

// --db, else $STRANGLER_DB, else ./strangler.db. Null or empty env = unset.
std::string ResolveDbPath(const std::string& flag, const char* env_db);
// --actor, else $STRANGLER_ACTOR, else $USER, else "unknown".
// --actor, else $STRANGLER_ACTOR, else $USER, else the login name of the
// user the process runs as (systemd units and containers often set no
// $USER), else "unknown".
std::string ResolveActor(const std::string& flag, const char* env_actor, const char* env_user,
                         const char* login_name);
// --listen as given, with the short forms filled in: ":8080" is every
// interface ("0.0.0.0:8080", asked for explicitly), "8080" the loopback
// default host ("127.0.0.1:8080").
std::string ExpandListen(const std::string& listen);

// --- errors ----------------------------------------------------------------

// kOk -> 0, kUsage -> 2, anything else -> 1.
int ExitCode(const Status& s);

// --- option merging (add starts from defaults, set from the stored object) --

// What `backend add|set` was given. Unset fields leave the object alone.
struct BackendFlags {
  std::vector<std::string> urls;  // empty = keep
  bool make_default = false;
  std::optional<int> timeout_ms;
  std::optional<int> connect_timeout_ms;
  std::optional<int> max_conns;
  std::optional<int> max_queue;
  std::optional<std::string> queue_timeout;  // a duration: "5s", "500ms"
  std::optional<int> reuse_quiet_ms;
  std::optional<int> eject_after;
  std::optional<std::string> eject_for;  // a duration
  std::optional<std::string> health_path;  // "" turns checks off
  std::optional<std::string> health_every;  // a duration
  std::optional<std::string> ca_file;       // "" = the system's CAs again
  std::optional<bool> tls_insecure;         // --tls-insecure (true), --tls-verify (false)

  bool changes_nothing() const {
    return urls.empty() && !make_default && !timeout_ms && !connect_timeout_ms && !max_conns &&
           !max_queue && !queue_timeout && !reuse_quiet_ms && !eject_after && !eject_for &&
           !health_path && !health_every && !ca_file && !tls_insecure;
  }
};
// Merges flags onto *b and validates the result (usage error when invalid).
Status ApplyBackendFlags(const BackendFlags& f, Backend* b);

// What `route add|set` was given. An optional string set to "" clears the
// field (path, methods, else, sticky, salt); a given list replaces the stored
// list; clear_* empties it first.
struct RouteFlags {
  std::optional<std::string> to;
  std::optional<std::string> else_backend;
  std::optional<std::string> path;
  std::optional<std::string> methods;  // comma-separated
  std::vector<std::string> headers;
  std::vector<std::string> query;
  std::vector<std::string> cookies;
  bool clear_headers = false;
  bool clear_query = false;
  bool clear_cookies = false;
  std::optional<std::string> percent;
  std::optional<std::string> sticky;
  std::optional<std::string> salt;
  std::optional<int> priority;
  std::optional<bool> enabled;
  std::optional<bool> fallback;         // --fallback / --no-fallback
  std::optional<bool> fallback_on_5xx;  // --fallback-on-5xx (implies --fallback)
  std::optional<std::string> mirror;    // --mirror B; "" (or --no-mirror) clears every mirror option
  std::optional<std::string> mirror_percent;
  std::optional<bool> mirror_writes;
  std::vector<std::string> compare_headers;  // replaces the list when given
  std::vector<std::string> ignore_fields;
  bool clear_compare_headers = false;
  bool clear_ignore_fields = false;
  std::optional<int> keep_diffs;
};
// Merges flags onto *r, parsing and validating every given value; returns a
// usage error naming the option when one is bad. On error *r is unchanged.
Status ApplyRouteFlags(const RouteFlags& f, Route* r);

// "get,POST" -> {"GET", "POST"}; "" -> {}. Usage error on a bad token.
Result<std::vector<std::string>> ParseMethodList(std::string_view text);

// --- explain ----------------------------------------------------------------

std::string FormatExplanation(const Json& j);

// --- human output ---------------------------------------------------------

// Left-aligned columns separated by two spaces; the last column is not padded.
std::string FormatTable(const std::vector<std::string>& header,
                        const std::vector<std::vector<std::string>>& rows);
// What running serves report of backends' instances: (serve id, load), as
// Store::ReadInstanceLoad returns them.
using LoadRows = std::vector<std::pair<std::string, InstanceLoad>>;
// One row per backend; IN-ROTATION counts the instances no running serve
// reports out (ejected or down by checks), "-" when no serve reports it.
std::string BackendTable(const std::vector<Backend>& backends, const LoadRows& load);
std::string RoutesTable(const std::vector<Route>& routes);
// "/api/orders GET,POST header:X-Beta=1" or "*" when the route matches all.
std::string MatchSummary(const Route& r);
// "30% sticky header:X-User-Id" style split summary, "" at 100 % w/o sticky.
std::string SplitSummary(const Route& r);
// Changed fields between two JSON objects: "percent 30→50, to a→b";
// "created" / "removed" when one side is null.
std::string ChangeSummary(const Json& before, const Json& after);
std::string HistoryTable(const std::vector<ChangeRow>& rows);
// The backend's settings, then its load: one row per instance per serve, or
// a line saying that no running serve reported it.
std::string DescribeBackend(const Backend& b, const LoadRows& load);
// [{"serve", "instance", "max_conns", "open", "idle", "in_use", "queued",
//   "queue_waits", "queue_503", "connect_failures", and the health fields}]
Json LoadJson(const LoadRows& load);
std::string DescribeRoute(const Route& r);

// --- ramps and mirror diffs ------------------------------------------------

// "to 50% by 10% every 30s, error budget 5.00% 5xx, min 20 requests, on breach
// rollback" from a ramp's JSON (ToJson(Ramp), as history rows hold it).
std::string RampPlanSummary(const Json& ramp);

// ROUTE STATE PERCENT STEP EVERY NEXT LAST-WINDOW NOTE; NEXT relative to now_ms.
std::string RampsTable(const std::vector<RampView>& ramps, int64_t now_ms);

// One stored mismatch for `strangler diff`: a head line (time, route, request
// id, method, target) and one indented line per difference:
// "  $.items[0].price: legacy 10 -> new 12", "  status: 200 -> 500",
// "  error: ..." for a copy that got no answer.
std::string FormatMismatch(const DiffRecord& d);

}  // namespace strangler
