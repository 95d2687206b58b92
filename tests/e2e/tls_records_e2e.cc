// Tiny TLS records on the listener (`serve --tls-cert FILE --tls-key FILE`):
// a request body sent as one TLS record per byte, the records arriving
// together, goes to a plain backend in a few writes, as the records read in
// together are taken together, not one write (one TCP segment, the backend
// socket being TCP_NODELAY) per record. Found by the raw-byte round on TLS
// (/work/atk31 FINDINGS.md T2: 3001 sendto for a 3000-byte body before).
//
// The backend below counts what reached it in TCP segments: the kernel's
// tcpi_data_segs_in (TCP_INFO) of its connection, read once the request is
// whole, answered in the body. The client is an in-process OpenSSL client
// that makes every body record in memory first and then sends them all in one
// send loop, so that they reach the router together. The same over the plain
// listener (3000 one-byte send()s) is printed as a control.
//
// <linux/tcp.h> gives struct tcp_info with tcpi_data_segs_in; <netinet/tcp.h>
// (which must not be included with it: they clash) has no such field in
// older glibc. Neither harness.h nor wire.h includes <netinet/tcp.h>.
#include <fcntl.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "harness.h"
#include "tls_helpers.h"
#include "wire.h"

namespace strangler {
namespace e2e {
namespace {

constexpr int kTimeoutMs = 10000;  // guards against hangs only

// A plain HTTP/1.1 keep-alive backend on 127.0.0.1:0 that reads each request
// (Content-Length bodies), then the data segments its connection has taken
// in since the previous request's end (TCP_INFO tcpi_data_segs_in), and
// answers 200 with the body "segs=N". Each request's body and count are
// recorded. Thread-safe.
class SegsBackend {
 public:
  struct Seen {
    std::string target;
    std::string body;
    long segs = -1;  // -1: TCP_INFO failed
  };

  SegsBackend() = default;
  ~SegsBackend() { Stop(); }
  SegsBackend(const SegsBackend&) = delete;
  SegsBackend& operator=(const SegsBackend&) = delete;

  bool Start() {
    return server_.Start(&stop_, [this](int fd, int) { Serve(fd); });
  }
  void Stop() {
    if (stop_.exchange(true)) return;
    server_.Join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(server_.port()); }
  std::vector<Seen> seen() const {
    std::lock_guard<std::mutex> l(mu_);
    return seen_;
  }

 private:
  void Serve(int fd) {
    std::string buf;
    uint32_t prev_segs = 0;
    Seen s;
    while (ReadRequest(fd, &buf, &s)) {
      tcp_info info{};
      socklen_t info_len = sizeof(info);
      if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &info_len) == 0 &&
          info_len >= offsetof(tcp_info, tcpi_data_segs_in) + sizeof(info.tcpi_data_segs_in)) {
        s.segs = static_cast<long>(info.tcpi_data_segs_in - prev_segs);
        prev_segs = info.tcpi_data_segs_in;
      }
      const std::string body = "segs=" + std::to_string(s.segs);
      {
        std::lock_guard<std::mutex> l(mu_);
        seen_.push_back(s);
      }
      if (!SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                           "\r\n\r\n" + body)) {
        break;
      }
    }
    close(fd);
  }

  // The next request off fd (*buf keeps what came after it): its target and
  // body into *s. False at the end, on an error or on stop.
  bool ReadRequest(int fd, std::string* buf, Seen* s) {
    const int64_t idle_deadline = NowMs() + 60000;  // an idle keep-alive connection
    size_t he;
    while ((he = buf->find("\r\n\r\n")) == std::string::npos) {
      if (RecvMore(fd, buf, stop_, idle_deadline) <= 0) return false;
    }
    const RecordedRequest req = RequestFromHead(buf->substr(0, he), 0);
    const size_t end = he + 4 + ContentLengthOf(req);
    const int64_t deadline = NowMs() + kTimeoutMs;
    while (buf->size() < end) {
      if (RecvMore(fd, buf, stop_, deadline) <= 0) return false;
    }
    *s = Seen{};
    s->target = req.target;
    s->body = buf->substr(he + 4, end - he - 4);
    buf->erase(0, end);
    return true;
  }

  std::atomic<bool> stop_{false};
  LoopbackServer server_;
  mutable std::mutex mu_;
  std::vector<Seen> seen_;  // guarded by mu_
};

using SslCtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;
using SslPtr = std::unique_ptr<SSL, decltype(&SSL_free)>;

