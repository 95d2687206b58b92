// End-to-end test harness: temp dirs, child processes, a raw-bytes HTTP
// backend and a raw-bytes HTTP client, and a Fixture that runs the real
// `strangler` CLI and `strangler serve` against a temp store.
//
// Nothing here parses HTTP with cpp-httplib: fidelity tests compare bytes,
// and cpp-httplib decodes header values (HTTP-NOTES.md).
//
// Every socket read has a timeout; every child process is ended by the PID
// this harness started, never by name.
//
// Implemented in harness.cc (temp dirs, processes, ports), raw_backend.cc,
// raw_client.cc, fixture.cc, and wire.{h,cc} (byte-level HTTP helpers).
// Set STRANGLER_E2E_KEEP=1 to keep the temp dirs (store, decision log,
// serve's stdout/stderr) for a post-mortem.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

namespace strangler {
namespace e2e {

using Json = nlohmann::json;
using Headers = std::vector<std::pair<std::string, std::string>>;

// Milliseconds on the monotonic clock, for measuring delays.
int64_t NowMs();
bool IEquals(const std::string& a, const std::string& b);
// "a%0d" -> printable form with \r \n \xNN escapes, for failure messages.
std::string Printable(const std::string& bytes);

// A directory made with mkdtemp, removed recursively on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

std::string ReadFile(const std::string& path);

// One child process started with fork/exec. stdout and stderr go to files.
// Not thread-safe. The destructor kills (SIGKILL) and reaps the child if it
// is still running.
class Process {
 public:
  // `argv[0]` must be a path. `env` entries ("K=V") are added to (and
  // override) the parent's environment.
  Process(std::vector<std::string> argv, std::vector<std::string> env, std::string stdout_path,
          std::string stderr_path);
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  bool Start();
  pid_t pid() const { return pid_; }
  // True while the child has not exited (reaps it if it has).
  bool Running();
  // Waits up to timeout_ms for the child to exit on its own. Returns the exit
  // status (128+signal when killed by a signal) or nullopt on timeout.
  std::optional<int> Wait(int timeout_ms);
  // Sends `sig`, waits up to timeout_ms, then SIGKILL. Returns the exit
  // status as Wait() does; -1 when it had to be killed.
  int Stop(int sig, int timeout_ms);
  std::string Stdout() const { return ReadFile(stdout_path_); }
  std::string Stderr() const { return ReadFile(stderr_path_); }

 private:
  std::vector<std::string> argv_;
  std::vector<std::string> env_;
  std::string stdout_path_;
  std::string stderr_path_;
  pid_t pid_ = -1;
  std::optional<int> status_;
};

struct RunResult {
  int exit_code = -1;  // -1: could not start or timed out (then killed)
  std::string out;
  std::string err;
};
// Runs a command to completion (killed after timeout_ms).
RunResult Run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {},
              int timeout_ms = 15000);

// A port that was free a moment ago (bind 127.0.0.1:0, read it, close).
// Another process may take it before it is used: prefer binding port 0
// (`serve --listen 127.0.0.1:0` and ListeningPort), or retry (as
// Fixture::StartServe does); for a port nothing listens on, ClosedPort.
uint16_t PickFreePort();
// Retries connect() to 127.0.0.1:port until it succeeds or timeout_ms passes.
bool WaitForPort(uint16_t port, int timeout_ms);

// The cap of a wait for something that normally takes milliseconds to a
// second or two: it only ends a hung test, never judges speed (STYLE.md:
// speed is for benchmarks). A test waits for the event itself, never for a
// guessed time.
constexpr int kHangGuardMs = 60000;
// The cap of a wait for the router to close a connection: a hang guard too,
// but well below serve's 60 s idle keep-alive timeout, which would close a
// connection wrongly kept open as well and so hide the fault.
constexpr int kCloseWaitMs = 20000;

// Polls `done` every `every_ms` until it returns true (true) or cap_ms passes
// (false). `cap_ms` only guards against a hang.
bool PollUntil(const std::function<bool()>& done, int cap_ms = kHangGuardMs, int every_ms = 10);

// A loopback port where nothing listens, held for the object's lifetime: a
// socket bound to 127.0.0.1:0 that never listens, so a connect to it is
// refused, and no other process can take the port meanwhile (which a port
// from PickFreePort, closed again, allows).
class ClosedPort {
 public:
  ClosedPort();
  ~ClosedPort();
  ClosedPort(const ClosedPort&) = delete;
  ClosedPort& operator=(const ClosedPort&) = delete;
  uint16_t port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// The port a `strangler serve --listen HOST:0` child bound, read from its
// "listening on HOST:PORT" line on stderr (polled up to cap_ms); 0 when the
// line does not come or the child exits first.
uint16_t ListeningPort(Process& serve, int cap_ms = kHangGuardMs);
// The same for the admin listener (`serve --admin HOST:0`): its "admin
// listening on HOST:PORT" line.
uint16_t AdminPort(Process& serve, int cap_ms = kHangGuardMs);

// --- LoopbackServer ----------------------------------------------------------

// The listening half of the test backends: 127.0.0.1:0, one thread per
// accepted connection (TCP_NODELAY on; the handler owns the fd). Thread-safe.
class LoopbackServer {
 public:
  using Handler = std::function<void(int fd, int index)>;  // index: 1-based accept order
  LoopbackServer() = default;
  ~LoopbackServer() { Join(); }
  LoopbackServer(const LoopbackServer&) = delete;
  LoopbackServer& operator=(const LoopbackServer&) = delete;

