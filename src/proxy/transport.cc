#include "proxy/transport.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>

#include "proxy/tls_context.h"

namespace strangler {

struct TlsSessionSlot::Impl {
  std::mutex mu;
  SSL_SESSION* session = nullptr;  // guarded by mu
  std::shared_ptr<SSL_CTX> ctx;    // guarded by mu: the context `session` is of
  std::atomic<uint64_t> handshakes{0}, resumed{0};
};

TlsSessionSlot::TlsSessionSlot() : impl_(std::make_unique<Impl>()) {}

TlsSessionSlot::~TlsSessionSlot() {
  if (impl_->session) SSL_SESSION_free(impl_->session);
}

void TlsSessionSlot::Put(SSL_SESSION* s, const SSL_CTX* from) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->ctx.get() != from) {
    SSL_SESSION_free(s);  // made under a context no longer in use
    return;
  }
  if (impl_->session) SSL_SESSION_free(impl_->session);
  impl_->session = s;
}

SSL_SESSION* TlsSessionSlot::Get(const std::shared_ptr<SSL_CTX>& ctx) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  if (impl_->ctx != ctx) {
    if (impl_->session) SSL_SESSION_free(impl_->session);
    impl_->session = nullptr;
    impl_->ctx = ctx;
  }
  if (impl_->session) SSL_SESSION_up_ref(impl_->session);
  return impl_->session;
}

uint64_t TlsSessionSlot::resumed() const { return impl_->resumed.load(std::memory_order_relaxed); }

uint64_t TlsSessionSlot::handshakes() const {
  return impl_->handshakes.load(std::memory_order_relaxed);
}

void TlsSessionSlot::CountHandshake(bool resumed) {
  impl_->handshakes.fetch_add(1, std::memory_order_relaxed);
  if (resumed) impl_->resumed.fetch_add(1, std::memory_order_relaxed);
}

namespace {

using Clock = std::chrono::steady_clock;

// How long a read may wait for the socket to take bytes OpenSSL must send
// first (or a write for bytes it must read first): both are rare (a TLS 1.3
// key update), and bounded so that neither can hold a fiber for good.
constexpr auto kCrossWait = std::chrono::seconds(10);

// A TLS connection: the SSL and, on the client side, where the sessions the
// backend gives go.
struct TlsConn {
  SSL* ssl = nullptr;
  std::shared_ptr<TlsSessionSlot> sessions;
  bool broken = false;  // a fatal error happened: no close_notify at the end
  ~TlsConn() { SSL_free(ssl); }
};

// fd -> its TlsConn, for every fd number the process can have (RLIMIT_NOFILE's
// hard limit, at most 2^22): one pointer each, in pages the kernel supplies
// when first written. An fd names one socket at a time, and a connection
// moves between threads only through a lock (the pools), so relaxed loads
// see the attachment.
class TlsTable {
 public:
  static TlsTable& Get() {
    static TlsTable table;
    return table;
  }
  TlsConn* At(int fd) const {
    if (!used_.load(std::memory_order_relaxed) || fd < 0 || static_cast<size_t>(fd) >= size_) {
      return nullptr;
    }
    return slots_[fd].load(std::memory_order_acquire);
  }
  bool Attach(int fd, TlsConn* c) {
    if (!slots_ || fd < 0 || static_cast<size_t>(fd) >= size_) return false;
    used_.store(true, std::memory_order_relaxed);
    slots_[fd].store(c, std::memory_order_release);
    return true;
  }
  TlsConn* Take(int fd) {
    if (!used_.load(std::memory_order_relaxed) || fd < 0 || static_cast<size_t>(fd) >= size_) {
      return nullptr;
    }
    return slots_[fd].exchange(nullptr, std::memory_order_acq_rel);
  }

 private:
  TlsTable() {
    rlimit lim{};
    size_t n = 1 << 16;
    if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_max != RLIM_INFINITY) {
      n = static_cast<size_t>(lim.rlim_max);
    } else {
      n = size_t{1} << 22;
    }
    n = std::min(n, size_t{1} << 22);
    void* mem = mmap(nullptr, n * sizeof(std::atomic<TlsConn*>), PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem != MAP_FAILED) {
      slots_ = static_cast<std::atomic<TlsConn*>*>(mem);  // zero pages: all null
      size_ = n;
    }
  }
  std::atomic<TlsConn*>* slots_ = nullptr;
  size_t size_ = 0;
  std::atomic<bool> used_{false};
};

