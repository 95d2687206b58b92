// strangler-demo-backend: a tiny HTTP service that says who it is, for the
// demo and the end-to-end tests. It answers every method on every path with
//   {"backend": NAME, "method": ..., "path": RAW_TARGET, "headers": {...}}
// and the header `X-Backend: NAME`; GET /healthz answers 200 "ok".
//
// Built on cpp-httplib, which is fine here (HTTP-NOTES.md): header values it
// reports are percent-decoded, so a fidelity test must not trust "headers".
// Usage: strangler-demo-backend --name legacy --listen 127.0.0.1:9001
// Prints "listening on HOST:PORT" on stdout once it accepts connections
// (with the real port when given port 0); exits 0 on SIGINT/SIGTERM.
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

namespace {

constexpr int kDefaultThreads = 64;
constexpr size_t kKeepAliveMaxCount = 1000000;
constexpr int kListenBacklog = 1024;
constexpr const char* kUsage =
    "usage: strangler-demo-backend --name NAME [--listen HOST:PORT] [--threads N]\n"
    "  --listen defaults to 127.0.0.1:0 (port 0: the system picks one and it is printed)\n";

struct Options {
  std::string name;
  std::string host = "127.0.0.1";
  int port = 0;
  int threads = kDefaultThreads;
};

[[noreturn]] void UsageError(const std::string& msg) {
  std::fprintf(stderr, "strangler-demo-backend: %s\n%s", msg.c_str(), kUsage);
  std::exit(2);
}

bool ParseInt(const std::string& s, int lo, int hi, int* out) {
  if (s.empty() || s.size() > 9) return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v < lo || v > hi) return false;
  *out = v;
  return true;
}

// "HOST:PORT" or "[V6]:PORT".
bool ParseListen(const std::string& s, std::string* host, int* port) {
  size_t colon = s.rfind(':');
  if (colon == std::string::npos || colon == 0) return false;
  std::string h = s.substr(0, colon);
  if (h.size() >= 2 && h.front() == '[' && h.back() == ']') h = h.substr(1, h.size() - 2);
  if (h.empty()) return false;
  *host = h;
  return ParseInt(s.substr(colon + 1), 0, 65535, port);
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* flag) -> std::string {
      if (i + 1 >= argc) UsageError(std::string(flag) + " needs a value");
      return argv[++i];
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--name") {
      o.name = value("--name");
    } else if (a == "--listen") {
      std::string v = value("--listen");
      if (!ParseListen(v, &o.host, &o.port)) {
        UsageError("--listen wants HOST:PORT (port 0-65535), got '" + v + "'");
      }
    } else if (a == "--threads") {
      std::string v = value("--threads");
      if (!ParseInt(v, 1, 4096, &o.threads)) UsageError("--threads wants 1..4096, got '" + v + "'");
    } else {
      UsageError("unknown argument '" + a + "'");
    }
  }
  if (o.name.empty()) UsageError("--name is required");
  return o;
}

// Like httplib's default but without SO_REUSEPORT, so a busy port is an error
// instead of two processes silently sharing it.
void SocketOptions(int fd) {
  int yes = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

// cpp-httplib 0.11.4 listens with a backlog of 5 and keeps the socket
// private. Find our listening socket by its port and raise the backlog
// (listen() on a listening socket only updates it); harmless if not found.
void RaiseBacklog(int port) {
  for (int fd = 3; fd < 1024; ++fd) {
    int accepting = 0;
    socklen_t len = sizeof(accepting);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) != 0 || !accepting) continue;
    sockaddr_storage addr{};
    socklen_t alen = sizeof(addr);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &alen) != 0) continue;
    int p = -1;
    if (addr.ss_family == AF_INET) p = ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
    if (addr.ss_family == AF_INET6) p = ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
    if (p == port) listen(fd, kListenBacklog);
  }
}

bool IsAddedByHttplib(const std::string& name) {
  // cpp-httplib stores connection facts among the request headers.
  return name == "REMOTE_ADDR" || name == "REMOTE_PORT" || name == "LOCAL_ADDR" ||
         name == "LOCAL_PORT";
}

void Answer(const std::string& name, const httplib::Request& req, httplib::Response& res) {
  res.set_header("X-Backend", name);
  if (req.path == "/healthz") {
    res.status = 200;
    res.set_content("ok", "text/plain");
    return;
  }
  nlohmann::json headers = nlohmann::json::object();
  for (const auto& [k, v] : req.headers) {
    if (IsAddedByHttplib(k)) continue;
    auto it = headers.find(k);
    if (it == headers.end()) {
      headers[k] = v;
    } else {
      *it = it->get<std::string>() + ", " + v;  // repeated header: joined as a list
    }
  }
  nlohmann::json body = {{"backend", name},
                         {"method", req.method},
                         {"path", req.target},
                         {"headers", std::move(headers)}};
  res.status = 200;
  res.set_content(body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n",
                  "application/json");
}

}  // namespace

int main(int argc, char** argv) {
  Options opts = ParseArgs(argc, argv);

  // Signals are taken by one thread with sigwait. Block them before any thread
  // exists so every thread inherits the mask; reset the disposition first,
  // since a shell starts background jobs with SIGINT ignored and an ignored
  // signal never becomes pending.
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  httplib::Server server;
  server.set_tcp_nodelay(true);
  server.set_socket_options(SocketOptions);
  server.set_keep_alive_max_count(kKeepAliveMaxCount);
  const int threads = opts.threads;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };

  const std::string name = opts.name;
  auto handler = [name](const httplib::Request& req, httplib::Response& res) {
    Answer(name, req, res);
  };
  // Matched against the decoded path, which may hold any byte.
  const std::string kAnyPath = R"([\s\S]*)";
  server.Get(kAnyPath, handler);  // also answers HEAD
  server.Post(kAnyPath, handler);
  server.Put(kAnyPath, handler);
  server.Patch(kAnyPath, handler);
  server.Delete(kAnyPath, handler);
  server.Options(kAnyPath, handler);

  int port = opts.port;
  if (port == 0) {
    port = server.bind_to_any_port(opts.host);
    if (port < 0) port = 0;
  } else if (!server.bind_to_port(opts.host, port)) {
    port = 0;
  }
  if (port == 0) {
    std::fprintf(stderr,
                 "strangler-demo-backend: cannot listen on %s:%d (port in use or address "
                 "not local); pick another --listen\n",
                 opts.host.c_str(), opts.port);
    return 1;
  }
  RaiseBacklog(port);

  std::atomic<bool> stopped{false};
  std::thread signal_thread([&server, &stop_signals, &stopped] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    stopped = true;
    server.stop();
  });
  signal_thread.detach();

  const bool v6 = opts.host.find(':') != std::string::npos;
  std::printf("listening on %s%s%s:%d\n", v6 ? "[" : "", opts.host.c_str(), v6 ? "]" : "", port);
  std::fflush(stdout);

  // Connections are accepted from the backlog once listen_after_bind runs, so
  // a client that reads the line above and connects at once is not refused.
  bool clean = server.listen_after_bind();
  if (!stopped && !clean) {
    std::fprintf(stderr, "strangler-demo-backend: the listener failed\n");
    return 1;
  }
  return 0;
}
