// RunCli: builds the CLI11 command tree, parses argv, resolves the global
// options and runs the chosen command. See cli.h for the exit-code contract.
#include "cli/cli.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "cli/cli_commands.h"
#include "control/serve.h"

namespace strangler {

// cli_audit.cc, cli_rules.cc.
void RegisterAuditCommands(CLI::App& app, CliContext& ctx);
void RegisterRuleFileCommands(CLI::App& app, CliContext& ctx);  // export, apply, revert

std::string ResolveDbPath(const std::string& flag, const char* env_db) {
  if (!flag.empty()) return flag;
  if (env_db != nullptr && env_db[0] != '\0') return env_db;
  return "./strangler.db";
}

std::string ResolveActor(const std::string& flag, const char* env_actor, const char* env_user,
                         const char* login_name) {
  if (!flag.empty()) return flag;
  if (env_actor != nullptr && env_actor[0] != '\0') return env_actor;
  if (env_user != nullptr && env_user[0] != '\0') return env_user;
  if (login_name != nullptr && login_name[0] != '\0') return login_name;
  return "unknown";
}

std::string ExpandListen(const std::string& listen) {
  if (!listen.empty() && listen[0] == ':') return "0.0.0.0" + listen;
  if (!listen.empty() && listen.find_first_not_of("0123456789") == std::string::npos) {
    return "127.0.0.1:" + listen;
  }
  return listen;
}

int ExitCode(const Status& s) {
  if (s.ok()) return 0;
  return s.code() == Code::kUsage ? 2 : 1;
}

Result<std::unique_ptr<Store>> CliContext::OpenStore(Access access) const {
  struct stat st;
  if (stat(db_path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    return Status::Usage("--db " + db_path + " is a directory; give the store's file, e.g. " +
                         db_path + "/strangler.db");
  }
  if (access == Access::kRead && stat(db_path.c_str(), &st) != 0) {
    return Status::NotFound("no store at " + db_path +
                            " (from --db, else $STRANGLER_DB, else ./strangler.db); give the "
                            "store serve uses with --db PATH or $STRANGLER_DB (nothing was "
                            "created)");
  }
  // The store's messages name the path and say what to do.
  return Store::Open(db_path);
}

namespace {

constexpr const char* kRootFooter = R"(Store:
  Every command opens the SQLite store given by --db, else $STRANGLER_DB, else
  ./strangler.db; a command that writes creates and migrates it on first use,
  one that only reads refuses a store that does not exist. Every write records
  who (--actor, else $STRANGLER_ACTOR, else $USER, else the login name) and
  why (-m/--reason) in the change history ('strangler history'). A running
  'serve' picks changes up within a second.

Quick start:
  strangler backend add legacy http://127.0.0.1:9001        # first = default
  strangler backend add orders http://127.0.0.1:9002
  strangler route add orders-v2 --to orders --path /api/orders --percent 30 \
      --sticky header:X-User-Id -m "start orders cut-over"
  strangler explain GET /api/orders/7 -H 'X-User-Id: 42'
  strangler serve --listen 127.0.0.1:8080

Exit status: 0 success, 1 failed operation, 2 usage error.
Run 'strangler COMMAND --help' for each command's options.)";

constexpr const char* kGlobalsFooter =
    "Global options (before or after the command): --db PATH, --actor NAME, -m/--reason TEXT;\n"
    "see 'strangler --help'. Exit status: 0 success, 1 failed operation, 2 usage error.";

// One line: CLI11 messages may contain newlines.
std::string OneLine(std::string s) {
  for (char& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// "strangler route add" for the deepest subcommand parsed so far.
std::string CommandPath(CLI::App& app) {
  std::string path = app.get_name();
  CLI::App* cur = &app;
  for (;;) {
    auto subs = cur->get_subcommands();
    if (subs.empty()) break;
    cur = subs.front();
    path += " " + cur->get_name();
  }
  return path;
}

// Edit distance, for suggesting the command a typo meant.
size_t Distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diag = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diag + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diag = up;
    }
  }
  return row[b.size()];
}

// "unknown command 'rout'; did you mean 'route'? ..." when the first word
// that is no option is not a command, or the word after a command group
// (one that needs a subcommand) is none of its commands; else "". CLI11
// alone says "A subcommand is required", which hides the typo.
std::string UnknownCommand(CLI::App& app, const std::vector<std::string>& args) {
  CLI::App* level = &app;
  std::string path = "strangler";
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") return "";
    if (!a.empty() && a[0] == '-') {
      // Global options that take a value as the next word.
      if (a == "--db" || a == "--actor" || a == "-m" || a == "--reason") ++i;
      continue;
    }
    std::vector<CLI::App*> subs = level->get_subcommands([](CLI::App*) { return true; });
    if (subs.empty()) return "";
    CLI::App* found = nullptr;
    for (CLI::App* sub : subs) {
      if (sub->get_name() == a) found = sub;
    }
    if (found) {
      level = found;
      path += " " + a;
      continue;
    }
    // A word that is not a subcommand may be a positional argument of a
    // command that takes one (ramp NAME ...): only groups are checked.
    if (level != &app && level->get_require_subcommand_min() == 0) return "";
    std::string best;
    size_t best_d = 3;  // suggest only close ones
    for (CLI::App* sub : subs) {
      size_t d = Distance(a, sub->get_name());
      if (d < best_d) {
        best_d = d;
        best = sub->get_name();
      }
    }
    std::string msg = "unknown command '" +
                      (path == "strangler" ? a : path.substr(sizeof("strangler")) + " " + a) + "'";
    if (!best.empty()) msg += "; did you mean '" + path + " " + best + "'?";
    return msg + " (see '" + path + " --help')";
  }
  return "";
}

bool ValidListen(const std::string& listen) {
  size_t colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= listen.size()) return false;
  std::string port = listen.substr(colon + 1);
  if (port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  return std::stoi(port) <= 65535;
}

// serve's operator log: spdlog's default logger, on stderr with UTC times.
// Process-wide state, so it is set here, at the program's edge, and nowhere
// in the rooms below. (RunServe starts its periodic flush, a thread, once it
// has blocked the stop signals.)
void UseOperatorLog() {
  if (spdlog::get("strangler")) return;
  auto console = spdlog::stderr_color_mt("strangler");
  console->set_pattern("%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ %v", spdlog::pattern_time_type::utc);
  spdlog::set_default_logger(console);
}

}  // namespace