TlsConn* TlsOf(int fd) { return TlsTable::Get().At(fd); }

// Parks the fiber until fd is ready the way OpenSSL asked (WANT_READ or
// WANT_WRITE). False when the deadline passed first.
bool WaitForTls(int fd, int ssl_error, Clock::time_point deadline) {
  const bool read = ssl_error == SSL_ERROR_WANT_READ;
  fio::NotReady(fd, read);
  const fio::WaitFor w{fd, read};
  return fio::WaitAnyUntil(&w, 1, deadline) >= 0;
}

// A fatal error on c: errno says what, -1.
ssize_t Broken(TlsConn* c, int ssl_error) {
  c->broken = true;
  if (!(ssl_error == SSL_ERROR_SYSCALL && errno != 0))
    errno = ssl_error == SSL_ERROR_SSL ? EPROTO : ECONNRESET;
  return -1;
}

int AsInt(size_t len) { return static_cast<int>(std::min<size_t>(len, INT_MAX)); }

ssize_t TlsRecv(int fd, TlsConn* c, char* buf, size_t len) {
  Clock::time_point deadline{};
  while (true) {
    ERR_clear_error();
    errno = 0;
    const int n = SSL_read(c->ssl, buf, AsInt(len));
    if (n > 0) {
      // One SSL_read gives one record. The records already read in (read
      // ahead) go out with it: a peer that sends one byte per record must
      // not cost one write to the other side per byte.
      size_t total = static_cast<size_t>(n);
      while (total < len && SSL_has_pending(c->ssl)) {
        ERR_clear_error();
        const int more = SSL_read(c->ssl, buf + total, AsInt(len - total));
        if (more <= 0) {
          ERR_clear_error();  // a partial record, the end or an error: the next call says
          break;
        }
        total += static_cast<size_t>(more);
      }
      return static_cast<ssize_t>(total);
    }
    const int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_ZERO_RETURN) return 0;  // close_notify (or FIN: see tls_context.cc)
    if (e == SSL_ERROR_WANT_READ) {
      fio::NotReady(fd, true);
      errno = EAGAIN;
      return -1;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      if (deadline == Clock::time_point{}) deadline = Clock::now() + kCrossWait;
      if (WaitForTls(fd, e, deadline)) continue;
      errno = ETIMEDOUT;
      return -1;
    }
    return Broken(c, e);
  }
}

ssize_t TlsSend(int fd, TlsConn* c, const char* data, size_t len) {
  Clock::time_point deadline{};
  while (true) {
    ERR_clear_error();
    errno = 0;
    const int n = SSL_write(c->ssl, data, AsInt(len));
    if (n > 0) return n;
    const int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_WRITE) {
      fio::NotReady(fd, false);
      errno = EAGAIN;
      return -1;
    }
    if (e == SSL_ERROR_WANT_READ) {
      if (deadline == Clock::time_point{}) deadline = Clock::now() + kCrossWait;
      if (WaitForTls(fd, e, deadline)) continue;
      errno = ETIMEDOUT;
      return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) {
      errno = EPIPE;
      return -1;
    }
    return Broken(c, e);
  }
}

bool Handshake(int fd, TlsConn* c, bool server, Clock::time_point deadline, std::string* why) {
  while (true) {
    ERR_clear_error();
    errno = 0;
    const int r = server ? SSL_accept(c->ssl) : SSL_connect(c->ssl);
    if (r == 1) return true;
    const int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
      if (WaitForTls(fd, e, deadline)) continue;
      c->broken = true;
      *why = "TLS handshake timed out";
      return false;
    }
    c->broken = true;
    *why = TlsHandshakeError(c->ssl, e, errno);
    return false;
  }
}

// Puts c on fd and shakes hands; on failure fd is left without TLS.
bool AttachAndShake(int fd, TlsConn* c, bool server, Clock::time_point deadline, std::string* why) {
  if (!TlsTable::Get().Attach(fd, c)) {
    delete c;
    *why = "socket number beyond the TLS table (RLIMIT_NOFILE)";
    return false;
  }
  if (Handshake(fd, c, server, deadline, why)) return true;
  fio::DropTls(fd);
  return false;
}

