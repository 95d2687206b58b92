#include "proxy/health_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string_view>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <memory>

#include "proxy/net.h"

namespace strangler {
namespace {

using Clock = std::chrono::steady_clock;

// Waits for `events` on fd until the deadline, in slices of at most 100 ms
// so that a stop is seen soon. False on timeout or stop (*what says which).
bool WaitFor(int fd, short events, Clock::time_point deadline,
             const std::function<bool()>& cancelled, int timeout_ms, std::string* what) {
  while (true) {
    if (cancelled()) {
      *what = "cancelled";
      return false;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      *what = "no answer within " + std::to_string(timeout_ms) + " ms";
      return false;
    }
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 100)));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) {
      *what = std::string("poll: ") + std::strerror(errno);
      return false;
    }
  }
}

// The status of an HTTP/1.x status line (its CR, if any, included), or -1:
// "HTTP/1.x", a space, three digits, then the end or a space.
int StatusOf(std::string_view line) {
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (line.size() < 12 || line.compare(0, 7, "HTTP/1.") != 0 || line[7] < '0' || line[7] > '9' ||
      line[8] != ' ' || (line.size() > 12 && line[12] != ' ')) {
    return -1;
  }
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (line[i] < '0' || line[i] > '9') return -1;
    status = status * 10 + (line[i] - '0');
  }
  return status;
}

// Where the head that starts at `from` ends (after its empty line, CRLF or
// bare LF line ends), or npos while it is not all in.
size_t HeadEnd(const std::string& in, size_t from) {
  for (size_t nl = in.find('\n', from); nl != std::string::npos; nl = in.find('\n', nl + 1)) {
    size_t next = nl + 1;
    if (next < in.size() && in[next] == '\n') return next + 1;
    if (next + 1 < in.size() && in[next] == '\r' && in[next + 1] == '\n') return next + 2;
  }
  return std::string::npos;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// A check's TLS, freed before its socket closes (declared after the Fd).
struct FreeSsl {
  void operator()(SSL* s) const { SSL_free(s); }
};
using Tls = std::unique_ptr<SSL, FreeSsl>;

}  // namespace

HealthProbe::HealthProbe(std::string host, uint16_t port, TlsClientSettings tls,
                         InstanceHealth* health, std::function<void()> on_down)
    : host_(std::move(host)),
      port_(port),
      tls_(std::move(tls)),
      health_(health),
      on_down_(std::move(on_down)) {}

HealthProbe::~HealthProbe() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void HealthProbe::Configure(const std::string& path, int every_ms, int timeout_ms) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (path == path_ && every_ms == every_ms_ && timeout_ms == timeout_ms_) return;
    path_ = path;
    every_ms_ = every_ms;
    timeout_ms_ = timeout_ms;
    generation_.fetch_add(1, std::memory_order_relaxed);
    if (!path.empty() && !thread_.joinable()) thread_ = std::thread([this] { Run(); });
  }
  health_->SetChecked(!path.empty());
  cv_.notify_all();
}

void HealthProbe::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    if (path_.empty()) {
      cv_.wait(lock, [this] { return stop_ || !path_.empty(); });
      continue;
    }
    const std::string path = path_;
    const int every_ms = every_ms_, timeout_ms = timeout_ms_;
    const uint64_t generation = generation_.load(std::memory_order_relaxed);
    const Clock::time_point next = Clock::now() + std::chrono::milliseconds(every_ms);
    lock.unlock();
    auto cancelled = [&] {
      return stop_.load(std::memory_order_relaxed) ||
             generation_.load(std::memory_order_relaxed) != generation;
    };
    std::string what;
    bool passed = CheckOnce(host_, port_, tls_, path, timeout_ms, cancelled, &what);
    // A check cut short by new settings or a stop says nothing.
    if (!cancelled() && health_->CheckResult(passed, "GET " + path + ": " + what) && on_down_) {
      on_down_();
    }
    lock.lock();
    // Until the next check is due, or the configuration changes.
    cv_.wait_until(lock, next, [&] {
      return stop_ || path_ != path || every_ms_ != every_ms || timeout_ms_ != timeout_ms;
    });
  }
}

