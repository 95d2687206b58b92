// Bytes on a connection, plain or TLS. Every read and write of the data plane
// (client connections, backend connections, tunnels, the mirror's copies)
// goes through here, so that a socket with TLS on it is used exactly like a
// plain one: the fiber parks while OpenSSL waits for the socket, never the
// worker. A TLS connection is an fd with an SSL attached (AttachTls); the
// attachment follows the fd from worker to worker (a pooled connection) and
// goes when the fd is closed by fio::Close or fio::CloseUnregistered.
//
// Like the rest of fio::, the waiting calls run inside a fiber; the Try*
// calls and Peek never wait.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "proxy/fiber.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;

namespace strangler {

// Where a backend's TLS sessions are kept for resumption: the newest one the
// backend gave under the context in use (any thread). A session is only
// offered to a connection of the context it was made under: when the
// context changes (a --ca file rewritten), the old trust is not resumed.
class TlsSessionSlot {
 public:
  TlsSessionSlot();
  ~TlsSessionSlot();
  TlsSessionSlot(const TlsSessionSlot&) = delete;
  TlsSessionSlot& operator=(const TlsSessionSlot&) = delete;
  // Takes the reference (and frees it when `from` is not the current context).
  void Put(SSL_SESSION* s, const SSL_CTX* from);
  // A new reference, or null; `ctx` becomes the current context (a session
  // of another is dropped).
  SSL_SESSION* Get(const std::shared_ptr<SSL_CTX>& ctx);
  // Handshakes done, and of those the ones that resumed a session.
  uint64_t handshakes() const;
  uint64_t resumed() const;
  void CountHandshake(bool resumed);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

namespace fio {

// One non-blocking read: > 0 bytes, 0 at the end (FIN or TLS close_notify),
// -1 with errno (EAGAIN: nothing now, and the fd is marked not ready).
ssize_t TryRecv(int fd, char* buf, size_t len);
// One non-blocking write: > 0 bytes taken, -1 with errno (EAGAIN as above).
// After EAGAIN the same bytes must be offered again (TLS records).
ssize_t TrySend(int fd, const char* data, size_t len);
// Whether bytes wait to be read, without taking them: 1 yes, 0 the peer
// ended the connection, -1 with errno (EAGAIN: none, fd marked not ready).
// Never waits (fit for housekeeping outside a fiber).
int Peek(int fd);
// Ends our sending direction: TLS close_notify (when TLS), then FIN.
void ShutdownWrite(int fd);
// Closes a socket not registered with the current worker (another worker's
// pooled connection, or any thread's), its TLS with it.
void CloseUnregistered(int fd);
// True when fd has TLS attached.
bool IsTls(int fd);
// A connection about to wait idle: its TLS read and write buffers (about
// 34 KiB, kept while a read waits for the next record) go back to the heap
// when they hold nothing. Nothing for a plain socket.
void TrimIdle(int fd);
// Frees fd's TLS, if any, sending close_notify when the connection is sound
// (fio::Close does this; for a socket closed some other way).
void DropTls(int fd);

// > 0 bytes, 0 at EOF, -1 with errno (ETIMEDOUT when timeout_ms passed).
ssize_t Recv(int fd, char* buf, size_t len, int timeout_ms);
// False on error or timeout (errno ETIMEDOUT).
bool SendAll(int fd, const char* data, size_t len, int timeout_ms);
// For a pooled keep-alive connection about to carry a new request: true
// when the peer has not closed it and has sent nothing since its last
// answer. Bytes waiting there belong to no request; handing them to the
// next one is how one client gets another's answer. (TLS records that carry
// no data, as session tickets, are taken and do not count.)
bool IdleAndClean(int fd);
// IdleAndClean, and still so at `until` (the fiber waits till then, or
// until a byte or the peer's close comes first).
bool QuietUntil(int fd, std::chrono::steady_clock::time_point until);

enum class SendResult { kSent, kAnswered, kError };
// SendAll for a request body: when the peer stops reading and has bytes for
// us (an answer before the whole request arrived, as an early 413 or 401),
// stops with kAnswered. *sent (when given) is what was sent, whatever the
// result. kError sets errno.
SendResult SendAllOrAnswer(int fd, const char* data, size_t len, int timeout_ms,
                           size_t* sent = nullptr);

// The server side of a TLS handshake on an adopted socket. True with TLS
// attached to fd; false with *why (the fd stays, without TLS: the caller
// closes it). *plain_http is set when the first bytes were an HTTP request.
bool TlsAccept(int fd, SSL_CTX* ctx, int timeout_ms, std::string* why, bool* plain_http);

// The client side, to `host` (SNI when a name; the certificate is checked
// against it when ctx verifies). A session from `sessions` is offered, and
// the backend's new ones are kept there (it must outlive the connection:
// shared). False with *why, as TlsAccept.
bool TlsConnect(int fd, const std::shared_ptr<SSL_CTX>& ctx, const std::string& host,
                const std::shared_ptr<TlsSessionSlot>& sessions, int timeout_ms, std::string* why);
// Makes a client context hand each session a backend gives to the
// connection's TlsSessionSlot (TlsConnect).
void KeepTlsSessions(SSL_CTX* ctx);

}  // namespace fio
}  // namespace strangler
