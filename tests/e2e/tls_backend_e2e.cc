// https:// backends (PRODUCT.md "Backends in production"): the router speaks
// TLS 1.2/1.3 to an instance whose URL is https://, sends SNI for a host name
// (none for an address), checks the certificate against the host and the
// system's CAs or --ca FILE's (or not at all with --tls-insecure), keeps
// sessions per instance and resumes them, and treats a refused certificate
// as a connect failure: a 502 saying why, tried once on another instance,
// the instance's last failure, passive ejection, strangler_upstream_errors_total
// {kind="tls"}. Health checks, WebSocket upgrades and the mirror speak TLS too.
// A change of trust (--tls-verify, another --ca, new contents in the --ca
// file) applies to the next connection: no session made before it resumes.
//
// The backend is an in-process OpenSSL server written below (TlsBackend): one
// thread per connection, keep-alive HTTP/1.1 that echoes what it received,
// WebSocket echo after a 101, and a record of each connection's handshake
// (SNI, resumed, ALPN, or why it failed). The certificates are made with the
// `openssl` CLI (tls_helpers.h): a CA, a second CA, server certificates for
// localhost + 127.0.0.1, for another name, an expired one, a self-signed one.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "tls_helpers.h"
#include "websocket.h"
#include "wire.h"

namespace strangler {
namespace e2e {
namespace {

constexpr int kTimeoutMs = 10000;  // guards against hangs only

// OpenSSL's own words for a verify error, as the router quotes them.
std::string VerifyText(long code) { return X509_verify_cert_error_string(code); }

// The tests name backends https://localhost:PORT and expect that to reach
// the test servers on 127.0.0.1.
bool LocalhostIsIpv4Loopback() {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo("localhost", "80", &hints, &res) != 0 || !res) return false;
  bool ok = false;
  if (res->ai_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(res->ai_addr);
    ok = ntohl(in->sin_addr.s_addr) == INADDR_LOOPBACK;
  }
  freeaddrinfo(res);
  return ok;
}

// --- certificates ------------------------------------------------------------

struct Certs {
  std::string ca;        // the CA that signs the server certificates
  std::string other_ca;  // a second CA that signs nothing here
  KeyPair good;          // localhost + 127.0.0.1, signed by ca
  KeyPair wrong_host;    // other.example + 10.9.9.9, signed by ca
  KeyPair expired;       // localhost + 127.0.0.1, signed by ca, valid 2020-01-01..02 only
  KeyPair self_signed;   // localhost + 127.0.0.1, its own issuer
};

// The certificates of Certs, made in `dir`.
Certs MakeCerts(const TempDir& dir) {
  Certs c;
  const KeyPair ca = MakeCa(dir.File("ca"), "strangler e2e CA");
  c.ca = ca.crt;
  c.other_ca = MakeCa(dir.File("other-ca"), "strangler e2e other CA").crt;
  c.good = MakeServerCert(ca, dir.File("good"), "good", "DNS:localhost,IP:127.0.0.1", 0x1001);
  c.wrong_host = MakeServerCert(ca, dir.File("wrong-host"), "other.example",
                                "DNS:other.example,IP:10.9.9.9", 0x1002);

  // Expired: openssl 3.0's x509 has no -not_before/-not_after, so `openssl
  // ca` with fixed start and end dates in 2020.
  MakeKeyAndCsr(dir.File("expired"), "expired");
  WriteFile(dir.File("index.txt"), "");
  WriteFile(dir.File("serial"), "2001\n");
  WriteFile(dir.File("ca.cnf"),
            "[ ca ]\ndefault_ca = e2e\n"
            "[ e2e ]\ndatabase = " +
                dir.File("index.txt") + "\nnew_certs_dir = " + dir.path() +
                "\nserial = " + dir.File("serial") +
                "\ndefault_md = sha256\npolicy = any\nunique_subject = no\n"
                "copy_extensions = none\n"
                "[ any ]\ncommonName = supplied\n"
                "[ ext ]\nbasicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
                "subjectAltName=DNS:localhost,IP:127.0.0.1\n");
  MustRun({OpenSslCli(),
           "ca",
           "-batch",
           "-config",
           dir.File("ca.cnf"),
           "-cert",
           ca.crt,
           "-keyfile",
           ca.key,
           "-in",
           dir.File("expired.csr"),
           "-out",
           dir.File("expired.crt"),
           "-startdate",
           "20200101000000Z",
           "-enddate",
           "20200102000000Z",
           "-extensions",
           "ext",
           "-notext"});
  c.expired = {dir.File("expired.crt"), dir.File("expired.key")};

  c.self_signed = MakeSelfSigned(dir.File("self"), "self-signed",
                                 {"subjectAltName=DNS:localhost,IP:127.0.0.1"});
  return c;
}

// --- TlsBackend: an HTTPS (and WSS) test server ------------------------------

// The body TlsBackend answers to a target with /resp-chunked (300 KB,
// chunked) or /resp-eof (200 KB, delimited by the end of the stream).
std::string LongAnswer(bool chunked) {
  return Blob(chunked ? 300 * 1000 : 200 * 1000, chunked ? 21 : 22);
}

// One accepted TCP connection, as the TLS server saw its handshake.
struct TlsConnInfo {
  int index = 0;  // 1-based accept order, as RecordedRequest::connection
  bool handshake_ok = false;
  std::string error;               // why the handshake failed
  std::optional<std::string> sni;  // SSL_get_servername; none when the client sent none
  bool resumed = false;            // SSL_session_reused
  std::string version;             // "TLSv1.3"
  std::string alpn;                // the protocol selected ("" when none was offered)
};

// ALPN: http/1.1 when offered.
int SelectHttp11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                 unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, kHttp11, sizeof(kHttp11), in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// An HTTPS server on 127.0.0.1:0 with a certificate and key, one thread per
// connection (non-blocking socket; every wait checks the stop flag). Each
// request is recorded; the answer is 200, keep-alive, with headers X-Backend:
// NAME, X-Tls-Conn: its connection index, X-Tls-Sni, X-Tls-Resumed, and the
// body "NAME\n" + the request head as received + "\r\n\r\n" + its decoded
// body (a target with /resp-chunked or /resp-eof in it: LongAnswer, chunked
// or delimited by the end of the stream). A target starting with /close is answered with
// Connection: close and the connection ended; /healthz gets "ok". A target with /stray-partial
// in it is answered, then followed by one more TLS record holding a whole unsolicited answer
// (body {"xid":"UNSOLICITED-PART"}): its 5-byte header alone at +5 ms, the rest at +300 ms
// (SendStrayPartial). A GET with Upgrade: websocket is
// answered 101 and then each message is echoed (ping: pong; close: close with
// the same payload, then the end). Thread-safe.
class TlsBackend {
 public:
  TlsBackend(std::string name, KeyPair cert) : name_(std::move(name)), cert_(std::move(cert)) {}
  ~TlsBackend() {
    Stop();
    if (ctx_) SSL_CTX_free(ctx_);
  }
  TlsBackend(const TlsBackend&) = delete;
  TlsBackend& operator=(const TlsBackend&) = delete;

  // Before Start: speak only TLS versions up to `v` (at OpenSSL security
  // level 0, so that TLS 1.0/1.1 may be offered).
  void set_max_version(int v) { max_version_ = v; }

  bool Start() {
    ctx_ = SSL_CTX_new(TLS_server_method());
    if (!ctx_) return false;
    if (max_version_) {
      SSL_CTX_set_security_level(ctx_, 0);
      SSL_CTX_set_cipher_list(ctx_, "DEFAULT:@SECLEVEL=0");
      SSL_CTX_set_min_proto_version(ctx_, TLS1_VERSION);
      SSL_CTX_set_max_proto_version(ctx_, max_version_);
    } else {
      SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    }
    SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);
    static const unsigned char kSid[] = "strangler-e2e";
    SSL_CTX_set_session_id_context(ctx_, kSid, sizeof(kSid) - 1);
    SSL_CTX_set_alpn_select_cb(ctx_, SelectHttp11, nullptr);
    if (SSL_CTX_use_certificate_chain_file(ctx_, cert_.crt.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx_, cert_.key.c_str(), SSL_FILETYPE_PEM) != 1) {
      ERR_clear_error();
      return false;
    }
    return server_.Start(&stop_, [this](int fd, int index) { Serve(fd, index); });
  }
  void Stop() {
    if (stop_.exchange(true)) return;
    { std::lock_guard<std::mutex> l(mu_); }
    cv_.notify_all();
    server_.Join();
  }

  uint16_t port() const { return server_.port(); }
  std::string url(const std::string& host = "127.0.0.1") const {
    return "https://" + host + ":" + std::to_string(port());
  }
  const std::string& name() const { return name_; }