Clock::time_point Deadline(int timeout_ms) {
  return Clock::now() + std::chrono::milliseconds(timeout_ms);
}

}  // namespace

namespace fio {

ssize_t TryRecv(int fd, char* buf, size_t len) {
  if (TlsConn* c = TlsOf(fd)) return TlsRecv(fd, c, buf, len);
  ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) NotReady(fd, true);
  return n;
}

ssize_t TrySend(int fd, const char* data, size_t len) {
  if (TlsConn* c = TlsOf(fd)) return TlsSend(fd, c, data, len);
  ssize_t n = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) NotReady(fd, false);
  return n;
}

int Peek(int fd) {
  if (TlsConn* c = TlsOf(fd)) {
    ERR_clear_error();
    errno = 0;
    char probe;
    const int n = SSL_peek(c->ssl, &probe, 1);
    if (n > 0) return 1;
    const int e = SSL_get_error(c->ssl, n);
    if (e == SSL_ERROR_WANT_READ) {
      // Part of a record came (SSL_peek took it in and waits for the rest):
      // bytes, as a plain socket's first byte would be. Buffered bytes, or
      // a record whose header was read and whose body was not ("RB"; the
      // header is no longer counted as pending).
      if (SSL_has_pending(c->ssl) || std::strcmp(SSL_rstate_string(c->ssl), "RH") != 0) return 1;
      NotReady(fd, true);
      errno = EAGAIN;
      return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) return 0;
    if (e == SSL_ERROR_WANT_WRITE) {
      errno = EIO;  // cannot tell without writing: not clean
      return -1;
    }
    return static_cast<int>(Broken(c, e));
  }
  char probe;
  ssize_t n = recv(fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return 1;
  if (n == 0) return 0;
  if (errno == EAGAIN || errno == EWOULDBLOCK) NotReady(fd, true);
  return -1;
}

void ShutdownWrite(int fd) {
  if (TlsConn* c = TlsOf(fd)) {
    if (!c->broken && SSL_is_init_finished(c->ssl) &&
        !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN)) {
      ERR_clear_error();
      SSL_shutdown(c->ssl);  // close_notify, as far as the socket takes it now
      ERR_clear_error();
    }
  }
  shutdown(fd, SHUT_WR);
}

bool IsTls(int fd) { return TlsOf(fd) != nullptr; }

void TrimIdle(int fd) {
  if (TlsConn* c = TlsOf(fd)) SSL_free_buffers(c->ssl);  // refused while they hold bytes
}

void DropTls(int fd) {
  TlsConn* c = TlsTable::Get().Take(fd);
  if (!c) return;
  if (!c->broken && SSL_is_init_finished(c->ssl) &&
      !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN)) {
    ERR_clear_error();
    SSL_shutdown(c->ssl);
    ERR_clear_error();
  }
  delete c;
}

void CloseUnregistered(int fd) {
  DropTls(fd);
  close(fd);
}

ssize_t Recv(int fd, char* buf, size_t len, int timeout_ms) {
  const auto deadline = Deadline(timeout_ms);
  while (true) {
    ssize_t n = TryRecv(fd, buf, len);
    if (n >= 0) return n;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return -1;
    const WaitFor readable{fd, true};
    if (WaitAnyUntil(&readable, 1, deadline) < 0) {
      errno = ETIMEDOUT;
      return -1;
    }
  }
}

namespace {

// Sends everything, parking while the socket is full. With `watch_answer`,
// also wakes when the peer has bytes for us (see SendAllOrAnswer).
SendResult SendLoop(int fd, const char* data, size_t len, int timeout_ms, bool watch_answer,
                    size_t* sent) {
  const auto deadline = Deadline(timeout_ms);
  if (sent) *sent = 0;
  while (len > 0) {
    ssize_t n = TrySend(fd, data, len);
    if (n > 0) {
      data += n;
      len -= static_cast<size_t>(n);
      if (sent) *sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
      // The peer reset or closed: an answer it sent first is still readable,
      // and it is the answer (not a reason to send the request again).
      int saved = errno;
      if (watch_answer && Peek(fd) > 0) return SendResult::kAnswered;
      errno = saved;
      return SendResult::kError;
    }
    const WaitFor both[2] = {{fd, false}, {fd, true}};
    int which = WaitAnyUntil(both, watch_answer ? 2 : 1, deadline);
    if (which < 0) {
      errno = ETIMEDOUT;
      return SendResult::kError;
    }
    if (which == 1) {
      // Readable: an answer, or the end of the connection. Either way the
      // rest of this body is not wanted.
      int p = Peek(fd);
      if (p > 0) return SendResult::kAnswered;
      if (p == 0) {
        errno = EPIPE;
        return SendResult::kError;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK) return SendResult::kError;
      // Spurious (or a TLS record with no data): keep sending.
    }
  }
  return SendResult::kSent;
}

}  // namespace