  // Serves until *stop is set; *stop must outlive the server.
  bool Start(const std::atomic<bool>* stop, Handler handler);
  // Once *stop is set: joins the accept thread and every handler.
  void Join();
  uint16_t port() const { return port_; }
  int accepted() const { return accepted_.load(); }

 private:
  const std::atomic<bool>* stop_ = nullptr;
  Handler handler_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<int> accepted_{0};
  std::thread accept_thread_;
  std::mutex mu_;
  std::vector<std::thread> threads_;  // guarded by mu_
};

// --- RawBackend --------------------------------------------------------------

// One request as received by RawBackend.
struct RecordedRequest {
  std::string raw;           // exact bytes of this request on the wire
  std::string head;          // request line + header lines, without the final CRLFCRLF
  std::string request_line;  // e.g. "GET /x HTTP/1.1"
  std::string method;
  std::string target;
  std::string version;
  std::vector<std::string> header_lines;  // "Name: value" exactly as received
  Headers headers;                        // name, value (OWS trimmed)
  std::string body;                       // decoded (de-chunked) body
  bool chunked = false;
  int connection = 0;  // 1-based index of the connection it came on
  bool sent_continue = false;

  std::optional<std::string> Header(const std::string& name) const;
  int HeaderCount(const std::string& name) const;
};

// An HTTP/1.1 server on 127.0.0.1:0 for tests, one thread per connection,
// parsing requests minimally but correctly (Content-Length and chunked bodies,
// pipelining, keep-alive) and recording every request's raw bytes.
// Thread-safe: setters and accessors may be called while it serves.
class RawBackend {
 public:
  // Builds the whole raw response for one request.
  using Responder = std::function<std::string(const RecordedRequest&)>;

  explicit RawBackend(std::string name);
  ~RawBackend();
  RawBackend(const RawBackend&) = delete;
  RawBackend& operator=(const RawBackend&) = delete;

  bool Start();
  void Stop();
  uint16_t port() const { return server_.port(); }
  std::string url() const;
  const std::string& name() const { return name_; }

  // Default: "HTTP/1.1 200 OK", X-Backend: NAME, Content-Length, body NAME
  // (no body for HEAD).
  std::string DefaultResponse(const RecordedRequest& req) const;
  // Same raw bytes for every request.
  void set_response(std::string raw);
  void set_responder(Responder r);
  void set_delay_ms(int ms) { delay_ms_ = ms; }
  // From Hold() until Release(), every answer waits (after any delay) before
  // it is sent; Stop() ends the wait too (the answer is then never sent).
  // For tests that need "before the backend answered" as an event.
  void Hold();
  void Release();
  // Close the connection after each response.
  void set_close_after_response(bool v) { close_after_ = v; }