  std::vector<RecordedRequest> requests() const {
    std::lock_guard<std::mutex> l(mu_);
    return requests_;
  }
  size_t request_count() const {
    std::lock_guard<std::mutex> l(mu_);
    return requests_.size();
  }
  std::vector<TlsConnInfo> connections() const {
    std::lock_guard<std::mutex> l(mu_);
    return conns_;
  }
  std::optional<TlsConnInfo> connection(int index) const {
    std::lock_guard<std::mutex> l(mu_);
    for (const auto& c : conns_) {
      if (c.index == index) return c;
    }
    return std::nullopt;
  }
  int handshakes_ok() const {
    return Count([](const TlsConnInfo& c) { return c.handshake_ok; });
  }
  int handshakes_failed() const {
    return Count([](const TlsConnInfo& c) { return !c.handshake_ok; });
  }
  // Stray records made after /stray-partial answers whose header went out and
  // whose rest was sent (or, the connection being closed, tried).
  int strays_sent() const { return strays_sent_.load(); }
  int ws_sessions() const { return ws_sessions_.load(); }
  int ws_messages_echoed() const { return ws_echoed_.load(); }
  bool WaitForRequests(size_t n, int timeout_ms) const {
    std::unique_lock<std::mutex> l(mu_);
    return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms),
                        [&] { return requests_.size() >= n; });
  }

 private:
  int Count(bool (*pred)(const TlsConnInfo&)) const {
    std::lock_guard<std::mutex> l(mu_);
    return static_cast<int>(std::count_if(conns_.begin(), conns_.end(), pred));
  }

  // Waits for the socket to be readable (or writable): false on stop or
  // once deadline (NowMs; -1 = none) passes.
  bool WaitIo(int fd, int ssl_error, int64_t deadline) const {
    while (!stop_.load()) {
      if (deadline >= 0 && NowMs() >= deadline) return false;
      pollfd p{fd, static_cast<short>(ssl_error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
      const int r = poll(&p, 1, 50);
      if (r > 0) return true;
      if (r < 0 && errno != EINTR) return false;
    }
    return false;
  }

  // Decrypted bytes appended to *buf: > 0, 0 at the end, -1 on error or stop.
  ssize_t Read(SSL* ssl, int fd, std::string* buf) const {
    int e = 0;
    const int n = SslReadSome(ssl, buf, &e, [&](int want) { return WaitIo(fd, want, -1); });
    if (n > 0) return n;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return -1;
    ERR_clear_error();
    return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? 0 : -1;
  }

  bool Write(SSL* ssl, int fd, const std::string& bytes) const {
    const int64_t deadline = NowMs() + kTimeoutMs;
    size_t off = 0;
    while (off < bytes.size()) {
      ERR_clear_error();
      const int w = SSL_write(ssl, bytes.data() + off, static_cast<int>(bytes.size() - off));
      if (w > 0) {
        off += static_cast<size_t>(w);
        continue;
      }
      const int e = SSL_get_error(ssl, w);
      if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && WaitIo(fd, e, deadline))
        continue;
      ERR_clear_error();
      return false;
    }
    return true;
  }

  void Serve(int fd, int index) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    SSL* ssl = SSL_new(ctx_);
    SSL_set_fd(ssl, fd);
    TlsConnInfo info;
    info.index = index;
    const int64_t deadline = NowMs() + kTimeoutMs;
    while (true) {
      ERR_clear_error();
      errno = 0;
      const int r = SSL_accept(ssl);
      if (r == 1) {
        info.handshake_ok = true;
        break;
      }
      const int e = SSL_get_error(ssl, r);
      if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && WaitIo(fd, e, deadline))
        continue;
      info.error = stop_.load() ? "stopped" : SslWhy(e);
      ERR_clear_error();
      break;
    }
    if (info.handshake_ok) {
      if (const char* sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name)) info.sni = sni;
      info.resumed = SSL_session_reused(ssl) == 1;
      info.version = SSL_get_version(ssl);
      const unsigned char* p = nullptr;
      unsigned len = 0;
      SSL_get0_alpn_selected(ssl, &p, &len);
      if (p) info.alpn.assign(reinterpret_cast<const char*>(p), len);
    }
    {
      std::lock_guard<std::mutex> l(mu_);
      conns_.push_back(info);
    }
    if (info.handshake_ok) ServeHttp(ssl, fd, info);
    SSL_shutdown(ssl);  // best effort: a close_notify when the socket takes it
    SSL_free(ssl);
    close(fd);
  }

  void ServeHttp(SSL* ssl, int fd, const TlsConnInfo& info) {
    std::string buf;
    while (!stop_.load()) {
      size_t he;
      while ((he = buf.find("\r\n\r\n")) == std::string::npos) {
        if (Read(ssl, fd, &buf) <= 0) return;
      }
      RecordedRequest req = RequestFromHead(buf.substr(0, he), info.index);
      const size_t body_start = he + 4;
      size_t end = body_start;
      if (req.chunked) {
        long n;
        while ((n = ParseChunked(buf, body_start, &req.body)) == 0) {
          if (Read(ssl, fd, &buf) <= 0) return;
        }
        if (n < 0) {
          Write(ssl, fd,
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          return;
        }
        end = body_start + static_cast<size_t>(n);
      } else {
        const size_t len = ContentLengthOf(req);
        while (buf.size() < body_start + len) {
          if (Read(ssl, fd, &buf) <= 0) return;
        }
        req.body = buf.substr(body_start, len);
        end = body_start + len;
      }
      req.raw = buf.substr(0, end);
      buf.erase(0, end);
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(req);
      }
      cv_.notify_all();

      const auto upgrade = req.Header("Upgrade");
      if (upgrade && IEquals(*upgrade, "websocket")) {
        const std::string key = req.Header("Sec-WebSocket-Key").value_or("");
        if (!Write(ssl, fd,
                   "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                   "Upgrade\r\nSec-WebSocket-Accept: " +
                       WsAcceptKey(key) + "\r\nX-Backend: " + name_ + "\r\n\r\n")) {
          return;
        }
        ++ws_sessions_;
        EchoWebSocket(ssl, fd, &buf);
        return;
      }

      const bool resp_chunked = req.target.find("/resp-chunked") != std::string::npos;
      if (resp_chunked || req.target.find("/resp-eof") != std::string::npos) {
        // A long answer, chunked or delimited by the end of the stream
        // (close_notify, then the TCP close).
        const bool chunked = resp_chunked;
        const std::string body = LongAnswer(chunked);
        std::string resp = "HTTP/1.1 200 OK\r\nX-Backend: " + name_ + "\r\n";
        if (chunked) {
          resp += "Transfer-Encoding: chunked\r\n\r\n";
          for (size_t at = 0; at < body.size(); at += 7000) {
            const std::string part = body.substr(at, 7000);
            char size[32];
            std::snprintf(size, sizeof(size), "%zx\r\n", part.size());
            resp += size + part + "\r\n";
          }
          resp += "0\r\n\r\n";
        } else {
          resp += "Connection: close\r\n\r\n" + body;
        }
        if (!Write(ssl, fd, resp) || !chunked) return;
        continue;
      }
      const bool close_after = req.target.rfind("/close", 0) == 0;
      std::string body;
      if (req.target == "/healthz") {
        body = "ok";
      } else {
        body = name_ + "\n" + req.head + "\r\n\r\n" + req.body;
      }
      std::string resp = "HTTP/1.1 200 OK\r\nX-Backend: " + name_ +
                         "\r\nX-Tls-Conn: " + std::to_string(info.index) +
                         "\r\nX-Tls-Sni: " + info.sni.value_or("-") +
                         "\r\nX-Tls-Resumed: " + (info.resumed ? "yes" : "no") +
                         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
                         (close_after ? "Connection: close\r\n" : "") + "\r\n";
      if (req.method != "HEAD") resp += body;
      if (!Write(ssl, fd, resp) || close_after) return;
      if (req.target.find("/stray-partial") != std::string::npos) SendStrayPartial(ssl, fd);
    }
  }

  // Sleeps `ms` (in short steps, so that stop is seen): false on stop.
  bool Nap(int ms) const {
    const int64_t until = NowMs() + ms;
    while (!stop_.load()) {
      const int64_t left = until - NowMs();
      if (left <= 0) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(left, 10)));
    }
    return false;
  }

  // One more record after an answer: a whole unsolicited answer, encrypted
  // into a memory BIO (not sent), then sent raw as its 5-byte header at +5 ms
  // and the rest at +300 ms. A pool check that reads the header and then sees
  // nothing more must not take the connection as clean.
  void SendStrayPartial(SSL* ssl, int fd) {
    const std::string stray = "HTTP/1.1 200 X\r\nX-Backend: " + name_ +
                              "\r\nContent-Length: 26\r\n\r\n{\"xid\":\"UNSOLICITED-PART\"}";
    const int64_t t0 = NowMs();
    SSL_set0_wbio(ssl, BIO_new(BIO_s_mem()));
    ERR_clear_error();
    const int w = SSL_write(ssl, stray.data(), static_cast<int>(stray.size()));
    char* data = nullptr;
    const long n = BIO_get_mem_data(SSL_get_wbio(ssl), &data);
    const std::string record = w == static_cast<int>(stray.size()) && n > 0
                                   ? std::string(data, static_cast<size_t>(n))
                                   : std::string();
    SSL_set0_wbio(ssl, BIO_new_socket(fd, BIO_NOCLOSE));  // frees the memory BIO
    ERR_clear_error();
    // One application-data record (type 23), whose length field covers the rest.
    if (record.size() <= 5 || record[0] != 23 ||
        (static_cast<size_t>(static_cast<uint8_t>(record[3])) << 8 |
         static_cast<uint8_t>(record[4])) != record.size() - 5) {
      return;
    }
    if (!Nap(static_cast<int>(t0 + 5 - NowMs())) || !SendAll(fd, record.substr(0, 5))) return;
    if (!Nap(static_cast<int>(t0 + 300 - NowMs()))) return;
    SendAll(fd, record.substr(5));  // may fail: the router may have closed the connection
    ++strays_sent_;
  }

  // RFC 6455 echo on the decrypted stream; *buf holds what came after the
  // upgrade request.
  void EchoWebSocket(SSL* ssl, int fd, std::string* buf) {
    bool in_message = false;  // a fragmented message is being reassembled
    WsOpcode partial_op = WsOpcode::kText;
    std::string partial;
    while (!stop_.load()) {
      // One whole frame in *buf?
      uint64_t len = 0;
      size_t head = 0;
      bool have = false;
      if (buf->size() >= 2) {
        const uint8_t b1 = static_cast<uint8_t>((*buf)[1]);
        len = b1 & 0x7f;
        head = 2;
        if (len == 126) head += 2;
        if (len == 127) head += 8;
        if (b1 & 0x80) head += 4;
        if (buf->size() >= head) {
          size_t at = 2;
          if (len >= 126) {
            const size_t n = len == 126 ? 2 : 8;
            len = 0;
            for (size_t i = 0; i < n; ++i) len = (len << 8) | static_cast<uint8_t>((*buf)[at + i]);
            at += n;
          }
          have = buf->size() >= head + static_cast<size_t>(len);
        }
      }
      if (!have) {
        if (Read(ssl, fd, buf) <= 0) return;
        continue;
      }
      const uint8_t b0 = static_cast<uint8_t>((*buf)[0]);
      const bool masked = (static_cast<uint8_t>((*buf)[1]) & 0x80) != 0;
      const bool fin = (b0 & 0x80) != 0;
      const auto op = static_cast<WsOpcode>(b0 & 0x0f);
      std::string payload = buf->substr(head, static_cast<size_t>(len));
      if (masked) {
        const std::string mask = buf->substr(head - 4, 4);
        for (size_t i = 0; i < payload.size(); ++i) payload[i] ^= mask[i % 4];
      }
      buf->erase(0, head + static_cast<size_t>(len));
      std::string out;
      switch (op) {
        case WsOpcode::kClose:
          Write(ssl, fd, WsEncodeFrame(WsOpcode::kClose, payload, WsFin::kFinal, std::nullopt));
          return;
        case WsOpcode::kPing:
          out = WsEncodeFrame(WsOpcode::kPong, payload, WsFin::kFinal, std::nullopt);
          break;
        case WsOpcode::kPong:
          break;
        case WsOpcode::kText:
        case WsOpcode::kBinary:
          if (fin) {
            ++ws_echoed_;
            out = WsEncodeFrame(op, payload, WsFin::kFinal, std::nullopt);
          } else {
            in_message = true;
            partial_op = op;
            partial = payload;
          }
          break;
        case WsOpcode::kContinuation:
          partial += payload;
          if (fin && in_message) {
            ++ws_echoed_;
            out = WsEncodeFrame(partial_op, partial, WsFin::kFinal, std::nullopt);
            in_message = false;
            partial.clear();
          }
          break;
        default:
          return;
      }
      if (!out.empty() && !Write(ssl, fd, out)) return;
    }
  }

  std::string name_;
  KeyPair cert_;
  SSL_CTX* ctx_ = nullptr;
  int max_version_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> strays_sent_{0};
  std::atomic<int> ws_sessions_{0};
  std::atomic<int> ws_echoed_{0};
  LoopbackServer server_;
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::vector<RecordedRequest> requests_;  // guarded by mu_
  std::vector<TlsConnInfo> conns_;         // guarded by mu_
};

