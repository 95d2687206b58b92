#include "proxy/health_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "proxy/net.h"

namespace strangler {
namespace {

using Clock = std::chrono::steady_clock;

// Waits for `events` on fd until the deadline, in slices of at most 100 ms
// so that a stop is seen soon. False on timeout or stop (*what says which).
bool WaitFor(int fd, short events, Clock::time_point deadline, const std::atomic<bool>* stop,
             int timeout_ms, std::string* what) {
  while (true) {
    if (stop->load(std::memory_order_relaxed)) {
      *what = "stopped";
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

// The status of an HTTP/1.x status line at the start of `head`, or -1.
int StatusOf(const std::string& head) {
  if (head.size() < 12 || head.compare(0, 7, "HTTP/1.") != 0 || head[8] != ' ') return -1;
  int status = 0;
  for (size_t i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return -1;
    status = status * 10 + (head[i] - '0');
  }
  return status;
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

}  // namespace

HealthProbe::HealthProbe(std::string host, uint16_t port, InstanceHealth* health)
    : host_(std::move(host)), port_(port), health_(health) {}

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
    const Clock::time_point next = Clock::now() + std::chrono::milliseconds(every_ms);
    lock.unlock();
    std::string what;
    bool passed = CheckOnce(host_, port_, path, timeout_ms, &stop_, &what);
    if (!stop_) health_->CheckResult(passed, "GET " + path + ": " + what);
    lock.lock();
    // Until the next check is due, or the configuration changes.
    cv_.wait_until(lock, next, [&] {
      return stop_ || path_ != path || every_ms_ != every_ms || timeout_ms_ != timeout_ms;
    });
  }
}

bool HealthProbe::CheckOnce(const std::string& host, uint16_t port, const std::string& path,
                            int timeout_ms, const std::atomic<bool>* stop, std::string* what) {
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
  if (!WaitFor(fd.get(), POLLOUT, deadline, stop, timeout_ms, what)) return false;
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    *what = err == ECONNREFUSED ? "connection refused" : std::strerror(err);
    return false;
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + HostPortText(host, port) +
                              "\r\nUser-Agent: strangler-health-check\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      if (!WaitFor(fd.get(), POLLOUT, deadline, stop, timeout_ms, what)) return false;
      continue;
    }
    *what = std::string("send: ") + std::strerror(errno);
    return false;
  }
  // The status line is all a check needs.
  std::string head;
  char buf[512];
  while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
    if (!WaitFor(fd.get(), POLLIN, deadline, stop, timeout_ms, what)) return false;
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    *what = n == 0 ? "closed before a status line" : std::string("recv: ") + std::strerror(errno);
    return false;
  }
  const int status = StatusOf(head);
  if (status < 0) {
    *what = "not an HTTP/1 answer";
    return false;
  }
  *what = std::to_string(status);
  return status >= 200 && status < 400;
}

}  // namespace strangler
