// `strangler token add|list|rm`: the control API's bearer tokens, kept as
// NAME:ROLE:SHA256 lines in a token file that `serve --admin-token-file`
// reads. `add` prints the new token once; nothing keeps it.
#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "cli/cli.h"
#include "cli/cli_commands.h"
#include "control/tokens.h"
#include "rules/rules.h"

namespace strangler {
namespace {

constexpr const char* kTokenFooter =
    R"(A token file has one line per token, NAME:ROLE:SHA256 (the token's SHA-256 in
hex); the token itself is printed once by 'add' and stored nowhere. ROLE read
may use the GET endpoints of the control API; write may also change rules.
Give the file to 'serve --admin-token-file FILE'; serve reads it again when it
changes. The file is written whole (a temp file renamed over it), mode 0600.)";

struct TokenArgs {
  std::string name;
  std::string role = "read";
  std::string file;
};

Status Add(CliContext& ctx, const TokenArgs& a) {
  if (Status st = ValidateName("token", a.name); !st.ok()) return st;
  if (a.role != "read" && a.role != "write") {
    return Status::Usage("bad --role '" + a.role + "': read or write");
  }
  std::vector<TokenEntry> entries;
  auto read = ReadTokenFile(a.file);
  if (read.ok()) {
    entries = std::move(read.value());
  } else if (read.status().code() != Code::kNotFound) {
    return read.status();
  }
  for (const TokenEntry& e : entries) {
    if (e.name == a.name) {
      return Status::Conflict("token '" + a.name + "' already exists in " + a.file +
                              " (remove it first: strangler token rm " + a.name + " --file " +
                              a.file + ")");
    }
  }
  auto token = NewToken();
  if (!token.ok()) return token.status();
  entries.push_back(
      {a.name, a.role == "write" ? TokenRole::kWrite : TokenRole::kRead, Sha256Hex(token.value())});
  if (Status st = WriteTokenFile(a.file, entries); !st.ok()) return st;
  *ctx.out << token.value() << "\n";
  *ctx.err << "added token '" << a.name << "' (" << a.role << ") to " << a.file
           << "; it is shown only this once\n";
  return Status::Ok();
}

Status List(CliContext& ctx, const TokenArgs& a) {
  auto read = ReadTokenFile(a.file);
  if (!read.ok()) return read.status();
  for (const TokenEntry& e : read.value())
    *ctx.out << e.name << "\t" << TokenRoleName(e.role) << "\n";
  return Status::Ok();
}

Status Remove(CliContext& ctx, const TokenArgs& a) {
  auto read = ReadTokenFile(a.file);
  if (!read.ok()) return read.status();
  std::vector<TokenEntry> entries = std::move(read.value());
  auto it = std::find_if(entries.begin(), entries.end(),
                         [&](const TokenEntry& e) { return e.name == a.name; });
  if (it == entries.end()) {
    return Status::NotFound("no token '" + a.name + "' in " + a.file);
  }
  entries.erase(it);
  if (Status st = WriteTokenFile(a.file, entries); !st.ok()) return st;
  *ctx.err << "removed token '" << a.name << "' from " << a.file << "\n";
  return Status::Ok();
}

}  // namespace

void RegisterTokenCommands(CLI::App& app, CliContext& ctx) {
  CLI::App* cmd = app.add_subcommand("token", "Manage the control API's bearer tokens");
  cmd->require_subcommand(1);
  cmd->footer(kTokenFooter);
  using Handler = Status (*)(CliContext&, const TokenArgs&);
  struct Sub {
    const char* name;
    const char* help;
    Handler handler;
    bool named;
  };
  const Sub subs[] = {
      {"add", "Make a token NAME, print it once, and add its digest to --file", Add, true},
      {"list", "List the tokens of --file: name and role", List, false},
      {"rm", "Remove token NAME from --file (it stops working once serve rereads the file)", Remove,
       true},
  };
  for (const Sub& s : subs) {
    auto a = std::make_shared<TokenArgs>();
    CLI::App* sub = cmd->add_subcommand(s.name, s.help);
    if (s.named)
      sub->add_option("NAME", a->name, "token name, [a-z0-9][a-z0-9_-]{0,63}")->required();
    if (std::string(s.name) == "add") {
      sub->add_option("--role", a->role, "read (GET endpoints) or write (also changes)")
          ->type_name("read|write")
          ->capture_default_str();
    }
    sub->add_option("--file", a->file, "the token file (serve --admin-token-file)")
        ->type_name("FILE")
        ->required();
    Handler h = s.handler;
    sub->callback([&ctx, a, h] { ctx.action = [&ctx, a, h] { return h(ctx, *a); }; });
  }
}

}  // namespace strangler