  std::vector<RecordedRequest> requests() const;
  size_t request_count() const;
  int connections_accepted() const { return server_.accepted(); }
  bool WaitForRequests(size_t n, int timeout_ms) const;
  void ClearRequests();

 private:
  void Serve(int fd, int index);
  bool Sleep(int ms);  // false when stopping
  bool WaitUnheld();   // false when stopping

  std::string name_;
  std::atomic<bool> stop_{false};
  std::atomic<int> delay_ms_{0};
  std::atomic<bool> close_after_{false};
  bool held_ = false;  // guarded by mu_
  LoopbackServer server_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<RecordedRequest> requests_;
  std::shared_ptr<const std::string> response_;  // null = default
  std::shared_ptr<const Responder> responder_;
};

// --- RawClient ---------------------------------------------------------------

struct HttpResponse {
  bool ok = false;    // a complete response was read
  std::string error;  // why not, when !ok
  std::string status_line;
  std::string version;
  int status = 0;
  std::string raw_head;  // status line + header lines, without final CRLFCRLF
  std::vector<std::string> header_lines;
  Headers headers;
  std::string body;  // decoded
  bool chunked = false;

  std::optional<std::string> Header(const std::string& name) const;
  int HeaderCount(const std::string& name) const;
  std::vector<std::string> HeaderValues(const std::string& name) const;
};

// A client connection that sends raw bytes and reads whole responses.
// Not thread-safe; one per thread.
class RawClient {
 public:
  RawClient() = default;
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool Connect(uint16_t port, int timeout_ms = 3000);
  void Close();
  bool connected() const { return fd_ >= 0; }
  bool Send(const std::string& bytes);
  // Reads one response (a 1xx interim response counts as one). `head_request`:
  // the response has no body whatever its headers say.
  HttpResponse ReadResponse(bool head_request = false, int timeout_ms = 5000);
  // Reads responses until a final (>= 200) one.
  HttpResponse ReadFinal(bool head_request = false, int timeout_ms = 5000);
  // True when the peer closes the connection within timeout_ms (data that
  // arrives first is discarded).
  bool WaitForClose(int timeout_ms);

  // Sends one request and reads the final response. Adds Host and, with a
  // body, Content-Length unless given.
  HttpResponse Request(const std::string& method, const std::string& target,
                       const Headers& headers = {}, const std::string& body = "",
                       int timeout_ms = 5000);
  HttpResponse Get(const std::string& target, const Headers& headers = {}, int timeout_ms = 5000) {
    return Request("GET", target, headers, "", timeout_ms);
  }

 private:
  // Reads more bytes into buf_; false on EOF, error or deadline.
  bool Fill(int64_t deadline_ms, std::string* error);

  int fd_ = -1;
  uint16_t port_ = 0;
  std::string buf_;
};

// --- Fixture -----------------------------------------------------------------

// A temp dir with a store, the CLI bound to it, and at most one running
// `strangler serve` with its decision log in the temp dir.
class Fixture {
 public:
  Fixture();
  ~Fixture();

  const TempDir& dir() const { return dir_; }
  const std::string& db() const { return db_; }
  const std::string& log_path() const { return log_path_; }
  uint16_t port() const { return port_; }
  Process* serve() { return serve_.get(); }

  // `strangler --db DB ARGS...`
  RunResult Cli(const std::vector<std::string>& args);
  // Same, and fails the test (with stderr) when the exit code is not 0.
  RunResult MustCli(const std::vector<std::string>& args);
  void AddBackend(const std::string& name, const std::string& url,
                  const std::vector<std::string>& extra = {});
  void AddRoute(const std::string& name, const std::vector<std::string>& args);

  // Starts serve on a free port with --log and --reload-ms 50 and waits until
  // it accepts connections. Fails the test when it cannot.
  bool StartServe(const std::vector<std::string>& extra = {});
  // Sends `sig`, waits; returns the exit status (-1 if it had to be killed).
  int StopServe(int sig, int timeout_ms = 10000);

