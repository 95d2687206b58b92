// The TLS settings of both sides, as OpenSSL contexts: the listener's
// certificate and key (reloaded when their files change), and one client
// context per way of checking backends (the system's CAs, a --ca file, or no
// check with --tls-insecure). Both speak TLS 1.2 and 1.3 only, offer or pick
// ALPN http/1.1, and read a TCP close without close_notify as the end of
// the stream (as nginx does: HTTP's own framing says whether an answer was
// whole).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "base/status.h"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace strangler {

using SslCtxPtr = std::shared_ptr<SSL_CTX>;

// serve --tls-cert FILE --tls-key FILE.
class ServerTls {
 public:
  // An error names the file and what is wrong with it.
  static Result<std::unique_ptr<ServerTls>> Load(const std::string& cert_file,
                                                 const std::string& key_file);
  // The context new connections use (any thread). A connection keeps the
  // context it began with.
  SslCtxPtr Current() const { return std::atomic_load(&ctx_); }

  enum class Reload { kUnchanged, kReloaded, kFailed };
  // Builds a new context when either file changed since the last look (size,
  // time or inode, as a rename into place changes). kFailed (with *why) keeps
  // the old one; a pair caught half-written is tried again at the next look.
  Reload CheckFiles(std::string* why);
  const std::string& cert_file() const { return cert_file_; }

  // Counted by the listener (any thread).
  std::atomic<uint64_t> handshakes{0};
  std::atomic<uint64_t> failed_handshakes{0};
  std::atomic<uint64_t> plain_http{0};  // plain HTTP sent to the TLS port
  std::atomic<uint64_t> reloads{0};

 private:
  struct Stamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtime_ns = 0;
    bool operator==(const Stamp& o) const {
      return dev == o.dev && ino == o.ino && size == o.size && mtime_ns == o.mtime_ns;
    }
  };
  static Stamp StampOf(const std::string& file);
  ServerTls(std::string cert, std::string key)
      : cert_file_(std::move(cert)), key_file_(std::move(key)) {}

  std::string cert_file_, key_file_;
  SslCtxPtr ctx_;
  Stamp cert_stamp_, key_stamp_;  // of the files ctx_ was built from, or last tried
};

// A client context for https backends: verifying against the system's CAs,
// or only `ca_file`'s when given; none at all when `insecure`. The same
// settings share one context (the process's cache); a CA file is read again
// when it changed. An error names the CA file.
Result<SslCtxPtr> ClientTlsContext(const std::string& ca_file, bool insecure);

// How an instance's connections speak: plain, or TLS checked as a backend's
// --ca / --tls-insecure say.
struct TlsClientSettings {
  bool on = false;
  std::string ca_file;
  bool insecure = false;
  // Instances are shared by backends with the same URL and the same settings.
  std::string Key() const {
    return on ? "https|" + ca_file + "|" + (insecure ? "1" : "0") : "http";
  }
};

// A client SSL on fd for `host`: SNI when it is a name, and (when ctx checks
// certificates) the certificate must be for that name or address.
SSL* NewClientSsl(SSL_CTX* ctx, int fd, const std::string& host);

// Why a handshake failed (after SSL_connect/SSL_accept said `ssl_error`,
// errno then `saved_errno`), in words for a log line or a 502's JSON:
// "certificate not accepted: hostname mismatch", ... Empties OpenSSL's
// error queue.
std::string TlsHandshakeError(SSL* ssl, int ssl_error, int saved_errno);

// Checks that `ca_file` holds at least one PEM certificate (for the CLI, so
// that a typo is refused when the backend is written, not when it is used).
Status CheckCaFile(const std::string& ca_file);

}  // namespace strangler