bool HealthProbe::CheckOnce(const std::string& host, uint16_t port, const TlsClientSettings& tls,
                            const std::string& path, int timeout_ms,
                            const std::function<bool()>& cancelled, std::string* what) {
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  auto addr = Resolve(host, port);
  if (!addr.ok()) {
    *what = "name not resolved: " + addr.status().message();
    return false;
  }
  Fd fd(socket(addr->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    *what = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  if (connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr->addr), addr->len) != 0 &&
      errno != EINPROGRESS) {
    *what = errno == ECONNREFUSED ? "connection refused" : std::strerror(errno);
    return false;
  }
  if (!WaitFor(fd.get(), POLLOUT, deadline, cancelled, timeout_ms, what)) return false;
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    *what = err == ECONNREFUSED ? "connection refused" : std::strerror(err);
    return false;
  }
  Tls ssl;
  if (tls.on) {
    auto ctx = ClientTlsContext(tls.ca_file, tls.insecure);
    if (!ctx.ok()) {
      *what = ctx.status().message();
      return false;
    }
    ssl.reset(NewClientSsl(ctx->get(), fd.get(), host));
    while (true) {
      ERR_clear_error();
      errno = 0;
      const int r = SSL_connect(ssl.get());
      if (r == 1) break;
      const int e = SSL_get_error(ssl.get(), r);
      if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) {
        *what = TlsHandshakeError(ssl.get(), e, errno);
        return false;
      }
      if (!WaitFor(fd.get(), e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline, cancelled,
                   timeout_ms, what)) {
        return false;
      }
    }
  }
  // One try of a read or a write, plain or TLS: > 0, 0 at the end, -1 with
  // *wait the poll event to wait for (0: failed, errno set).
  auto io = [&](bool write, char* buf, size_t len, short* wait) -> ssize_t {
    *wait = 0;
    if (!ssl) {
      ssize_t n = write ? send(fd.get(), buf, len, MSG_NOSIGNAL) : recv(fd.get(), buf, len, 0);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) *wait = write ? POLLOUT : POLLIN;
      return n;
    }
    ERR_clear_error();
    errno = 0;
    const int n = write ? SSL_write(ssl.get(), buf, static_cast<int>(len))
                        : SSL_read(ssl.get(), buf, static_cast<int>(len));
    if (n > 0) return n;
    const int e = SSL_get_error(ssl.get(), n);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_WANT_READ) *wait = POLLIN;
    if (e == SSL_ERROR_WANT_WRITE) *wait = POLLOUT;
    if (*wait == 0 && errno == 0) errno = EPROTO;
    ERR_clear_error();
    return -1;
  };
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + HostPortText(host, port) +
                              "\r\nUser-Agent: strangler-health-check\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    short wait = 0;
    ssize_t n = io(true, const_cast<char*>(request.data()) + sent, request.size() - sent, &wait);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (wait != 0) {
      if (!WaitFor(fd.get(), wait, deadline, cancelled, timeout_ms, what)) return false;
      continue;
    }
    *what = std::string("send: ") + std::strerror(errno);
    return false;
  }
  // The final status line is all a check needs (interim 1xx heads are
  // passed over); at most kMaxBytes are read for it.
  constexpr size_t kMaxBytes = 16 * 1024;
  std::string in;
  size_t head = 0;  // where the head being read begins
  char buf[1024];
  while (true) {
    const size_t eol = in.find('\n', head);
    if (eol != std::string::npos) {
      const int status = StatusOf(std::string_view(in).substr(head, eol - head));
      if (status < 0) {
        *what = "not an HTTP/1 answer";
        return false;
      }
      if (status >= 200 || status == 101) {
        *what = std::to_string(status);
        return status >= 200 && status < 400;
      }
      const size_t end = HeadEnd(in, eol);
      if (end != std::string::npos) {
        head = end;
        continue;
      }
    }
    if (in.size() >= kMaxBytes) {
      *what = "no status line in " + std::to_string(kMaxBytes) + " bytes";
      return false;
    }
    short wait = 0;
    ssize_t n = io(false, buf, std::min(sizeof(buf), kMaxBytes - in.size()), &wait);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (wait != 0) {
      if (!WaitFor(fd.get(), wait, deadline, cancelled, timeout_ms, what)) return false;
      continue;
    }
    *what = n == 0 ? "closed before a status line" : std::string("recv: ") + std::strerror(errno);
    return false;
  }
}

}  // namespace strangler