void RegisterServeCommand(CLI::App& app, CliContext& ctx) {
  auto opts = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand(
      "serve",
      "Run the router: proxy HTTP/1.1 traffic by the rules in the store, reload them when they "
      "change, write one JSON decision line per request");
  cmd->add_option("--listen", opts->listen, "HOST:PORT to listen on")->capture_default_str();
  cmd->add_option("--log", opts->log_path, "decision log file, '-' for stdout")
      ->capture_default_str();
  cmd->add_option("--log-max-mb", opts->log_max_mb,
                  "rotate the log when it would pass this size in MiB (fractions allowed); 0 = "
                  "never")
      ->capture_default_str();
  cmd->add_option("--log-keep", opts->log_keep,
                  "rotated logs kept (decisions.1.log newest .. decisions.N.log oldest)")
      ->capture_default_str();
  cmd->add_option("--threads", opts->threads, "worker threads (0 = from the core count)")
      ->capture_default_str();
  cmd->add_option("--reload-ms", opts->reload_ms, "how often to poll the store for changes")
      ->capture_default_str();
  cmd->add_option("--max-connections", opts->max_connections, "client connections accepted at once")
      ->capture_default_str();
  cmd->add_option("--max-header-kb", opts->max_header_kb,
                  "largest request head in KiB; larger gets 431")
      ->capture_default_str();
  cmd->add_option(
         "--max-body-mb", opts->max_body_mb,
         "largest request body in MiB, 0 = no limit (bodies are streamed); larger gets 413")
      ->capture_default_str();
  cmd->add_option("--encoded-slash", opts->encoded_slash,
                  "%2F or %5C in a path: 'decode' reads it as '/' when matching routes (the "
                  "target is still forwarded as sent), 'reject' answers 400")
      ->capture_default_str();
  cmd->add_option("--upstream-idle-s", opts->upstream_idle_s,
                  "close pooled backend connections idle this many seconds")
      ->capture_default_str();
  cmd->add_option("--tunnel-idle-s", opts->tunnel_idle_s,
                  "close a WebSocket tunnel after this many seconds with no byte either way")
      ->capture_default_str();
  cmd->add_option("--drain-s", opts->drain_s,
                  "on SIGINT/SIGTERM, how long requests in flight and open tunnels may go on")
      ->capture_default_str();
  cmd->add_option("--admin", opts->admin,
                  "HOST:PORT of the admin listener (off unless given; bind it to loopback or a "
                  "private address): GET /healthz (200 while running), GET /readyz (200 once "
                  "serving, 503 while starting and while draining after SIGTERM), GET /metrics "
                  "(Prometheus text), the dashboard at GET /, and /api/v1 with "
                  "--admin-token-file; writes its URL to DB.admin for 'strangler status'");
  cmd->add_option("--admin-token-file", opts->admin_token_file,
                  "the control API's tokens (made by 'strangler token add'): /api/v1 on the admin "
                  "listener needs 'Authorization: Bearer TOKEN'; without this file it is off")
      ->type_name("FILE");
  cmd->add_flag("--admin-public-read", opts->admin_public_read,
                "/api/v1 reads (and so the dashboard) need no token when the listener is "
                "addressed by IP or localhost; writes still need a 'write' token of "
                "--admin-token-file. Only on a listener nobody untrusted reaches");
  cmd->add_option("--tls-cert", opts->tls_cert,
                  "TLS on the listener (1.2 and 1.3, ALPN http/1.1): the certificate chain, PEM, "
                  "the server's certificate first; reloaded when the file changes (no restart); "
                  "backends get X-Forwarded-Proto: https")
      ->type_name("FILE");
  cmd->add_option("--tls-key", opts->tls_key,
                  "the private key of --tls-cert, PEM (reloaded with it)")
      ->type_name("FILE");
  // Every option may come from the environment too (systemd units,
  // containers): --max-body-mb from STRANGLER_MAX_BODY_MB; a flag wins.
  for (CLI::Option* opt :
       cmd->get_options([](CLI::Option* o) { return !o->get_lnames().empty(); })) {
    const std::string& name = opt->get_lnames().front();
    if (name == "help") continue;
    std::string env = "STRANGLER_";
    for (char c : name) env.push_back(c == '-' ? '_' : static_cast<char>(std::toupper(c)));
    opt->envname(env);
  }
  cmd->footer(
      "Every option can also be set in the environment as STRANGLER_ and its name in upper case "
      "with '_' for '-' (STRANGLER_LISTEN, STRANGLER_MAX_BODY_MB, ...); a flag given wins.\n"
      "Stops on SIGINT/SIGTERM: stops accepting, finishes requests in flight (open WebSocket "
      "tunnels are closed when --drain-s is up), flushes the log and exits 0.");
  cmd->callback([&ctx, opts] {
    ctx.action = [&ctx, opts]() -> Status {
      opts->listen = ExpandListen(opts->listen);
      if (!ValidListen(opts->listen)) {
        return Status::Usage("bad --listen '" + opts->listen +
                             "'; give HOST:PORT (127.0.0.1:8080), :PORT (every interface) or "
                             "PORT (127.0.0.1)");
      }
      if (opts->threads < 0) return Status::Usage("--threads must be 0 or more");
      if (opts->reload_ms < 10 || opts->reload_ms > 60000) {
        return Status::Usage("--reload-ms must be 10..60000");
      }
      if (opts->max_connections <= 0) return Status::Usage("--max-connections must be at least 1");
      if (opts->log_path.empty()) return Status::Usage("--log needs a file path or '-'");
      if (!(opts->log_max_mb >= 0) || opts->log_max_mb > 1024 * 1024) {
        return Status::Usage("--log-max-mb must be 0 (no rotation) to 1048576");
      }
      if (opts->log_max_mb > 0 && opts->log_max_mb * 1024 * 1024 < 4096) {
        return Status::Usage("--log-max-mb must be at least 0.004 (4 KiB) when rotating");
      }
      if (opts->log_keep < 1 || opts->log_keep > 1000) {
        return Status::Usage("--log-keep must be 1..1000");
      }
      if (opts->log_max_mb > 0 && opts->log_path == "-") {
        return Status::Usage("--log-max-mb needs a log file; stdout ('--log -') cannot rotate");
      }
      if (opts->max_header_kb < 1 || opts->max_header_kb > 1024) {
        return Status::Usage("--max-header-kb must be 1..1024");
      }
      if (opts->max_body_mb < 0) return Status::Usage("--max-body-mb must be 0 or more");
      if (opts->encoded_slash != "decode" && opts->encoded_slash != "reject") {
        return Status::Usage("--encoded-slash must be 'decode' or 'reject', not '" +
                             opts->encoded_slash + "'");
      }
      if (opts->upstream_idle_s < 1 || opts->upstream_idle_s > 3600) {
        return Status::Usage("--upstream-idle-s must be 1..3600");
      }
      if (opts->tunnel_idle_s < 1 || opts->tunnel_idle_s > 86400) {
        return Status::Usage("--tunnel-idle-s must be 1..86400");
      }
      if (opts->drain_s < 0 || opts->drain_s > 3600) {
        return Status::Usage("--drain-s must be 0..3600");
      }
      if (!opts->admin.empty()) {
        opts->admin = ExpandListen(opts->admin);
        if (!ValidListen(opts->admin)) {
          return Status::Usage("bad --admin '" + opts->admin +
                               "'; give HOST:PORT (127.0.0.1:9901), :PORT or PORT (127.0.0.1)");
        }
      } else if (!opts->admin_token_file.empty()) {
        return Status::Usage(
            "--admin-token-file needs --admin HOST:PORT (the API is served there)");
      } else if (opts->admin_public_read) {
        return Status::Usage(
            "--admin-public-read needs --admin HOST:PORT (the API is served there)");
      }
      if (opts->tls_cert.empty() != opts->tls_key.empty()) {
        return Status::Usage(opts->tls_cert.empty() ? "--tls-key needs --tls-cert FILE too"
                                                    : "--tls-cert needs --tls-key FILE too");
      }
      opts->db_path = ctx.db_path;
      UseOperatorLog();
      Status served = RunServe(*opts);
      spdlog::shutdown();
      return served;
    };
  });
}

