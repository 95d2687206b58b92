// README promises of the CLI and of `strangler serve`'s options that had no
// test (issue 20): the store and actor chains (`--db`, `$STRANGLER_DB`,
// `./strangler.db`; `--actor`, `$STRANGLER_ACTOR`, `$USER`) end to end;
// `--threads`; `--log -`; bad option values exit 2; rotated logs beyond
// `--log-keep` are deleted; `audit -` reads stdin. The real binary, run as a
// user would run it (environment and working directory included).
#include <dirent.h>
#include <unistd.h>
#include <zlib.h>

#include <csignal>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

constexpr int kCapMs = 10000;  // guards a hang only

// `strangler ARGS...` run from `cwd` by /bin/sh, with `env` ("K=V") set and
// STRANGLER_DB and STRANGLER_ACTOR unset unless `env` sets them, so that the
// tester's own environment cannot leak in. The same process id all along
// (env and sh exec), so a Process of it is stopped by its own pid.
std::vector<std::string> UserCommand(const std::string& cwd, const std::vector<std::string>& env,
                                     const std::vector<std::string>& args,
                                     const std::string& redirect = "") {
  std::vector<std::string> argv = {"/usr/bin/env", "-u", "STRANGLER_DB", "-u", "STRANGLER_ACTOR"};
  argv.insert(argv.end(), env.begin(), env.end());
  std::string cmd = "cd '" + cwd + "' && exec '" + std::string(STRANGLER_BIN) + "'";
  for (const auto& a : args) cmd += " '" + a + "'";
  cmd += redirect;
  argv.insert(argv.end(), {"/bin/sh", "-c", cmd});
  return argv;
}

Json ParseJson(const RunResult& r) {
  INFO("stdout: " << r.out << "\nstderr: " << r.err);
  REQUIRE(r.exit_code == 0);
  Json j = Json::parse(r.out, nullptr, false);
  REQUIRE(!j.is_discarded());
  return j;
}

std::vector<std::string> BackendNames(const std::string& db) {
  std::vector<std::string> names;
  for (const Json& b : ParseJson(Run({STRANGLER_BIN, "--db", db, "backend", "list", "--json"}))) {
    names.push_back(b["name"]);
  }
  return names;
}

TEST_CASE("e2e: promise: the store is --db, else $STRANGLER_DB, else ./strangler.db") {
  TempDir d;
  const std::string flag_db = d.File("flag.db"), env_db = d.File("env.db");
  const std::string cwd_db = d.File("strangler.db");
  struct Case {
    std::vector<std::string> env, args;
    std::string db;  // where the backend must land
  };
  const std::vector<Case> cases = {
      {{"STRANGLER_DB=" + env_db},
       {"--db", flag_db, "backend", "add", "b-flag", "http://h:1"},
       flag_db},
      {{"STRANGLER_DB=" + env_db}, {"backend", "add", "b-env", "http://h:2"}, env_db},
      {{}, {"backend", "add", "b-cwd", "http://h:3"}, cwd_db},
      {{"STRANGLER_DB="}, {"backend", "add", "b-empty-env", "http://h:4"}, cwd_db},
  };
  for (const Case& c : cases) {
    INFO(c.args[c.args.size() - 2]);
    RunResult r = Run(UserCommand(d.path(), c.env, c.args));
    CHECK_MESSAGE(r.exit_code == 0, r.err);
  }
  CHECK(BackendNames(flag_db) == std::vector<std::string>{"b-flag"});
  CHECK(BackendNames(env_db) == std::vector<std::string>{"b-env"});
  CHECK(BackendNames(cwd_db) == std::vector<std::string>{"b-cwd", "b-empty-env"});
}