// A blocking socket whose every send and recv gives up after kTimeoutMs.
int ConnectBounded(uint16_t port) {
  const int fd = ConnectLoopbackWithin(port, 3000);
  if (fd < 0) return -1;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  timeval tv{kTimeoutMs / 1000, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  return fd;
}

// One HTTP/1.1 answer with a Content-Length body off `ssl`: its status line
// and body, or "" and an error in *why.
bool ReadTlsAnswer(SSL* ssl, std::string* status_line, std::string* body, std::string* why) {
  std::string buf;
  const int64_t deadline = NowMs() + kTimeoutMs;
  size_t he = std::string::npos;
  size_t want = 0;
  while (NowMs() < deadline) {
    if (he == std::string::npos && (he = buf.find("\r\n\r\n")) != std::string::npos) {
      const RecordedRequest head = RequestFromHead(buf.substr(0, he), 0);  // the same syntax
      want = he + 4 + ContentLengthOf(head);
      *status_line = head.request_line;
    }
    if (he != std::string::npos && buf.size() >= want) {
      *body = buf.substr(he + 4, want - he - 4);
      return true;
    }
    int e = 0;
    if (SslReadSome(ssl, &buf, &e, [](int) { return false; }) <= 0) {
      *why = "read: " + SslWhy(e, ssl) + " after " + std::to_string(buf.size()) + " bytes";
      return false;
    }
  }
  *why = "timeout";
  return false;
}

// The TLS client's run: a handshake with serve's TLS listener, the request
// head in one SSL_write, then the body as one record per byte, all made in a
// memory BIO first and sent in one send loop. The answer's body.
std::string PostInOneByteRecords(uint16_t port, const std::string& ca, const std::string& target,
                                 const std::string& body) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  REQUIRE(ctx);
  REQUIRE(SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr) == 1);
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  const int fd = ConnectBounded(port);
  REQUIRE(fd >= 0);
  SslPtr ssl(SSL_new(ctx.get()), SSL_free);
  SSL_set_fd(ssl.get(), fd);
  SSL_set_tlsext_host_name(ssl.get(), "localhost");
  SSL_set1_host(ssl.get(), "localhost");
  ERR_clear_error();
  const int hs = SSL_connect(ssl.get());
  if (hs != 1) {
    const std::string why = SslWhy(SSL_get_error(ssl.get(), hs), ssl.get());
    close(fd);
    FAIL("handshake: " << why);
  }
  const std::string head = "POST " + target + " HTTP/1.1\r\nHost: localhost\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  REQUIRE(SSL_write(ssl.get(), head.data(), static_cast<int>(head.size())) ==
          static_cast<int>(head.size()));

  // Every body record into memory, none on the socket yet.
  BIO* mem = BIO_new(BIO_s_mem());
  REQUIRE(mem);
  SSL_set0_wbio(ssl.get(), mem);  // ssl owns it now
  bool all_written = true;
  for (char ch : body) all_written = all_written && SSL_write(ssl.get(), &ch, 1) == 1;
  char* data = nullptr;
  const long n = BIO_get_mem_data(mem, &data);
  const std::string records(data, n > 0 ? static_cast<size_t>(n) : 0);
  SSL_set0_wbio(ssl.get(), BIO_new_socket(fd, BIO_NOCLOSE));  // frees mem
  ERR_clear_error();
  REQUIRE(all_written);
  // At least a 5-byte header, a type byte and a 16-byte tag per record.
  REQUIRE(records.size() >= body.size() * 22);
  REQUIRE(SendAll(fd, records));

  std::string status, answer, why;
  const bool ok = ReadTlsAnswer(ssl.get(), &status, &answer, &why);
  SSL_shutdown(ssl.get());
  ssl.reset();
  close(fd);
  REQUIRE_MESSAGE(ok, why);
  CHECK(status == "HTTP/1.1 200 OK");
  return answer;
}

// The count in "segs=N".
long SegsOf(const std::string& answer) {
  return answer.rfind("segs=", 0) == 0 ? std::strtol(answer.c_str() + 5, nullptr, 10) : -2;
}

TEST_CASE(
    "e2e: tls records: a body sent as one TLS record per byte, the records arriving together, "
    "reaches a plain backend byte-exact in a few writes, not one per record") {
  SegsBackend be;
  REQUIRE(be.Start());
  Fixture fx;
  const KeyPair ca = MakeCa(fx.dir().File("ca"), "strangler e2e CA");
  const KeyPair cert =
      MakeServerCert(ca, fx.dir().File("serve"), "localhost", "DNS:localhost,IP:127.0.0.1", 0x3001);
  fx.AddBackend("be", be.url());
  REQUIRE(fx.StartServe({"--tls-cert", cert.crt, "--tls-key", cert.key}));

  for (const size_t size : {size_t{3000}, size_t{20000}}) {
    INFO(size << " one-byte records");
    const std::string body = Blob(size, static_cast<unsigned>(size));
    const std::string target = "/tiny/" + std::to_string(size);
    const std::string answer = PostInOneByteRecords(fx.port(), ca.crt, target, body);
    const auto seen = be.seen();
    REQUIRE(!seen.empty());
    const SegsBackend::Seen& got = seen.back();
    CHECK(got.target == target);
    CHECK(got.body.size() == body.size());
    CHECK(got.body == body);
    REQUIRE(got.segs >= 0);  // TCP_INFO said
    CHECK(SegsOf(answer) == got.segs);
    MESSAGE("TLS listener: a " << size << "-byte body in " << size
                               << " one-byte records reached the backend in " << got.segs
                               << " TCP data segments (head included)");
    // One per record was ~size before; a few per 16 KiB read now.
    CHECK(got.segs < 300);
  }

  // The control: the plain listener, 3000 one-byte send()s (the client's
  // kernel packs them as it likes). Printed, not checked.
  {
    Fixture plain;
    plain.AddBackend("be", be.url());
    REQUIRE(plain.StartServe());
    const std::string body = Blob(3000, 5);
    RawClient c;
    REQUIRE(c.Connect(plain.port()));
    REQUIRE(c.Send("POST /plain/3000 HTTP/1.1\r\nHost: a\r\nContent-Length: 3000\r\n\r\n"));
    bool sent = true;
    for (char ch : body) sent = sent && c.Send(std::string(1, ch));
    REQUIRE(sent);
    const HttpResponse r = c.ReadResponse(false, kTimeoutMs);
    REQUIRE_MESSAGE(r.ok, r.error);
    CHECK(r.status == 200);
    const auto seen = be.seen();
    REQUIRE(!seen.empty());
    CHECK(seen.back().body == body);
    MESSAGE(
        "plain listener (control): a 3000-byte body in 3000 one-byte send()s reached the "
        "backend in "
        << seen.back().segs << " TCP data segments (head included)");
  }
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