int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  CliContext ctx;
  ctx.out = &out;
  ctx.err = &err;

  CLI::App app{
      "strangler: a strangler-fig migration router. It sits in front of a legacy monolith (the "
      "default backend) and moves HTTP traffic, endpoint by endpoint, to new services by rules "
      "kept in an SQLite store that you change while it serves.",
      "strangler"};
  app.set_version_flag("--version", kVersion);
  app.fallthrough();  // global options are accepted after the subcommand too
  app.require_subcommand(1);
  app.add_option("--db", ctx.db_flag,
                 "rule store (SQLite file); default $STRANGLER_DB, else ./strangler.db")
      ->type_name("PATH");
  app.add_option("--actor", ctx.actor_flag,
                 "who makes the change; default $STRANGLER_ACTOR, else $USER, else the login name")
      ->type_name("NAME");
  app.add_option("-m,--reason", ctx.reason, "why: recorded with every write in the history")
      ->type_name("TEXT");

  RegisterBackendCommands(app, ctx);
  RegisterRouteCommands(app, ctx);
  RegisterExplainCommands(app, ctx);
  RegisterAuditCommands(app, ctx);
  RegisterRuleFileCommands(app, ctx);
  RegisterRampCommands(app, ctx);
  RegisterDiffCommand(app, ctx);
  RegisterTokenCommands(app, ctx);
  RegisterStatusCommand(app, ctx);
  RegisterServeCommand(app, ctx);
  app.footer(kRootFooter);
  // Every command's help names the global options, which CLI11 lists only
  // on the root.
  std::vector<CLI::App*> pending = app.get_subcommands([](CLI::App*) { return true; });
  while (!pending.empty()) {
    CLI::App* cmd = pending.back();
    pending.pop_back();
    std::string footer = cmd->get_footer();
    cmd->footer((footer.empty() ? "" : footer + "\n\n") + kGlobalsFooter);
    for (CLI::App* sub : cmd->get_subcommands([](CLI::App*) { return true; })) {
      pending.push_back(sub);
    }
  }

  if (std::string unknown = UnknownCommand(app, args); !unknown.empty()) {
    err << "strangler: " << unknown << "\n";
    return 2;
  }

  std::vector<const char*> argv;
  argv.push_back("strangler");
  for (const auto& a : args) argv.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(argv.size()), argv.data());
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {  // --help, --help-all, --version
      app.exit(e, out, err);
      return 0;
    }
    err << "strangler: " << OneLine(e.what()) << " (see '" << CommandPath(app) << " --help')\n";
    return 2;
  } catch (const std::exception& e) {
    err << "strangler: " << OneLine(e.what()) << "; this is a bug, please report it\n";
    return 1;
  }

  if (!ctx.action) {  // a group such as `backend` without its subcommand
    err << "strangler: missing subcommand (see '" << CommandPath(app) << " --help')\n";
    return 2;
  }
  ctx.db_path = ResolveDbPath(ctx.db_flag, std::getenv("STRANGLER_DB"));
  const passwd* pw = getpwuid(getuid());
  ctx.actor = ResolveActor(ctx.actor_flag, std::getenv("STRANGLER_ACTOR"), std::getenv("USER"),
                           pw != nullptr ? pw->pw_name : nullptr);

  Status s;
  try {
    s = ctx.action();
  } catch (const std::exception& e) {
    s = Status::Internal(std::string(e.what()) + "; this is a bug, please report it");
  }
  out.flush();
  if (!s.ok()) {
    err << "strangler: " << OneLine(s.message()) << "\n";
    return ExitCode(s);
  }
  return 0;
}

int RunCli(int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return RunCli(args, std::cout, std::cerr);
}

}  // namespace strangler