TEST_CASE("e2e: promise: the actor is --actor, else $STRANGLER_ACTOR, else $USER; -m is the reason") {
  TempDir d;
  const std::string db = d.File("s.db");
  struct Case {
    std::vector<std::string> env, extra;
    std::string actor, reason;
  };
  const std::vector<Case> cases = {
      {{"STRANGLER_ACTOR=bob", "USER=carol"},
       {"--actor", "alice", "-m", "why 1"},
       "alice",
       "why 1"},
      {{"STRANGLER_ACTOR=bob", "USER=carol"}, {"--reason", "why 2"}, "bob", "why 2"},
      {{"USER=carol"}, {}, "carol", ""},
  };
  int n = 0;
  for (const Case& c : cases) {
    std::vector<std::string> args = {
        "--db", db, "backend", "add", "b" + std::to_string(++n), "http://h:" + std::to_string(n)};
    args.insert(args.end(), c.extra.begin(), c.extra.end());
    RunResult r = Run(UserCommand(d.path(), c.env, args));
    CHECK_MESSAGE(r.exit_code == 0, r.err);
  }
  Json h = ParseJson(Run({STRANGLER_BIN, "--db", db, "history", "--json"}));
  REQUIRE(h.size() == cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    const Json& row = h[cases.size() - 1 - i];  // newest first
    INFO(row.dump());
    CHECK(row["object"] == "backend/b" + std::to_string(i + 1));
    CHECK(row["actor"] == cases[i].actor);
    CHECK(row["reason"] == cases[i].reason);
  }
  // The text form shows the actor too.
  RunResult text = Run({STRANGLER_BIN, "--db", db, "history", "b1"});
  CHECK(text.out.find(" alice ") != std::string::npos);
}

TEST_CASE("e2e: promise: serve reads the store $STRANGLER_DB names, and CLI changes made through it reach serve") {
  TempDir d;
  RawBackend legacy("legacy"), fresh("new"), decoy("decoy");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  REQUIRE(decoy.Start());
  const std::string env_db = d.File("env.db");
  const std::vector<std::string> env = {"STRANGLER_DB=" + env_db, "USER=ops"};
  // ./strangler.db in the working directory would send everything to decoy.
  REQUIRE(
      Run({STRANGLER_BIN, "--db", d.File("strangler.db"), "backend", "add", "decoy", decoy.url()})
          .exit_code == 0);
  REQUIRE(Run(UserCommand(d.path(), env, {"backend", "add", "legacy", legacy.url()})).exit_code ==
          0);
  REQUIRE(Run(UserCommand(d.path(), env, {"backend", "add", "new", fresh.url()})).exit_code == 0);
  const uint16_t port = PickFreePort();
  Process serve(UserCommand(d.path(), env,
                            {"serve", "--listen", "127.0.0.1:" + std::to_string(port), "--log",
                             d.File("decisions.log"), "--reload-ms", "50"}),
                {}, d.File("serve.out"), d.File("serve.err"));
  REQUIRE(serve.Start());
  REQUIRE_MESSAGE(WaitForPort(port, kCapMs), serve.Stderr());
  RawClient c;
  REQUIRE(c.Connect(port));
  HttpResponse r = c.Get("/api/x");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.Header("X-Backend") == std::optional<std::string>("legacy"));
  REQUIRE(Run(UserCommand(d.path(), env, {"route", "add", "api", "--to", "new", "--path", "/api"}))
              .exit_code == 0);
  bool moved = false;
  const int64_t deadline = NowMs() + kCapMs;
  while (!moved && NowMs() < deadline) {
    r = c.Get("/api/x");
    REQUIRE_MESSAGE(r.ok, r.error);
    moved = r.Header("X-Backend") == std::optional<std::string>("new");
    if (!moved) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(moved);
  CHECK(decoy.request_count() == 0);
  CHECK(serve.Stop(SIGTERM, kCapMs) == 0);
  Json h = ParseJson(Run({STRANGLER_BIN, "--db", env_db, "history", "api", "--json"}));
  REQUIRE(h.size() == 1);
  CHECK(h[0]["actor"] == "ops");
}

// Threads of a running process, from /proc.
int ThreadCount(pid_t pid) {
  DIR* dir = opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  REQUIRE(dir != nullptr);
  int n = 0;
  while (dirent* e = readdir(dir)) n += e->d_name[0] != '.';
  closedir(dir);
  return n;
}

