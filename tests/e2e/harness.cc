#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "wire.h"

extern char** environ;

namespace strangler {
namespace e2e {

namespace {

// Writes to a socket the peer closed must fail with EPIPE, not kill the
// test binary. Children get every signal back to default before exec.
struct IgnoreSigpipe {
  IgnoreSigpipe() { signal(SIGPIPE, SIG_IGN); }
} ignore_sigpipe;

void RemoveTree(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return;
  if (S_ISDIR(st.st_mode)) {
    if (DIR* d = opendir(path.c_str())) {
      while (dirent* e = readdir(d)) {
        std::string n = e->d_name;
        if (n == "." || n == "..") continue;
        RemoveTree(path + "/" + n);
      }
      closedir(d);
    }
    rmdir(path.c_str());
  } else {
    unlink(path.c_str());
  }
}

int StatusOf(int wstatus) {
  if (WIFEXITED(wstatus)) return WEXITSTATUS(wstatus);
  if (WIFSIGNALED(wstatus)) return 128 + WTERMSIG(wstatus);
  return -1;
}

}  // namespace

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

bool IEquals(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (tolower(static_cast<unsigned char>(a[i])) != tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string Printable(const std::string& bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c == '\r') {
      out += "\\r";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\\') {
      out += "\\\\";
    } else if (c < 0x20 || c >= 0x7f) {
      char b[8];
      snprintf(b, sizeof(b), "\\x%02x", c);
      out += b;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// --- TempDir -----------------------------------------------------------------

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/strangler-e2e-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) {
    perror("mkdtemp");
    abort();
  }
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (getenv("STRANGLER_E2E_KEEP") == nullptr) RemoveTree(path_);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// --- Process -----------------------------------------------------------------

Process::Process(std::vector<std::string> argv, std::vector<std::string> env,
                 std::string stdout_path, std::string stderr_path)
    : argv_(std::move(argv)),
      env_(std::move(env)),
      stdout_path_(std::move(stdout_path)),
      stderr_path_(std::move(stderr_path)) {}

Process::~Process() {
  if (pid_ > 0 && !status_) Stop(SIGKILL, 2000);
}

bool Process::Start() {
  if (argv_.empty() || pid_ > 0) return false;
  // Everything the child needs is prepared before fork: between fork and
  // exec only async-signal-safe calls are allowed (the parent has threads).
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& x : env_) overridden |= x.substr(0, x.find('=')) == key;
    if (!overridden) envs.push_back(kv);
  }
  for (const auto& x : env_) envs.push_back(x);
  std::vector<char*> cargv, cenv;
  for (auto& a : argv_) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  int out = open(stdout_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int err = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (out < 0 || err < 0 || in < 0) {
    if (out >= 0) close(out);
    if (err >= 0) close(err);
    if (in >= 0) close(in);
    return false;
  }
  // Signals stay blocked from fork until the child has reset every handler
  // (the parent's doctest handlers must never run in the child).
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = fork();
  if (pid == 0) {
    for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    for (int fd = 3; fd < 4096; ++fd) close(fd);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execve(cargv[0], cargv.data(), cenv.data());
    _exit(127);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  close(out);
  close(err);
  close(in);
  if (pid < 0) return false;
  pid_ = pid;
  return true;
}

bool Process::Running() {
  if (pid_ <= 0 || status_) return false;
  int ws = 0;
  pid_t r = waitpid(pid_, &ws, WNOHANG);
  if (r == pid_) {
    status_ = StatusOf(ws);
    return false;
  }
  return r == 0;
}

std::optional<int> Process::Wait(int timeout_ms) {
  if (pid_ <= 0) return std::nullopt;
  int64_t deadline = NowMs() + timeout_ms;
  while (Running()) {
    if (NowMs() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

int Process::Stop(int sig, int timeout_ms) {
  if (pid_ <= 0) return -1;
  if (status_) return *status_;
  kill(pid_, sig);
  if (auto st = Wait(timeout_ms)) return *st;
  kill(pid_, SIGKILL);
  int ws = 0;
  waitpid(pid_, &ws, 0);
  status_ = StatusOf(ws);
  return -1;
}

RunResult Run(const std::vector<std::string>& argv, const std::vector<std::string>& env,
              int timeout_ms) {
  TempDir tmp;
  Process p(argv, env, tmp.File("out"), tmp.File("err"));
  RunResult r;
  if (!p.Start()) {
    r.err = "could not start " + (argv.empty() ? std::string() : argv[0]);
    return r;
  }
  auto st = p.Wait(timeout_ms);
  if (!st) {
    p.Stop(SIGKILL, 1000);
    r.exit_code = -1;
  } else {
    r.exit_code = *st;
  }
  r.out = p.Stdout();
  r.err = p.Stderr();
  if (!st) r.err += "\n[e2e harness: killed after " + std::to_string(timeout_ms) + " ms]";
  return r;
}

uint16_t PickFreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    socklen_t len = sizeof(a);
    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

bool PollUntil(const std::function<bool()>& done, int cap_ms, int every_ms) {
  const int64_t deadline = NowMs() + cap_ms;
  while (true) {
    if (done()) return true;
    if (NowMs() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(every_ms));
  }
}

ClosedPort::ClosedPort() {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  if (fd_ >= 0 && bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0) {
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
  }
}

ClosedPort::~ClosedPort() {
  if (fd_ >= 0) close(fd_);
}

namespace {

// The port of serve's first "<info> listening on HOST:PORT" line on stderr
// whose listener is `admin` or not.
uint16_t PortFromStderr(Process& serve, int cap_ms, bool admin) {
  const std::string kLine = "listening on ", kAdmin = "admin ";
  uint16_t port = 0;
  PollUntil(
      [&] {
        std::string err = serve.Stderr();
        size_t at = err.find(kLine);
        while (at != std::string::npos &&
               (at >= kAdmin.size() && err.compare(at - kAdmin.size(), kAdmin.size(), kAdmin) == 0) !=
                   admin) {
          at = err.find(kLine, at + 1);
        }
        if (at != std::string::npos) {
          size_t end = err.find_first_of(" \n", at + kLine.size());  // HOST:PORT ends
          size_t colon = err.rfind(':', end);
          if (end != std::string::npos && colon != std::string::npos && colon > at) {
            port = static_cast<uint16_t>(std::atoi(err.c_str() + colon + 1));
            return true;
          }
        }
        return !serve.Running();
      },
      cap_ms, 10);
  return port;
}

}  // namespace

uint16_t ListeningPort(Process& serve, int cap_ms) { return PortFromStderr(serve, cap_ms, false); }
uint16_t AdminPort(Process& serve, int cap_ms) { return PortFromStderr(serve, cap_ms, true); }

bool WaitForPort(uint16_t port, int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    int fd = ConnectLoopback(port);
    if (fd >= 0) {
      close(fd);
      return true;
    }
    if (NowMs() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace e2e
}  // namespace strangler