// --- the router's views: /metrics, backend show ------------------------------

// The value of the sample of `name` whose labels include all of `labels`
// (label="value" each); -1 when there is none.
double Metric(const std::string& text, const std::string& name,
              const std::vector<std::pair<std::string, std::string>>& labels) {
  std::istringstream ss(text);
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind(name + "{", 0) != 0) continue;
    const size_t close = line.find("} ");
    if (close == std::string::npos) continue;
    const std::string set = "," + line.substr(name.size() + 1, close - name.size() - 1) + ",";
    bool all = true;
    for (const auto& [k, v] : labels)
      all = all && set.find("," + k + "=\"" + v + "\",") != std::string::npos;
    if (all) return std::stod(line.substr(close + 2));
  }
  return -1;
}

double TlsErrors(uint16_t admin, const std::string& backend) {
  return Metric(GetMetrics(admin).body, "strangler_upstream_errors_total",
                {{"backend", backend}, {"kind", "tls"}});
}

std::string ShowText(Fixture& fx, const std::string& backend) {
  return fx.MustCli({"backend", "show", backend}).out;
}

// The "tls:" line of `backend show`.
std::string TlsLine(Fixture& fx, const std::string& backend) {
  std::istringstream ss(ShowText(fx, backend));
  std::string line;
  while (std::getline(ss, line)) {
    if (line.rfind("tls:", 0) == 0) return line;
  }
  return "";
}

// The 502's JSON "message".
std::string ErrorMessage(const HttpResponse& r) {
  Json j = Json::parse(r.body, nullptr, false);
  if (!j.is_object() || !j.contains("message") || !j["message"].is_string()) return "";
  return j["message"].get<std::string>();
}

// The fixture of most tests here: a store, the certificates (made in its
// temp dir), the test servers a test asks for (started; they stop before
// serve does), and, from StartServe(), a serve with an admin listener.
struct Router {
  Fixture fx;
  const Certs certs = MakeCerts(fx.dir());
  uint16_t admin = 0;

  // A started TlsBackend NAME with `cert`; it lives as long as this Router.
  TlsBackend& Tls(const std::string& name, const KeyPair& cert) {
    tls_.push_back(std::make_unique<TlsBackend>(name, cert));
    REQUIRE(tls_.back()->Start());
    return *tls_.back();
  }
  // A started RawBackend "legacy", added to the store as the backend
  // "legacy" (the default when it is the first one added).
  RawBackend& Legacy() {
    legacy_ = std::make_unique<RawBackend>("legacy");
    REQUIRE(legacy_->Start());
    fx.AddBackend("legacy", legacy_->url());
    return *legacy_;
  }
  // fx.StartServe with `extra` and --admin 127.0.0.1:0, whose port goes to
  // `admin`.
  void StartServe(std::vector<std::string> extra = {}) {
    extra.push_back("--admin");
    extra.push_back("127.0.0.1:0");
    REQUIRE(fx.StartServe(extra));
    admin = AdminPort(*fx.serve());
    REQUIRE(admin != 0);
  }

 private:
  std::vector<std::unique_ptr<TlsBackend>> tls_;
  std::unique_ptr<RawBackend> legacy_;
};

// Requests on one keep-alive client connection, reconnecting when the router
// closed it.
HttpResponse Send(RawClient& c, uint16_t port, const std::string& method, const std::string& target,
                  const Headers& headers = {}, const std::string& body = "") {
  if (!c.connected()) REQUIRE(c.Connect(port));
  return c.Request(method, target, headers, body, kHangGuardMs);
}

// --- 1. a good https backend -------------------------------------------------