TEST_CASE("e2e: promise: --threads N runs N workers; 0 takes the core count") {
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  const int cores = static_cast<int>(std::thread::hardware_concurrency());
  std::map<int, int> threads;  // --threads -> threads of the process
  for (int n : {1, 2, 5, 0}) {
    INFO("--threads " << n);
    Fixture fx;
    fx.AddBackend("legacy", legacy.url());
    fx.AddBackend("new", fresh.url());
    fx.AddRoute("new", {"--to", "new", "--path", "/new"});
    REQUIRE(fx.StartServe({"--threads", std::to_string(n)}));
    // Enough connections at once to reach every worker; each is served.
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < 16; ++i) {
      clients.push_back(std::make_unique<RawClient>());
      REQUIRE(clients.back()->Connect(fx.port()));
    }
    for (size_t i = 0; i < clients.size(); ++i) {
      HttpResponse r = clients[i]->Get(i % 2 ? "/new/x" : "/x");
      REQUIRE_MESSAGE(r.ok, r.error);
      CHECK(r.Header("X-Backend") == std::optional<std::string>(i % 2 ? "new" : "legacy"));
    }
    threads[n] = ThreadCount(fx.serve()->pid());
    CHECK(fx.StopServe(SIGTERM) == 0);
  }
  MESSAGE("threads by --threads: 1 -> " << threads[1] << ", 2 -> " << threads[2] << ", 5 -> "
                                        << threads[5] << ", 0 -> " << threads[0] << " (" << cores
                                        << " cores)");
  // Each worker is one thread; the others (main, log writer, ...) are fixed.
  CHECK(threads[2] - threads[1] == 1);
  CHECK(threads[5] - threads[1] == 4);
  CHECK(threads[0] - threads[1] == cores - 1);
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  size_t p = 0;
  while (p < text.size()) {
    size_t e = text.find('\n', p);
    if (e == std::string::npos) e = text.size();
    out.push_back(text.substr(p, e - p));
    p = e + 1;
  }
  return out;
}

TEST_CASE("e2e: promise: --log - writes the decision lines to stdout, and nothing else there") {
  TempDir d;
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("new", {"--to", "new", "--path", "/new"});
  const uint16_t port = PickFreePort();
  Process serve(UserCommand(d.path(), {},
                            {"--db", fx.db(), "serve", "--listen",
                             "127.0.0.1:" + std::to_string(port), "--log", "-"}),
                {}, d.File("serve.out"), d.File("serve.err"));
  REQUIRE(serve.Start());
  REQUIRE_MESSAGE(WaitForPort(port, kCapMs), serve.Stderr());
  RawClient c;
  REQUIRE(c.Connect(port));
  const std::vector<std::pair<std::string, std::string>> sent = {
      {"/new/1", "new"}, {"/old/2", "legacy"}, {"/new/3", "new"}};
  for (size_t i = 0; i < sent.size(); ++i) {
    HttpResponse r = c.Get(sent[i].first, {{"X-Request-Id", "stdout-" + std::to_string(i)}});
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.Header("X-Backend") == std::optional<std::string>(sent[i].second));
  }
  REQUIRE(serve.Stop(SIGTERM, kCapMs) == 0);
  const std::vector<std::string> lines = Lines(serve.Stdout());
  INFO("stdout:\n" << serve.Stdout() << "\nstderr:\n" << serve.Stderr());
  REQUIRE(lines.size() == sent.size());
  for (size_t i = 0; i < sent.size(); ++i) {
    Json j = Json::parse(lines[i], nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["request_id"] == "stdout-" + std::to_string(i));
    CHECK(j["path"] == sent[i].first);
    CHECK(j["backend"] == sent[i].second);
  }
  // No log file was made in the working directory, neither "-" nor the
  // default ./decisions.log.
  CHECK(access(d.File("-").c_str(), F_OK) != 0);
  CHECK(access(d.File("decisions.log").c_str(), F_OK) != 0);
}