bool SendAll(int fd, const char* data, size_t len, int timeout_ms) {
  return SendLoop(fd, data, len, timeout_ms, false, nullptr) == SendResult::kSent;
}

SendResult SendAllOrAnswer(int fd, const char* data, size_t len, int timeout_ms, size_t* sent) {
  return SendLoop(fd, data, len, timeout_ms, true, sent);
}

bool IdleAndClean(int fd) {
  // Unread bytes (1), closed (0) or failed: not clean.
  return Peek(fd) < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

bool QuietUntil(int fd, Clock::time_point until) {
  while (true) {
    if (!IdleAndClean(fd)) return false;
    if (Clock::now() >= until) return true;
    const WaitFor readable{fd, true};
    WaitAnyUntil(&readable, 1, until);  // ready or not, the probe decides
  }
}

bool TlsAccept(int fd, SSL_CTX* ctx, int timeout_ms, std::string* why, bool* plain_http) {
  *plain_http = false;
  const auto deadline = Deadline(timeout_ms);
  // The first byte tells a TLS handshake record (22) from anything else.
  unsigned char first = 0;
  while (true) {
    ssize_t n = recv(fd, &first, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) break;
    if (n == 0) {
      *why = "closed before a TLS handshake";
      return false;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      *why = std::string("before a TLS handshake: ") + std::strerror(errno);
      return false;
    }
    NotReady(fd, true);
    const WaitFor readable{fd, true};
    if (WaitAnyUntil(&readable, 1, deadline) < 0) {
      *why = "no TLS handshake in time";
      return false;
    }
  }
  if (first != 22) {
    *plain_http = std::isupper(first) != 0;  // GET, POST, ...: a request in plain HTTP
    *why = *plain_http ? "plain HTTP sent to the TLS listener" : "not a TLS handshake";
    return false;
  }
  SSL* ssl = SSL_new(ctx);
  if (!ssl) {
    *why = "out of memory for TLS";
    return false;
  }
  SSL_set_fd(ssl, fd);
  auto* c = new TlsConn{ssl, nullptr};
  return AttachAndShake(fd, c, true, deadline, why);
}

bool TlsConnect(int fd, const std::shared_ptr<SSL_CTX>& ctx, const std::string& host,
                const std::shared_ptr<TlsSessionSlot>& sessions, int timeout_ms, std::string* why) {
  SSL* ssl = NewClientSsl(ctx.get(), fd, host);
  if (!ssl) {
    *why = "out of memory for TLS";
    return false;
  }
  auto* c = new TlsConn{ssl, sessions};
  SSL_set_app_data(ssl, c);  // for the new-session callback (KeepTlsSessions)
  if (sessions) {
    if (SSL_SESSION* s = sessions->Get(ctx)) {
      SSL_set_session(ssl, s);
      SSL_SESSION_free(s);
    }
  }
  if (!AttachAndShake(fd, c, false, Deadline(timeout_ms), why)) return false;
  if (sessions) sessions->CountHandshake(SSL_session_reused(ssl) == 1);
  return true;
}

void KeepTlsSessions(SSL_CTX* ctx) {
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, [](SSL* ssl, SSL_SESSION* s) -> int {
    auto* c = static_cast<TlsConn*>(SSL_get_app_data(ssl));
    if (!c || !c->sessions) return 0;
    c->sessions->Put(s, SSL_get_SSL_CTX(ssl));  // the reference is ours now
    return 1;
  });
}

}  // namespace fio
}  // namespace strangler
