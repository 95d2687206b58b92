#include "proxy/proxy.h"

#include <malloc.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "proxy/error_reply.h"
#include "proxy/fiber.h"
#include "proxy/read_buffer.h"
#include "proxy/session.h"
#include "proxy/transport.h"

namespace strangler {
namespace {

constexpr int kTickMs = 250;  // the tick of a session's waits (tunnels end this much early)
constexpr int kSendBusyMs = 2000;

// A client over --max-connections: 503 and a lingering close, on a fiber
// (the client's request is usually in flight; closing at once would reset
// the connection before it reads the answer).
constexpr int kBusyFlag = 1 << 30;    // marks such an fd handed to the pool
constexpr int kMaxBusyAnswers = 256;  // beyond this many at once, just closed
void AnswerBusy(int fd) {
  const std::string& busy = BusyReply();
  if (fio::SendAll(fd, busy.data(), busy.size(), kSendBusyMs)) LingeringClose(fd);
  fio::Close(fd);
}

}  // namespace

Proxy::Proxy(ProxyOptions opts, DecisionLog* log) : opts_(opts), log_(log) {
  if (opts_.workers <= 0) {
    opts_.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  upstreams_.set_workers(opts_.workers);
  metrics_ = std::make_unique<RequestMetrics>(opts_.workers);
  upstreams_.set_metrics(metrics_.get());
}

int Proxy::OpenSessions() {
  std::lock_guard<std::mutex> lock(mu_);
  return sessions_;
}

Proxy::~Proxy() { Shutdown(0); }

void Proxy::SetSnapshot(std::shared_ptr<const ProxySnapshot> snap) {
  std::atomic_store(&snapshot_, std::move(snap));
  snapshot_gen_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const ProxySnapshot> Proxy::snapshot() const {
  return std::atomic_load(&snapshot_);
}

void Proxy::Start(int listen_fd) {
  listen_fd_ = listen_fd;
  pool_ = std::make_unique<WorkerPool>(
      opts_.workers,
      [this](int fd) {
        if (fd & kBusyFlag) {
          fd &= ~kBusyFlag;
          fio::Adopt(fd);
          if (opts_.tls) {
            fio::Close(fd);  // no plain 503 on a TLS port, and no handshake for one
          } else {
            AnswerBusy(fd);
          }
          busy_answers_.fetch_sub(1, std::memory_order_relaxed);
          return;
        }
        const auto accepted = std::chrono::steady_clock::now();
        fio::Adopt(fd);
        // Before the handshake: its flights are several small writes, which
        // Nagle's algorithm would hold for the client's delayed ACK.
        SetNoDelay(fd);
        if (opts_.tls && !ShakeHands(fd)) {
          fio::Close(fd);
          SessionEnded();
          return;
        }
        {
          Session session(this, fd, accepted);
          session.Run();
        }
        SessionEnded();
      },
      [this](int worker) {
        upstreams_.ExpireIdle(worker);
        BufferCache::Local().Trim();  // the read buffers no connection took for a second
      });
  // The Mirror's pooled connections (its pool slot follows the workers').
  mirror_.SetHousekeeping([this] { upstreams_.ExpireIdle(opts_.workers); });
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

void Proxy::AcceptLoop() {
  while (!stopping()) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stopping()) break;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (sessions_ >= opts_.max_connections) {
        if (reclaim_.load(std::memory_order_relaxed) < kMaxReclaim) {
          reclaim_.fetch_add(1, std::memory_order_relaxed);
        }
        if (busy_answers_.fetch_add(1, std::memory_order_relaxed) < kMaxBusyAnswers &&
            fd < kBusyFlag) {
          pool_->Submit(fd | kBusyFlag);
        } else {
          busy_answers_.fetch_sub(1, std::memory_order_relaxed);
          close(fd);
        }
        continue;
      }
      ++sessions_;
      peak_sessions_ = std::max(peak_sessions_, sessions_);
    }
    pool_->Submit(fd);
  }
}

bool Proxy::ShakeHands(int fd) {
  ServerTls& tls = *opts_.tls;
  SslCtxPtr ctx = tls.Current();
  std::string why;
  bool plain_http = false;
  if (fio::TlsAccept(fd, ctx.get(), opts_.header_timeout_ms, &why, &plain_http)) {
    tls.handshakes.fetch_add(1, std::memory_order_relaxed);
    fio::TrimStack();  // the handshake ran deep; the connection may now idle for long
    return true;
  }
  tls.failed_handshakes.fetch_add(1, std::memory_order_relaxed);
  if (plain_http) {
    // As nginx does: a plain answer says what went wrong, to a person
    // trying http:// on this port.
    tls.plain_http.fetch_add(1, std::memory_order_relaxed);
    const std::string& answer = PlainHttpOnTlsReply();
    if (fio::SendAll(fd, answer.data(), answer.size(), kSendBusyMs)) LingeringClose(fd);
  }
  return false;
}

bool Proxy::TrimAfterBurst() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (peak_sessions_ - sessions_ < kTrimAfterDrop || sessions_ > peak_sessions_ / 2) {
      return false;
    }
    peak_sessions_ = sessions_;
  }
  malloc_trim(0);
  return true;
}

void Proxy::SessionEnded() {
  std::lock_guard<std::mutex> lock(mu_);
  --sessions_;
  // Room again: no idle connection need close for it.
  if (sessions_ < opts_.max_connections) reclaim_.store(0, std::memory_order_relaxed);
  cv_.notify_all();
}

bool Proxy::TakeIdleReclaim() {
  int n = reclaim_.load(std::memory_order_relaxed);
  while (n > 0) {
    if (reclaim_.compare_exchange_weak(n, n - 1, std::memory_order_relaxed)) return true;
  }
  return false;
}

bool Proxy::Shutdown(int drain_ms) {
  // Tunnels have no request to finish: they are ended a little before the
  // drain time is up, so that their sessions can still log and close. Set
  // before stopping_, which the tunnels read first.
  if (!stopping()) {
    auto tunnels_end = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(std::max(0, drain_ms - 2 * kTickMs));
    tunnels_end_at_.store(tunnels_end.time_since_epoch().count(), std::memory_order_relaxed);
  }
  if (stopping_.exchange(true)) {
    if (acceptor_.joinable()) acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    return sessions_ == 0;
  }
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  std::unique_lock<std::mutex> lock(mu_);
  bool drained =
      cv_.wait_for(lock, std::chrono::milliseconds(drain_ms), [this] { return sessions_ == 0; });
  lock.unlock();
  if (drained && pool_) {
    pool_->Stop();
    pool_->Join();
  }
  if (drained) mirror_.Stop();
  return drained;
}

}  // namespace strangler