TEST_CASE("e2e: promise: serve refuses a bad option value with exit 2 and one line saying which") {
  Fixture fx;
  fx.AddBackend("legacy", "http://127.0.0.1:9");
  struct Case {
    std::vector<std::string> args;
    std::string names;  // in the error line
  };
  const std::vector<Case> cases = {
      {{"--threads", "-1"}, "--threads"},
      {{"--threads", "many"}, "--threads"},
      {{"--max-connections", "0"}, "--max-connections"},
      {{"--max-connections", "-5"}, "--max-connections"},
      {{"--max-header-kb", "0"}, "--max-header-kb"},
      {{"--max-header-kb", "2048"}, "--max-header-kb"},
      {{"--max-body-mb", "-1"}, "--max-body-mb"},
      {{"--log-keep", "0"}, "--log-keep"},
      {{"--log-keep", "1001"}, "--log-keep"},
      {{"--log-max-mb", "-1"}, "--log-max-mb"},
      {{"--log-max-mb", "0.001"}, "--log-max-mb"},
      {{"--log", "-", "--log-max-mb", "1"}, "--log-max-mb"},
      {{"--log", ""}, "--log"},
      {{"--reload-ms", "0"}, "--reload-ms"},
      {{"--encoded-slash", "keep"}, "--encoded-slash"},
      {{"--upstream-idle-s", "0"}, "--upstream-idle-s"},
      {{"--tunnel-idle-s", "0"}, "--tunnel-idle-s"},
      {{"--drain-s", "-1"}, "--drain-s"},
      {{"--listen", "nohost"}, "--listen"},  // (":8080" and "8080" are short forms)
      {{"--listen", "127.0.0.1:70000"}, "--listen"},
      {{"--no-such-option"}, "--no-such-option"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv = {STRANGLER_BIN, "--db", fx.db(), "serve"};
    // A free port and a log in the temp dir, in case the value is taken.
    if (c.args[0] != "--listen") {
      argv.insert(argv.end(), {"--listen", "127.0.0.1:" + std::to_string(PickFreePort())});
    }
    if (c.args[0] != "--log") argv.insert(argv.end(), {"--log", fx.dir().File("d.log")});
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    std::string line;
    for (const auto& a : c.args) line += a + " ";
    INFO("serve " << line);
    RunResult r = Run(argv, {}, 5000);  // a serve that started is killed at 5 s: exit -1
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    CHECK(r.out.empty());
    CHECK(r.err.rfind("strangler: ", 0) == 0);
    CHECK(r.err.find(c.names) != std::string::npos);
    CHECK(r.err.find('\n') == r.err.size() - 1);
  }
}

TEST_CASE("e2e: promise: serve refuses --reload-ms below 10 as a usage error (exit 2)") {
  // Was a bug (exit 1 from RunServe), fixed in 0139f52.
  Fixture fx;
  fx.AddBackend("legacy", "http://127.0.0.1:9");
  for (const std::string v : {"5", "60001"}) {
    INFO("--reload-ms " << v);
    RunResult r = Run({STRANGLER_BIN, "--db", fx.db(), "serve", "--listen",
                       "127.0.0.1:" + std::to_string(PickFreePort()), "--log",
                       fx.dir().File("d.log"), "--reload-ms", v},
                      {}, 5000);
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--reload-ms") != std::string::npos);
  }
}

TEST_CASE("e2e: promise: rotated logs beyond --log-keep are deleted, the newest kept in order") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("new", {"--to", "new", "--path", "/new"});
  // 4 KiB files of ~250-byte lines: a dozen rotations for 200 requests.
  REQUIRE(fx.StartServe({"--log-max-mb", "0.004", "--log-keep", "2"}));
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  std::vector<std::string> sent;
  for (int i = 0; i < 200; ++i) {
    char id[16];
    std::snprintf(id, sizeof(id), "k%04d", i);
    sent.push_back(id);
    HttpResponse r = c.Get(i % 2 ? "/new/x" : "/x", {{"X-Request-Id", id}});
    REQUIRE(r.ok);
    if (i % 10 == 9) std::this_thread::sleep_for(std::chrono::milliseconds(30));  // more batches
  }
  REQUIRE(fx.StopServe(SIGTERM) == 0);
  std::set<std::string> files;
  DIR* dir = opendir(fx.dir().path().c_str());
  REQUIRE(dir != nullptr);
  while (dirent* e = readdir(dir)) {
    const std::string name = e->d_name;
    if (name.rfind("decisions", 0) == 0) files.insert(name);
  }
  closedir(dir);
  CHECK(files == std::set<std::string>{"decisions.log", "decisions.1.log", "decisions.2.log"});
  // Oldest to newest, the kept files hold the last requests, none missing.
  std::vector<std::string> kept;
  for (const char* f : {"decisions.2.log", "decisions.1.log", "decisions.log"}) {
    for (const std::string& line : Lines(ReadFile(fx.dir().File(f)))) {
      Json j = Json::parse(line, nullptr, false);
      REQUIRE(j.is_object());
      kept.push_back(j["request_id"]);
    }
  }
  REQUIRE(!kept.empty());
  REQUIRE(kept.size() < sent.size());  // older files were deleted
  CHECK(kept == std::vector<std::string>(sent.end() - static_cast<long>(kept.size()), sent.end()));
}

