// Internal to the CLI: how the command files (cli_backend.cc, cli_route.cc,
// cli_explain.cc, cli_ramp.cc, cli_diff.cc, cli.cc) share the parsed global
// options and hand the chosen command back to RunCli. Not thread-safe; one
// CliContext per RunCli call.
#pragma once

#include <functional>
#include <memory>
#include <ostream>
#include <string>

#include <CLI/CLI.hpp>

#include "base/status.h"
#include "store/store.h"

namespace strangler {

struct CliContext {
  // Raw global options as parsed; resolved by RunCli before the command runs.
  std::string db_flag;
  std::string actor_flag;
  std::string reason;

  std::string db_path;  // resolved
  std::string actor;    // resolved

  std::ostream* out = nullptr;
  std::ostream* err = nullptr;

  // Set by the leaf subcommand's callback during parsing; run after parsing
  // succeeded. Returns the command's Status.
  std::function<Status()> action;

  ChangeContext change() const { return ChangeContext{actor, reason}; }
  // Opens the store at db_path; one that does not exist yet is created for
  // kWrite. A command that only reads refuses (kRead) rather than create an
  // empty store and report that it has nothing, which an operator in the
  // wrong directory would take for a router without rules.
  enum class Access { kWrite, kRead };
  Result<std::unique_ptr<Store>> OpenStore(Access access = Access::kWrite) const;
};

// Each adds its subcommands to `app`; `ctx` must outlive `app`'s parse.
void RegisterBackendCommands(CLI::App& app, CliContext& ctx);
void RegisterRouteCommands(CLI::App& app, CliContext& ctx);
void RegisterExplainCommands(CLI::App& app, CliContext& ctx);  // explain, history
void RegisterServeCommand(CLI::App& app, CliContext& ctx);
void RegisterRampCommands(CLI::App& app, CliContext& ctx);  // ramp, ramp list|pause|resume|abort
void RegisterDiffCommand(CLI::App& app, CliContext& ctx);
void RegisterTokenCommands(CLI::App& app, CliContext& ctx);  // token add|list|rm
void RegisterStatusCommand(CLI::App& app, CliContext& ctx);

}  // namespace strangler