TEST_CASE_FIXTURE(
    Router,
    "e2e: tls backend: https with --ca: bodies byte-exact both ways, SNI for a name and none for "
    "an address, ALPN http/1.1, keep-alive reuse, sessions resumed on new connections") {
  REQUIRE_MESSAGE(LocalhostIsIpv4Loopback(), "localhost does not resolve to 127.0.0.1 first");
  TlsBackend& be = Tls("tlsbe", certs.good);
  const std::string ip_instance = be.url("127.0.0.1");
  const std::string name_instance = be.url("localhost");
  fx.AddBackend("byip", ip_instance, {"--ca", certs.ca});
  fx.AddBackend("byname", name_instance + "/base", {"--ca", certs.ca});
  fx.AddRoute("n", {"--to", "byname", "--path", "/n"});
  CHECK(TlsLine(fx, "byip") == "tls:       certificates checked against " + certs.ca + " (--ca)");
  StartServe({"--threads", "2"});
  const uint16_t port = fx.port();
  const std::string client_host = "127.0.0.1:" + std::to_string(port);

  RawClient c;
  REQUIRE(c.Connect(port));
  struct Sent {
    std::string method, target, body, expect_target;
    bool by_name;
    Headers headers;
  };
  const std::string big = Blob(200 * 1000, 3);
  const std::string chunk_a = Blob(5000, 11), chunk_b = std::string("\0\r\n0\r\n\r\n", 8);
  const std::string chunked_wire = "1388\r\n" + chunk_a + "\r\n8\r\n" + chunk_b + "\r\n0\r\n\r\n";
  std::vector<Sent> cases;
  for (bool by_name : {false, true}) {
    const std::string pre = by_name ? "/n" : "/ip";
    const std::string base = by_name ? "/base" : "";
    // A request for PRE + `path`, which the backend gets as BASE + PRE + `path`.
    auto add = [&](const std::string& method, const std::string& path, const std::string& body,
                   const Headers& headers) {
      cases.push_back({method, pre + path, body, base + pre + path, by_name, headers});
    };
    add("GET", "/get?x=1&y=%20", "", {{"X-Custom", "a  b"}});
    add("POST", "/cl", big, {{"Content-Type", "application/octet-stream"}});
    add("POST", "/chunked", chunked_wire, {{"Transfer-Encoding", "chunked"}});
  }
  for (const Sent& s : cases) {
    INFO(s.method << " " << s.target);
    const size_t before = be.request_count();
    HttpResponse r = Send(c, port, s.method, s.target, s.headers, s.body);
    REQUIRE_MESSAGE(r.ok, r.error);
    REQUIRE_MESSAGE(r.status == 200, r.body);
    CHECK(r.Header("X-Backend") == std::optional<std::string>("tlsbe"));
    REQUIRE(be.request_count() == before + 1);
    const RecordedRequest got = be.requests().back();
    INFO("backend got:\n" << Printable(got.head));
    CHECK(got.method == s.method);
    CHECK(got.target == s.expect_target);
    CHECK(got.Header("Host") == std::optional<std::string>(client_host));
    const std::string want_body = s.headers.size() == 1 && s.headers[0].first == "Transfer-Encoding"
                                      ? chunk_a + chunk_b
                                      : s.body;
    CHECK(got.body.size() == want_body.size());
    CHECK(got.body == want_body);
    if (s.method == "GET") CHECK(got.Header("X-Custom") == std::optional<std::string>("a  b"));
    // The echo came back whole through TLS and the router.
    CHECK(r.body.size() == be.name().size() + 1 + got.head.size() + 4 + got.body.size());
    CHECK(r.body == be.name() + "\n" + got.head + "\r\n\r\n" + got.body);
    // SNI: the host name, and none for an address.
    const auto conn = be.connection(got.connection);
    REQUIRE(conn.has_value());
    CHECK(conn->handshake_ok);
    if (s.by_name) {
      CHECK(conn->sni == std::optional<std::string>("localhost"));
    } else {
      CHECK_FALSE(conn->sni.has_value());
    }
    CHECK(conn->alpn == "http/1.1");
    CHECK((conn->version == "TLSv1.3" || conn->version == "TLSv1.2"));
  }

  // Answers chunked and delimited by the end of the TLS stream arrive whole.
  for (const std::string target : {"/ip/resp-chunked", "/n/resp-chunked", "/ip/resp-eof"}) {
    INFO(target);
    const bool chunked = std::string(target).find("chunked") != std::string::npos;
    HttpResponse r = Send(c, port, "GET", target);
    REQUIRE_MESSAGE(r.ok, r.error);
    REQUIRE(r.status == 200);
    CHECK(r.Header("X-Backend") == std::optional<std::string>("tlsbe"));
    CHECK(r.body.size() == LongAnswer(chunked).size());
    CHECK(r.body == LongAnswer(chunked));
  }

  // Keep-alive: many requests, few connections. A pooled connection is
  // reused once it has been quiet --reuse-quiet-ms (default 1 ms) after its
  // answer; a client faster than that gets a new one (by design, for plain
  // http too), so the requests are a few ms apart.
  // `n` GETs of PREFIX0, PREFIX1, ..., 3 ms apart, each answered 200: the
  // backend connections (X-Tls-Conn) that answered them.
  auto spaced_gets = [&](const std::string& prefix, int n) {
    std::set<std::string> conns;
    for (int i = 0; i < n; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
      HttpResponse r = Send(c, port, "GET", prefix + std::to_string(i));
      REQUIRE_MESSAGE(r.ok, r.error);
      REQUIRE(r.status == 200);
      conns.insert(r.Header("X-Tls-Conn").value_or("?"));
    }
    return conns;
  };
  const int conns_before_ka = static_cast<int>(be.connections().size());
  const std::set<std::string> ka_conns = spaced_gets("/ip/ka/", 40);
  MESSAGE("40 keep-alive GETs used " << ka_conns.size() << " backend connection(s); "
                                     << static_cast<int>(be.connections().size()) - conns_before_ka
                                     << " new");
  CHECK(ka_conns.size() <= 2);
  CHECK(static_cast<int>(be.connections().size()) - conns_before_ka <= 1);

  // Resumption: each /close answer ends its connection, so each request
  // needs a new one, which resumes the instance's session.
  const int conns_before_close = static_cast<int>(be.connections().size());
  const std::set<std::string> close_conns = spaced_gets("/close/", 12);
  CHECK(close_conns.size() == 12);  // each ended the connection it came on
  const auto conns = be.connections();
  int new_conns = 0, new_resumed = 0;
  for (size_t i = static_cast<size_t>(conns_before_close); i < conns.size(); ++i) {
    ++new_conns;
    new_resumed += conns[i].resumed;
  }
  MESSAGE("12 GETs answered Connection: close: " << new_conns << " new connections, " << new_resumed
                                                 << " resumed");
  CHECK(new_conns >= 6);  // the rest took connections left idle in the pool
  CHECK(new_resumed > 0);
  CHECK(new_resumed == new_conns);  // the instance's session, resumed each time

  // Concurrent clients (handshakes on several fibers and both workers at
  // once): every answer is whole and is the answer to its own request.
  {
    std::atomic<int> ok{0};
    std::mutex mu;
    std::vector<std::string> bad;
    std::vector<std::thread> threads;
    for (int t = 0; t < 6; ++t) {
      threads.emplace_back([&, t] {
        RawClient pc;
        for (int i = 0; i < 30; ++i) {
          const bool by_name = (i + t) % 2 == 1;
          const std::string target = (by_name ? "/n" : "/ip") + std::string("/par/") +
                                     std::to_string(t) + "/" + std::to_string(i) +
                                     (i % 5 == 4 ? "/close" : "");
          const std::string body =
              i % 3 == 0 ? "" : Blob(1000 * (i + 1), static_cast<unsigned>(t * 100 + i));
          HttpResponse r;
          if (!pc.connected() && !pc.Connect(port)) {
            r.error = "connect failed";
          } else {
            r = pc.Request(body.empty() ? "GET" : "POST", target, {}, body, kHangGuardMs);
          }
          const std::string tail = target + " HTTP/1.1";
          const bool good =
              r.ok && r.status == 200 && r.body.find(tail) != std::string::npos &&
              r.body.size() >= body.size() &&
              r.body.compare(r.body.size() - body.size(), body.size(), body) == 0 &&
              r.Header("X-Tls-Sni") == std::optional<std::string>(by_name ? "localhost" : "-");
          if (good) {
            ++ok;
          } else {
            std::lock_guard<std::mutex> l(mu);
            if (bad.size() < 5) {
              bad.push_back(
                  target + ": " +
                  (r.ok ? r.status_line + " " + Printable(r.body.substr(0, 300)) : r.error));
            }
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    for (const std::string& b : bad) MESSAGE("concurrent: " << b);
    CHECK(ok.load() == 6 * 30);
  }

  // The backend's view, per instance: what the router must count.
  int ip_handshakes = 0, ip_resumed = 0, name_handshakes = 0, name_resumed = 0;
  for (const TlsConnInfo& ci : be.connections()) {
    REQUIRE_MESSAGE(ci.handshake_ok, ci.error);
    if (ci.sni) {
      ++name_handshakes;
      name_resumed += ci.resumed;
    } else {
      ++ip_handshakes;
      ip_resumed += ci.resumed;
    }
  }
  const std::string metrics = GetMetrics(admin).body;
  INFO(metrics);
  const char kHs[] = "strangler_upstream_tls_handshakes_total";
  const double yes =
      Metric(metrics, kHs, {{"backend", "byip"}, {"instance", ip_instance}, {"resumed", "yes"}});
  const double no =
      Metric(metrics, kHs, {{"backend", "byip"}, {"instance", ip_instance}, {"resumed", "no"}});
  CHECK(yes > 0);
  CHECK(yes == ip_resumed);
  CHECK(no == ip_handshakes - ip_resumed);
  CHECK(Metric(metrics, kHs,
               {{"backend", "byname"}, {"instance", name_instance}, {"resumed", "no"}}) +
            Metric(metrics, kHs,
                   {{"backend", "byname"}, {"instance", name_instance}, {"resumed", "yes"}}) ==
        name_handshakes);
  CHECK(Metric(metrics, "strangler_upstream_errors_total",
               {{"backend", "byip"}, {"kind", "tls"}}) == 0);

  // backend show: the instance as https://host:port, and its handshake line.
  Json row;
  REQUIRE(PollUntil([&] {
    row = ShownInstance(fx, "byip", ip_instance);
    return row.is_object() && row.value("tls_handshakes", 0) == ip_handshakes;
  }));
  CHECK(row["tls_resumed"] == ip_resumed);
  const std::string shown = ShowText(fx, "byip");
  INFO("backend show byip:\n" << shown);
  const std::string line = ip_instance + ": " + std::to_string(ip_handshakes) +
                           " TLS handshakes, " + std::to_string(ip_resumed) + " resumed (";
  CHECK(shown.find(line) != std::string::npos);
  CHECK(shown.find("\n           " + ip_instance + " ") != std::string::npos);  // a table row
}

// --- 1b. part of a stray record on a pooled connection -----------------------

TEST_CASE_FIXTURE(
    Router,
    "e2e: tls backend: a pooled connection with part of a record waiting (a stray record's header "
    "at +5 ms, its rest at +300 ms) is not reused inside --reuse-quiet-ms 100: the next request, "
    "150 ms after the answer, gets its own answer, never the stray one") {
  // The pool's check of an idle TLS connection once took the record header
  // in (SSL_peek), saw nothing more and called it clean; the rest of the
  // record then became the next client's answer. A plain backend's first
  // stray byte inside the quiet window makes its connection dirty: TLS must
  // do the same.
  TlsBackend& be = Tls("tlsbe", certs.good);
  fx.AddBackend("stray", be.url(), {"--ca", certs.ca, "--reuse-quiet-ms", "100"});
  StartServe();
  const uint16_t port = fx.port();
  RawClient c;
  // The control: without a stray record, the next request 150 ms after an
  // answer rides the same backend connection (the pool is in play).
  {
    HttpResponse a = Send(c, port, "GET", "/quiet/a");
    REQUIRE_MESSAGE(a.ok, a.error);
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    HttpResponse b = Send(c, port, "GET", "/quiet/b");
    REQUIRE_MESSAGE(b.ok, b.error);
    REQUIRE(a.Header("X-Tls-Conn").has_value());
    CHECK(b.Header("X-Tls-Conn") == a.Header("X-Tls-Conn"));
  }
  constexpr int kRounds = 4;
  int stray_answers = 0;
  for (int i = 0; i < kRounds; ++i) {
    const std::string a_target = "/stray-partial/" + std::to_string(i) + "/a";
    const std::string b_target = "/x/" + std::to_string(i) + "/b";
    INFO("round " << i);
    HttpResponse a = Send(c, port, "GET", a_target);
    REQUIRE_MESSAGE(a.ok, a.error);
    REQUIRE(a.status == 200);
    CHECK(a.body.find("GET " + a_target + " HTTP/1.1") != std::string::npos);
    // Past the 100 ms quiet window, before the rest of the record (+300 ms).
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    HttpResponse b = Send(c, port, "GET", b_target);
    REQUIRE_MESSAGE(b.ok, b.error);
    INFO("B got: " << b.status_line << "\n" << Printable(b.body));
    const bool stray = b.body.find("UNSOLICITED") != std::string::npos;
    stray_answers += stray;
    CHECK_FALSE(stray);
    CHECK(b.status == 200);
    CHECK(b.body.find("GET " + b_target + " HTTP/1.1") != std::string::npos);
    CHECK(b.Header("X-Tls-Conn") != a.Header("X-Tls-Conn"));  // a new connection
    // The backend sends the rest of the record (+300 ms) before the next round.
    REQUIRE(PollUntil([&] { return be.strays_sent() == i + 1; }, kTimeoutMs));
  }
  MESSAGE("the next request got the stray answer " << stray_answers << "/" << kRounds);
  CHECK(stray_answers == 0);
  CHECK(be.strays_sent() == kRounds);
}

// --- 2. certificates refused --------------------------------------------------

TEST_CASE_FIXTURE(
    Router,
    "e2e: tls backend: a wrong host name, an expired certificate, an unknown CA (system CAs or "
    "another --ca) and a self-signed one each get 502 saying why; nothing reaches the backend") {
  REQUIRE_MESSAGE(LocalhostIsIpv4Loopback(), "localhost does not resolve to 127.0.0.1 first");
  RawBackend& legacy = Legacy();
  TlsBackend& wrong = Tls("wrong", certs.wrong_host);
  TlsBackend& expired = Tls("expired", certs.expired);
  TlsBackend& good = Tls("good", certs.good);
  TlsBackend& self = Tls("self", certs.self_signed);
  struct Case {
    std::string backend;
    TlsBackend* server;
    std::string host;
    std::vector<std::string> flags;
    long verify_error;
  };
  const std::vector<Case> cases = {
      {"wrongname", &wrong, "localhost", {"--ca", certs.ca}, X509_V_ERR_HOSTNAME_MISMATCH},
      {"wrongip", &wrong, "127.0.0.1", {"--ca", certs.ca}, X509_V_ERR_IP_ADDRESS_MISMATCH},
      {"expired", &expired, "127.0.0.1", {"--ca", certs.ca}, X509_V_ERR_CERT_HAS_EXPIRED},
      {"sysca", &good, "127.0.0.1", {}, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY},
      {"otherca",
       &good,
       "localhost",
       {"--ca", certs.other_ca},
       X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY},
      {"selfsigned", &self, "127.0.0.1", {}, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT},
  };
  for (const Case& k : cases) {
    fx.AddBackend(k.backend, k.server->url(k.host), k.flags);
    fx.AddRoute(k.backend, {"--to", k.backend, "--path", "/" + k.backend});
  }
  CHECK(TlsLine(fx, "sysca") == "tls:       certificates checked against the system's CAs");
  StartServe();
  const uint16_t port = fx.port();
  RawClient c;
  for (const Case& k : cases) {
    const std::string instance = k.host + ":" + std::to_string(k.server->port());
    const std::string why = "certificate not accepted: " + VerifyText(k.verify_error);
    INFO(k.backend << " (" << why << ")");
    const std::string want = "backend '" + k.backend + "' at " + instance + ": " + why;
    for (int i = 0; i < 3; ++i) {
      HttpResponse r = i < 2 ? Send(c, port, "GET", "/" + k.backend + "/g" + std::to_string(i))
                             : Send(c, port, "POST", "/" + k.backend + "/p", {}, "a body");
      REQUIRE_MESSAGE(r.ok, r.error);
      CHECK(r.status == 502);
      CHECK(ErrorMessage(r) == want);
      if (ErrorMessage(r) != want) MESSAGE("502 body: " << r.body);
    }
    // The router still serves other traffic on the same connection.
    HttpResponse ok = Send(c, port, "GET", "/legacy-" + k.backend);
    REQUIRE_MESSAGE(ok.ok, ok.error);
    CHECK(ok.status == 200);
  }

  for (const Case& k : cases) {
    INFO(k.backend);
    const std::string https_instance = k.server->url(k.host);
    const std::string why = "certificate not accepted: " + VerifyText(k.verify_error);
    Json row;
    REQUIRE(PollUntil([&] {
      row = ShownInstance(fx, k.backend, https_instance);
      return row.is_object() && row.value("connect_failures", 0) >= 3;
    }));
    CHECK(row["connect_failures"] == 3);
    CHECK(row["last_failure"] == why);
    CHECK(row["failures"] == 3);
    CHECK(row.value("tls_handshakes", 0) == 0);
    const std::string shown = ShowText(fx, k.backend);
    INFO(shown);
    CHECK(shown.find(https_instance + ": 3 failures in a row; last: " + why + " (") !=
          std::string::npos);
    CHECK(TlsErrors(admin, k.backend) == 3);
  }
  // Not one request reached the servers; each refusal was a failed
  // handshake there.
  for (TlsBackend* b : {&wrong, &expired, &good, &self}) {
    INFO(b->name());
    CHECK(b->request_count() == 0);
    CHECK(b->handshakes_ok() == 0);
    CHECK(b->handshakes_failed() >= 3);
  }
  CHECK(legacy.request_count() == cases.size());
  CHECK(fx.serve()->Running());
}

// --- 2b. not TLS, old TLS, no TLS answer -------------------------------------

// A TCP server on 127.0.0.1:0 that is no TLS server: `answer` (when not
// empty) is written once the first bytes come, then the connection closes;
// with no answer it reads and stays silent until stopped.
class NotTlsServer {
 public:
  explicit NotTlsServer(std::string answer) : answer_(std::move(answer)) {}
  ~NotTlsServer() { Stop(); }
  bool Start() {
    return server_.Start(&stop_, [this](int fd, int) {
      std::string got;
      while (RecvMore(fd, &got, stop_, -1) > 0) {
        received_ += static_cast<int>(got.size());
        got.clear();
        if (!answer_.empty()) {
          SendAll(fd, answer_);
          break;
        }
      }
      close(fd);
    });
  }
  void Stop() {
    if (stop_.exchange(true)) return;
    server_.Join();
  }
  uint16_t port() const { return server_.port(); }
  int accepted() const { return server_.accepted(); }

 private:
  std::string answer_;
  std::atomic<bool> stop_{false};
  std::atomic<int> received_{0};
  LoopbackServer server_;
};

TEST_CASE_FIXTURE(
    Router,
    "e2e: tls backend: an https:// URL at a plain HTTP server, at a TLS 1.1-only server, or at one "
    "that never answers the handshake: 502 saying 'TLS handshake ...', counted as kind=tls") {
  Legacy();
  NotTlsServer plain(
      "HTTP/1.1 400 Bad Request\r\nContent-Length: 11\r\nConnection: close\r\n\r\nbad request");
  NotTlsServer silent("");
  TlsBackend old("old", certs.good);
  old.set_max_version(TLS1_1_VERSION);
  REQUIRE(plain.Start());
  REQUIRE(silent.Start());
  REQUIRE(old.Start());
  const std::string p = "https://127.0.0.1:";
  fx.AddBackend("plain", p + std::to_string(plain.port()), {"--ca", certs.ca});
  fx.AddBackend("old", p + std::to_string(old.port()), {"--ca", certs.ca});
  fx.AddBackend("silent", p + std::to_string(silent.port()),
                {"--ca", certs.ca, "--connect-timeout-ms", "500"});
  for (const char* b : {"plain", "old", "silent"}) {
    fx.AddRoute(b, {"--to", b, "--path", std::string("/") + b});
  }
  StartServe();
  RawClient c;
  struct Case {
    std::string backend;
    uint16_t port;
    std::string starts;  // the reason after "backend 'NAME' at HOST:PORT: "
  };
  for (const Case& k : {Case{"plain", plain.port(), "TLS handshake failed: "},
                        Case{"old", old.port(), "TLS handshake failed: "},
                        Case{"silent", silent.port(), "TLS handshake timed out"}}) {
    INFO(k.backend);
    HttpResponse r = Send(c, fx.port(), "GET", "/" + k.backend + "/x");
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 502);
    const std::string msg = ErrorMessage(r);
    MESSAGE(k.backend << ": " << msg);
    const std::string head =
        "backend '" + k.backend + "' at 127.0.0.1:" + std::to_string(k.port) + ": " + k.starts;
    CHECK(msg.rfind(head, 0) == 0);
    if (k.starts.back() == ' ') CHECK(msg.size() > head.size());  // and OpenSSL's words
    CHECK(TlsErrors(admin, k.backend) == 1);
    Json row;
    CHECK(PollUntil([&] {
      row = ShownInstance(fx, k.backend, p + std::to_string(k.port));
      return row.is_object() && row["last_failure"].is_string();
    }));
    if (row.is_object() && row["last_failure"].is_string()) {
      CHECK(msg == "backend '" + k.backend + "' at 127.0.0.1:" + std::to_string(k.port) + ": " +
                       row["last_failure"].get<std::string>());
    }
  }
  CHECK(old.request_count() == 0);
  CHECK(old.handshakes_ok() == 0);
  HttpResponse r = Send(c, fx.port(), "GET", "/still-serving");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
}

// --- 3. --tls-insecure, then --tls-verify -------------------------------------

TEST_CASE_FIXTURE(
    Router,
    "e2e: tls backend: --tls-insecure reaches a self-signed backend and show says NOT checked; "
    "--tls-verify makes it 502 after the reload; --ca naming that certificate accepts it again") {
  TlsBackend& self = Tls("self", certs.self_signed);
  fx.AddBackend("ins", self.url(), {"--tls-insecure"});
  CHECK(TlsLine(fx, "ins") == "tls:       certificates NOT checked (--tls-insecure)");
  StartServe();
  const uint16_t port = fx.port();
  RawClient c;
  HttpResponse r = Send(c, port, "POST", "/insecure", {}, "payload");
  REQUIRE_MESSAGE(r.ok, r.error);
  REQUIRE(r.status == 200);
  CHECK(r.Header("X-Backend") == std::optional<std::string>("self"));
  REQUIRE(self.request_count() == 1);
  CHECK(self.requests()[0].body == "payload");

  fx.MustCli({"backend", "set", "ins", "--tls-verify"});
  CHECK(TlsLine(fx, "ins") == "tls:       certificates checked against the system's CAs");
  const std::string why =
      "certificate not accepted: " + VerifyText(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  const std::string want = "backend 'ins' at 127.0.0.1:" + std::to_string(self.port()) + ": " + why;
  // Until serve reloads, the old rules answer 200; after, 502. Nothing else.
  int before_reload = 0;
  std::vector<std::string> odd;
  const int64_t t0 = NowMs();
  const bool flipped = PollUntil(
      [&] {
        HttpResponse a = Send(c, port, "GET", "/poll");
        if (!a.ok) {
          odd.push_back(a.error);
          return false;
        }
        if (a.status == 200) {
          ++before_reload;
          return false;
        }
        if (a.status != 502 || ErrorMessage(a) != want) odd.push_back(a.status_line + " " + a.body);
        return a.status == 502;
      },
      kTimeoutMs, 20);
  MESSAGE("--tls-verify took effect after " << NowMs() - t0 << " ms (" << before_reload
                                            << " requests answered 200 meanwhile)");
  REQUIRE_MESSAGE(flipped, "still answered 200 after " << kTimeoutMs << " ms");
  for (const std::string& o : odd) MESSAGE("unexpected answer: " << o);
  CHECK(odd.empty());
  const size_t received = self.request_count();
  for (int i = 0; i < 3; ++i) {
    HttpResponse a = Send(c, port, "GET", "/verified/" + std::to_string(i));
    REQUIRE_MESSAGE(a.ok, a.error);
    CHECK(a.status == 502);
    CHECK(ErrorMessage(a) == want);
  }
  CHECK(self.request_count() == received);
  CHECK(TlsErrors(admin, "ins") >= 4);

  // Its own certificate as the CA: accepted (it is for 127.0.0.1).
  fx.MustCli({"backend", "set", "ins", "--ca", certs.self_signed.crt});
  CHECK(TlsLine(fx, "ins") ==
        "tls:       certificates checked against " + certs.self_signed.crt + " (--ca)");
  const bool back = PollUntil(
      [&] {
        HttpResponse a = Send(c, port, "GET", "/trusted");
        return a.ok && a.status == 200;
      },
      kTimeoutMs, 20);
  CHECK_MESSAGE(back, "--ca naming the self-signed certificate did not make it accepted");
}

// --- 4. a bad instance next to a good one ------------------------------------

TEST_CASE_FIXTURE(
    Router,
    "e2e: tls backend: an instance with a wrong certificate next to a good one: every request "
    "succeeds (the handshake failure moves it to the other), and the bad one is ejected") {
  REQUIRE_MESSAGE(LocalhostIsIpv4Loopback(), "localhost does not resolve to 127.0.0.1 first");
  TlsBackend& bad = Tls("bad", certs.wrong_host);
  TlsBackend& good = Tls("good", certs.good);
  const std::string bad_url = bad.url("localhost"), good_url = good.url("localhost");
  fx.AddBackend("be", bad_url, {"--ca", certs.ca});
  fx.MustCli(
      {"backend", "set", "be", bad_url, good_url, "--eject-after", "3", "--eject-for", "5m"});
  StartServe();
  const uint16_t port = fx.port();
  RawClient c;
  int ok = 0;
  std::vector<std::string> failures;
  for (int i = 0; i < 200; ++i) {
    HttpResponse r =
        i % 4 == 3 ? Send(c, port, "POST", "/p/" + std::to_string(i), {}, "b" + std::to_string(i))
                   : Send(c, port, "GET", "/g/" + std::to_string(i));
    if (r.ok && r.status == 200 && r.Header("X-Backend") == std::optional<std::string>("good")) {
      ++ok;
    } else if (failures.size() < 5) {
      failures.push_back(r.ok ? r.status_line + " " + r.body : r.error);
    }
  }
  for (const std::string& f : failures) MESSAGE("failed: " << f);
  CHECK(ok == 200);
  CHECK(bad.request_count() == 0);
  CHECK(bad.handshakes_ok() == 0);
  MESSAGE("failed handshakes at the bad instance: " << bad.handshakes_failed());
  CHECK(bad.handshakes_failed() == 3);  // --eject-after 3, then no more tries
  CHECK(good.request_count() == 200);
  for (const RecordedRequest& req : good.requests()) {
    if (req.method == "POST") CHECK(req.body == "b" + req.target.substr(3));
  }

  const std::string why = "certificate not accepted: " + VerifyText(X509_V_ERR_HOSTNAME_MISMATCH);
  Json row;
  REQUIRE(PollUntil([&] {
    row = ShownInstance(fx, "be", bad_url);
    return row.is_object() && row.value("ejected", false);
  }));
  CHECK(row["last_failure"] == why);
  CHECK(row["ejections"] == 1);
  CHECK(row["connect_failures"] == 3);
  const std::string shown = ShowText(fx, "be");
  INFO(shown);
  CHECK(shown.find("ejected until") != std::string::npos);
  // (After an ejection the run counts eject-after - 1: one more failure
  // once back takes it out again.)
  CHECK(shown.find(bad_url + ": 2 failures in a row, ejected 1x in a row; last: " + why) !=
        std::string::npos);
  const std::string ejected_line = "instance localhost:" + std::to_string(bad.port()) +
                                   " ejected for 5m after 3 consecutive failures (last: " + why +
                                   ")";
  CHECK_MESSAGE(fx.serve()->Stderr().find(ejected_line) != std::string::npos,
                "no '" << ejected_line << "' in serve's stderr:\n"
                       << fx.serve()->Stderr());
  CHECK(TlsErrors(admin, "be") == 3);
  Json good_row = ShownInstance(fx, "be", good_url);
  REQUIRE(good_row.is_object());
  CHECK_FALSE(good_row["ejected"].get<bool>());
  CHECK(good_row["last_failure"].is_null());
}

// --- 5. health checks over TLS ------------------------------------------------

TEST_CASE_FIXTURE(
    Router,
    "e2e: tls backend: --health-path checks speak TLS: a good instance stays up, one with a wrong "
    "certificate goes down with the TLS reason as its last check") {
  REQUIRE_MESSAGE(LocalhostIsIpv4Loopback(), "localhost does not resolve to 127.0.0.1 first");
  TlsBackend& good = Tls("good", certs.good);
  TlsBackend& bad = Tls("bad", certs.wrong_host);
  const std::string good_url = good.url("localhost"), bad_url = bad.url("localhost");
  // (A check has at most --health-every: 300ms leaves a loaded machine room
  // for the handshake.)
  fx.AddBackend("hgood", good_url,
                {"--ca", certs.ca, "--health-path", "/healthz", "--health-every", "300ms"});
  fx.AddBackend("hbad", bad_url,
                {"--ca", certs.ca, "--health-path", "/healthz", "--health-every", "100ms"});
  fx.AddRoute("bad", {"--to", "hbad", "--path", "/bad"});
  StartServe();

  const std::string why = "certificate not accepted: " + VerifyText(X509_V_ERR_HOSTNAME_MISMATCH);
  // The bad one: down after 3 failed checks, the reason in its last check.
  const std::string down_line = "instance localhost:" + std::to_string(bad.port()) +
                                " down: 3 checks failed in a row (last: GET /healthz: " + why + ")";
  CHECK(PollUntil([&] { return fx.serve()->Stderr().find(down_line) != std::string::npos; }));
  Json bad_row;
  CHECK(PollUntil([&] {
    bad_row = ShownInstance(fx, "hbad", bad_url);
    return bad_row.is_object() && bad_row.value("check_down", false);
  }));
  INFO("hbad: " << bad_row.dump());
  CHECK(bad_row["last_check"] == "GET /healthz: " + why);
  CHECK(bad.request_count() == 0);
  CHECK(bad.handshakes_failed() >= 3);

  // The good one: checked over TLS (with SNI), and up.
  REQUIRE(PollUntil([&] { return good.request_count() >= 4; }));
  for (const RecordedRequest& req : good.requests()) {
    INFO(Printable(req.head));
    CHECK(req.target == "/healthz");
    CHECK(req.Header("User-Agent") == std::optional<std::string>("strangler-health-check"));
    const auto conn = good.connection(req.connection);
    REQUIRE(conn.has_value());
    CHECK(conn->sni == std::optional<std::string>("localhost"));
  }
  Json good_row;
  REQUIRE(PollUntil([&] {
    good_row = ShownInstance(fx, "hgood", good_url);
    return good_row.is_object() && good_row["last_check"] == "GET /healthz: 200";
  }));
  INFO("hgood: " << good_row.dump());
  CHECK_FALSE(good_row["check_down"].get<bool>());
  CHECK(good_row["last_check"] == "GET /healthz: 200");
  CHECK(fx.serve()->Stderr().find("instance localhost:" + std::to_string(good.port()) + " down") ==
        std::string::npos);

  // Traffic: the good one answers; the bad one (all down: tried anyway) 502s
  // with the reason.
  RawClient c;
  HttpResponse r = Send(c, fx.port(), "GET", "/fine");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 200);
  CHECK(r.Header("X-Backend") == std::optional<std::string>("good"));
  r = Send(c, fx.port(), "GET", "/bad/x");
  REQUIRE_MESSAGE(r.ok, r.error);
  CHECK(r.status == 502);
  CHECK(ErrorMessage(r) ==
        "backend 'hbad' at localhost:" + std::to_string(bad.port()) + ": " + why);
  CHECK(bad.request_count() == 0);
}

// --- 6. WebSocket and the mirror to https backends ---------------------------

TEST_CASE_FIXTURE(
    Router,
    "e2e: tls backend: a WebSocket upgrade tunnels to a wss backend (messages both ways, ping, "
    "close); a --mirror copy reaches an https backend") {
  REQUIRE_MESSAGE(LocalhostIsIpv4Loopback(), "localhost does not resolve to 127.0.0.1 first");
  Legacy();
  TlsBackend& wss = Tls("wss", certs.good);
  TlsBackend& mirror = Tls("mirror", certs.good);
  fx.AddBackend("wss", wss.url("localhost"), {"--ca", certs.ca});
  fx.AddBackend("mir", mirror.url("127.0.0.1"), {"--ca", certs.ca});
  fx.AddRoute("ws", {"--to", "wss", "--path", "/ws"});
  fx.AddRoute("m", {"--to", "legacy", "--path", "/m", "--mirror", "mir"});
  StartServe();

  // WebSocket.
  {
    WsClient ws(42);
    REQUIRE_MESSAGE(ws.Open(fx.port(), "/ws/chat?room=1"), ws.error() << " status " << ws.status());
    CHECK(ws.response().Header("X-Backend") == std::optional<std::string>("wss"));
    REQUIRE(wss.WaitForRequests(1, kTimeoutMs));
    const RecordedRequest up = wss.requests()[0];
    CHECK(up.target == "/ws/chat?room=1");
    CHECK(up.Header("Upgrade") == std::optional<std::string>("websocket"));
    CHECK(up.Header("Sec-WebSocket-Key") == std::optional<std::string>(ws.key()));
    const auto conn = wss.connection(up.connection);
    REQUIRE(conn.has_value());
    CHECK(conn->sni == std::optional<std::string>("localhost"));

    REQUIRE(ws.SendText("hello over wss"));
    WsMessage m = ws.ReceiveMessage(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.opcode == WsOpcode::kText);
    CHECK(m.payload == "hello over wss");

    const std::string big = Blob(300 * 1000, 5);
    REQUIRE(ws.SendBinary(big));
    m = ws.ReceiveMessage(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.opcode == WsOpcode::kBinary);
    CHECK(m.payload.size() == big.size());
    CHECK(m.payload == big);

    REQUIRE(ws.SendText("in three parts", 5));
    m = ws.ReceiveMessage(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.payload == "in three parts");

    REQUIRE(ws.SendPing("ping?"));
    m = ws.ReceiveMessage(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.opcode == WsOpcode::kPong);
    CHECK(m.payload == "ping?");

    for (int i = 0; i < 20; ++i) REQUIRE(ws.SendText("m" + std::to_string(i)));
    for (int i = 0; i < 20; ++i) {
      m = ws.ReceiveMessage(kTimeoutMs);
      REQUIRE_MESSAGE(m.ok, m.error);
      CHECK(m.payload == "m" + std::to_string(i));
    }

    REQUIRE(ws.SendClose(1000, "bye"));
    m = ws.ReadClose(kTimeoutMs);
    REQUIRE_MESSAGE(m.ok, m.error);
    CHECK(m.close_code == 1000);
    CHECK(ws.WaitForClosed(kCloseWaitMs));
    CHECK(wss.ws_sessions() == 1);
    CHECK(wss.ws_messages_echoed() == 23);
  }

  // The mirror: the client gets legacy's answer; the https mirror its copy.
  RawClient c;
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = Send(c, fx.port(), "GET", "/m/item/" + std::to_string(i) + "?q=1");
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
    CHECK(r.Header("X-Backend") == std::optional<std::string>("legacy"));
  }
  REQUIRE_MESSAGE(mirror.WaitForRequests(3, kHangGuardMs),
                  "the https mirror got " << mirror.request_count() << " of 3 copies");
  std::set<std::string> targets;
  for (const RecordedRequest& req : mirror.requests()) {
    INFO(Printable(req.head));
    targets.insert(req.target);
    CHECK(req.method == "GET");
    CHECK(req.Header("X-Strangler-Mirror") == std::optional<std::string>("1"));
    const auto conn = mirror.connection(req.connection);
    REQUIRE(conn.has_value());
    CHECK_FALSE(conn->sni.has_value());  // an address: no SNI
    CHECK(conn->alpn == "http/1.1");
  }
  CHECK(targets == std::set<std::string>{"/m/item/0?q=1", "/m/item/1?q=1", "/m/item/2?q=1"});
  CHECK(mirror.handshakes_failed() == 0);
}

// --- 7. CLI refusals -----------------------------------------------------------

TEST_CASE(
    "e2e: tls backend: --ca on an http-only backend, a missing or non-PEM --ca file, --ca with "
    "--tls-insecure: exit 2, one clear line, nothing written") {
  Fixture fx;
  const Certs certs = MakeCerts(fx.dir());
  fx.AddBackend("plain", "http://127.0.0.1:9");
  fx.AddBackend("secure", "https://127.0.0.1:9", {"--ca", certs.ca});
  const std::string junk = fx.dir().File("junk.pem");
  WriteFile(junk, "this is not a certificate\n-----BEGIN NOTHING-----\n");
  const std::string missing = fx.dir().File("no-such-ca.pem");

  struct Refusal {
    std::string what;
    std::vector<std::string> args;
    std::vector<std::string> says;  // each must be in the line
  };
  const std::vector<Refusal> refusals = {
      {"--ca on a new http-only backend",
       {"backend", "add", "p2", "http://127.0.0.1:9", "--ca", certs.ca},
       {"--ca", "https://", "p2"}},
      {"--ca on an existing http-only backend",
       {"backend", "set", "plain", "--ca", certs.ca},
       {"--ca", "https://", "plain"}},
      {"--tls-insecure on an http-only backend",
       {"backend", "set", "plain", "--tls-insecure"},
       {"--tls-insecure", "https://", "plain"}},
      {"--ca with a missing file",
       {"backend", "add", "s2", "https://127.0.0.1:9", "--ca", missing},
       {"--ca", missing, "No such file"}},
      {"--ca with a file that holds no certificate",
       {"backend", "add", "s2", "https://127.0.0.1:9", "--ca", junk},
       {"--ca", junk, "no PEM certificate"}},
      {"--ca with a missing file on set",
       {"backend", "set", "secure", "--ca", missing},
       {"--ca", missing}},
      {"--ca together with --tls-insecure",
       {"backend", "add", "s2", "https://127.0.0.1:9", "--ca", certs.ca, "--tls-insecure"},
       {"--ca", "--tls-insecure"}},
      {"--tls-insecure on a backend that has --ca",
       {"backend", "set", "secure", "--tls-insecure"},
       {"--ca", "--tls-insecure"}},
  };
  const std::string export_before = fx.MustCli({"export"}).out;
  const std::string history_before = fx.MustCli({"history", "--json"}).out;
  for (const Refusal& r : refusals) {
    INFO(r.what);
    RunResult res = fx.Cli(r.args);
    INFO("stdout: " << res.out << "\nstderr: " << res.err);
    CHECK(res.exit_code == 2);
    CHECK(res.out.empty());
    std::string err = res.err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    CHECK(!err.empty());
    CHECK(err.find('\n') == std::string::npos);  // one line
    for (const std::string& s : r.says) CHECK(err.find(s) != std::string::npos);
  }
  CHECK(fx.MustCli({"export"}).out == export_before);
  CHECK(fx.MustCli({"history", "--json"}).out == history_before);
  Json shown = Json::parse(fx.MustCli({"backend", "show", "secure", "--json"}).out);
  CHECK(shown["ca_file"] == certs.ca);
  CHECK_FALSE(shown.contains("tls_insecure"));

  // What is allowed: --ca '' goes back to the system's CAs; --tls-insecure
  // then; --tls-verify undoes it.
  fx.MustCli({"backend", "set", "secure", "--ca", ""});
  CHECK(TlsLine(fx, "secure") == "tls:       certificates checked against the system's CAs");
  fx.MustCli({"backend", "set", "secure", "--tls-insecure"});
  CHECK(TlsLine(fx, "secure") == "tls:       certificates NOT checked (--tls-insecure)");
  fx.MustCli({"backend", "set", "secure", "--tls-verify"});
  CHECK(TlsLine(fx, "secure") == "tls:       certificates checked against the system's CAs");
  CHECK(TlsLine(fx, "plain").empty());  // no https URL: no tls line
}

// --- 8. the --ca file changes under a running serve ---------------------------

TEST_CASE_FIXTURE(
    Router,
    "e2e: tls backend: when the --ca file's contents change, new connections are checked against "
    "the new CAs: a session kept from before is not resumed past the change") {
  TlsBackend& be = Tls("rot", certs.good);
  const std::string trust = fx.dir().File("trust.pem");
  WriteFile(trust, ReadFile(certs.ca));
  fx.AddBackend("rot", be.url(), {"--ca", trust});
  // The control: the same server and --ca by name, a separate instance that
  // has no session before the change.
  fx.AddBackend("fresh", be.url("localhost"), {"--ca", trust});
  fx.AddRoute("fresh", {"--to", "fresh", "--path", "/fresh"});
  REQUIRE_MESSAGE(LocalhostIsIpv4Loopback(), "localhost does not resolve to 127.0.0.1 first");
  StartServe();
  RawClient c;
  // /close: each answer ends its connection, so each request handshakes
  // (resuming the instance's session after the first).
  for (int i = 0; i < 4; ++i) {
    HttpResponse r = Send(c, fx.port(), "GET", "/close/before/" + std::to_string(i));
    REQUIRE_MESSAGE(r.ok, r.error);
    REQUIRE(r.status == 200);
  }
  int resumed_before = 0;
  for (const TlsConnInfo& ci : be.connections()) resumed_before += ci.resumed;
  CHECK(resumed_before >= 2);  // sessions are kept and resumed: the case this test is about

  // The operator stops trusting the CA: the file now holds another one.
  WriteFile(trust, ReadFile(certs.other_ca));
  const size_t received = be.request_count();
  const int conns_before = static_cast<int>(be.connections().size());
  const std::string why =
      "certificate not accepted: " + VerifyText(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
  const std::string want = "backend 'rot' at 127.0.0.1:" + std::to_string(be.port()) + ": " + why;
  for (int i = 0; i < 3; ++i) {
    HttpResponse r = Send(c, fx.port(), "GET", "/close/after/" + std::to_string(i));
    REQUIRE_MESSAGE(r.ok, r.error);
    INFO("request " << i << " after the CA change");
    if (r.status == 200) {
      const std::string how =
          r.Header("X-Tls-Resumed") == std::optional<std::string>("yes")
              ? "RESUMED the session made under the old CA (the certificate was not checked "
                "against the new --ca)"
              : "was not resumed";
      FAIL_CHECK(std::string("answered 200 by the backend through a TLS connection that ")
                 << how << "; expected 502 '" << want << "'");
    } else {
      CHECK(r.status == 502);
      CHECK(ErrorMessage(r) == want);
    }
  }
  // The instance with no session: refused with the same reason.
  HttpResponse f = Send(c, fx.port(), "GET", "/fresh/after");
  REQUIRE_MESSAGE(f.ok, f.error);
  CHECK(f.status == 502);
  CHECK(ErrorMessage(f) ==
        "backend 'fresh' at localhost:" + std::to_string(be.port()) + ": " + why);
  int accepted_after = 0;
  const auto conns = be.connections();
  for (size_t i = static_cast<size_t>(conns_before); i < conns.size(); ++i) {
    accepted_after += conns[i].handshake_ok;
  }
  CHECK_MESSAGE(accepted_after == 0,
                accepted_after << " handshake(s) completed after the --ca file changed");
  CHECK(be.request_count() == received);
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