void WriteGzip(const std::string& data, const std::string& to) {
  gzFile gz = gzopen(to.c_str(), "wb");
  REQUIRE(gz != nullptr);
  REQUIRE(gzwrite(gz, data.data(), static_cast<unsigned>(data.size())) ==
          static_cast<int>(data.size()));
  REQUIRE(gzclose(gz) == Z_OK);
}

TEST_CASE("e2e: promise: audit - reads the decision log from stdin, plain or gzip") {
  Fixture fx;
  RawBackend legacy("legacy"), fresh("new");
  REQUIRE(legacy.Start());
  REQUIRE(fresh.Start());
  fx.AddBackend("legacy", legacy.url());
  fx.AddBackend("new", fresh.url());
  fx.AddRoute("new", {"--to", "new", "--path", "/new"});
  REQUIRE(fx.StartServe());
  RawClient c;
  REQUIRE(c.Connect(fx.port()));
  for (int i = 0; i < 6; ++i) REQUIRE(c.Get(i < 4 ? "/new/x" : "/x").ok);
  auto lines = fx.StopAndReadLog();
  REQUIRE(lines.size() == 6);
  const std::string log = ReadFile(fx.log_path());
  WriteGzip(log, fx.dir().File("piped.gz"));
  // Decoys in the working directory: a file named "-" and ./decisions.log,
  // each one line that is in no other log.
  TempDir cwd;
  const std::string decoy =
      R"({"ts":"2026-01-01T00:00:00.000Z","request_id":"decoy","method":"GET","path":"/d",)"
      R"("route":null,"backend":"decoy","reason":"default","bucket":null,"status":200,)"
      R"("upstream_ms":1,"total_ms":1,"bytes_in":1,"bytes_out":1,"client":"127.0.0.1","ruleset":1})"
      "\n";
  for (const char* name : {"-", "decisions.log"}) {
    FILE* f = std::fopen(cwd.File(name).c_str(), "w");
    REQUIRE(f != nullptr);
    std::fputs(decoy.c_str(), f);
    std::fclose(f);
  }
  for (const std::string& input : {fx.log_path(), fx.dir().File("piped.gz")}) {
    INFO("stdin: " << input);
    RunResult plain =
        Run(UserCommand(cwd.path(), {}, {"audit", "-", "--json"}, " < '" + input + "'"));
    CHECK(plain.exit_code == 0);
    CHECK(plain.out == log);  // --json prints the lines exactly as in the log
    RunResult by = Run(UserCommand(cwd.path(), {}, {"audit", "-", "--by", "backend", "--json"},
                                   " < '" + input + "'"));
    Json rows = ParseJson(by);
    REQUIRE(rows.size() == 2);
    CHECK(rows[0]["backend"] == "new");
    CHECK(rows[0]["count"] == 4);
    CHECK(rows[1]["backend"] == "legacy");
    CHECK(rows[1]["count"] == 2);
  }
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