  // Every line of the decision log, parsed; a line that is not JSON fails the
  // test. `bad_lines` (optional) receives such lines.
  std::vector<Json> LogLines(std::vector<std::string>* bad_lines = nullptr);
  // Polls until the log has at least n lines (timeout_ms: a hang guard).
  std::vector<Json> WaitForLogLines(size_t n, int timeout_ms = kHangGuardMs);
  // Stops serve with SIGTERM (checks it exits 0: the contract flushes the log
  // then) and returns every log line. For checks of log content that must
  // not depend on how often a running serve flushes.
  std::vector<Json> StopAndReadLog();
  // The log line with this request_id (polls up to timeout_ms, a hang guard).
  std::optional<Json> LogLineFor(const std::string& request_id, int timeout_ms = kHangGuardMs);

 private:
  TempDir dir_;
  std::string db_;
  std::string log_path_;
  uint16_t port_ = 0;
  int serve_starts_ = 0;
  std::unique_ptr<Process> serve_;
};

// `r` is `be`'s answer (its X-Backend header names it), `be` has received
// `n` requests since it started or was last cleared, and `other` none: the
// request went to `be` and nowhere else.
void ExpectOnly(const HttpResponse& r, const RawBackend& be, size_t n, const RawBackend& other);

// The usual fixture: backends "legacy" (the default) and "new", the route
// "new" taking /new to "new", and a serve started: an answer says which
// backend gave it, so a test can tell a route taken from one skipped.
struct TwoBackends {
  Fixture fx;
  RawBackend legacy{"legacy"}, fresh{"new"};
  explicit TwoBackends(const std::vector<std::string>& serve_args = {}) {
    REQUIRE(legacy.Start());
    REQUIRE(fresh.Start());
    fx.AddBackend("legacy", legacy.url());
    fx.AddBackend("new", fresh.url());
    fx.AddRoute("new", {"--to", "new", "--path", "/new"});
    REQUIRE(fx.StartServe(serve_args));
  }
  size_t forwarded() const { return legacy.request_count() + fresh.request_count(); }
  RawBackend& Other(const RawBackend& be) { return &be == &legacy ? fresh : legacy; }
  void ClearRequests() {
    legacy.ClearRequests();
    fresh.ClearRequests();
  }
  // `r` is `be`'s answer and the other backend has received nothing (see
  // the free ExpectOnly above).
  void ExpectOnly(const HttpResponse& r, const RawBackend& be, size_t n = 1) {
    strangler::e2e::ExpectOnly(r, be, n, Other(be));
  }
  // A decision-log line for a request `be` answered: "legacy" by default (no
  // route), "new" by the route "new".
  void ExpectLogged(const Json& line, const RawBackend& be) const;
};

// A request the router must refuse with `status`, forwarding nothing of it.
struct Refusal {
  std::string name;
  std::string bytes;
  int status;
};
// Sends each case on its own connection to fx's serve: the answer must be
// `status`, the connection closed after it, logged as refused, and none of
// `backends` may have received anything.
void ExpectRefused(Fixture& fx, const std::vector<RawBackend*>& backends,
                   const std::vector<Refusal>& cases);
// The same against both backends of `t`.
inline void ExpectRefused(TwoBackends& t, const std::vector<Refusal>& cases) {
  ExpectRefused(t.fx, {&t.legacy, &t.fresh}, cases);
}

// Log lines keyed by request_id.
std::map<std::string, Json> ByRequestId(const std::vector<Json>& lines);

// GET /metrics on serve's admin listener (`serve --admin`), asked again
// while it answers 503 (until serve's first snapshot serves); fails the test
// unless the answer is a 200, which it returns.
HttpResponse GetMetrics(uint16_t admin);

// The instance's row in `backend show BACKEND --json`'s "load" (null until
// it is reported, or when the CLI fails).
Json ShownInstance(Fixture& fx, const std::string& backend, const std::string& instance);

}  // namespace e2e
}  // namespace strangler
