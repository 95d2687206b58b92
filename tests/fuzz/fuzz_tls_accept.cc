// fuzz_tls_accept: the first bytes a client sends to the TLS listener
// (plain HTTP, garbage, a ClientHello cut anywhere or mangled), then its
// close, taken by the real code: fio::TlsAccept on a fiber of a real
// WorkerPool, with the listener's real context (ServerTls::Load of a key and
// certificate made at start-up), over a socketpair.
//
// Input: the client's bytes (at most 64 KiB are sent; the rest is dropped).
//
// Invariants, for every input:
// - the handshake ends (the client's close ends any wait), never crashes;
// - a handshake that failed leaves no TLS on the socket (fio::IsTls false);
// - "plain HTTP" only when the first byte is an upper-case letter, and the
//   other failures only when the first byte is not a TLS handshake record's
//   (22) or the handshake itself failed;
// - a handshake cannot succeed: the client never finishes one (no key).
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include "fuzz_common.h"
#include "proxy/fiber.h"
#include "proxy/tls_context.h"
#include "proxy/transport.h"

namespace strangler {
namespace fuzz {
namespace {

// A P-256 key and a self-signed certificate for it, written to a temp dir.
std::unique_ptr<ServerTls> MakeServerTls() {
  char dir[] = "/tmp/fuzz_tls_XXXXXX";
  if (!mkdtemp(dir)) std::abort();
  const std::string cert_file = std::string(dir) + "/cert.pem";
  const std::string key_file = std::string(dir) + "/key.pem";
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400L * 365);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("localhost"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  FILE* f = std::fopen(cert_file.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(key_file.c_str(), "w");
  PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(key);
  auto tls = ServerTls::Load(cert_file, key_file);
  if (!tls.ok()) std::abort();
  unlink(cert_file.c_str());
  unlink(key_file.c_str());
  rmdir(dir);
  return std::move(tls.value());
}

struct Rig {
  std::unique_ptr<ServerTls> tls = MakeServerTls();
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool ok = false, plain_http = false, tls_left = false;
  std::unique_ptr<WorkerPool> pool;

  Rig() {
    pool = std::make_unique<WorkerPool>(1, [this](int fd) {
      fio::Adopt(fd);
      std::string why;
      bool plain = false;
      SslCtxPtr ctx = tls->Current();
      const bool accepted = fio::TlsAccept(fd, ctx.get(), 2000, &why, &plain);
      const bool left = fio::IsTls(fd);
      fio::Close(fd);
      std::lock_guard<std::mutex> lock(mu);
      ok = accepted;
      plain_http = plain;
      tls_left = left;
      done = true;
      cv.notify_all();
    });
  }
};

Rig& TheRig() {
  static Rig* rig = new Rig();  // lives for the process: its pool's threads run on
  return *rig;
}

}  // namespace
}  // namespace fuzz
}  // namespace strangler

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace strangler::fuzz;
  Rig& rig = TheRig();
  size = std::min<size_t>(size, 64 * 1024);
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) std::abort();
  int buf = 256 * 1024;
  setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
  size_t sent = 0;
  while (sent < size) {
    ssize_t n = send(fds[1], data + sent, size - sent, MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  shutdown(fds[1], SHUT_WR);  // the client's close ends every wait of the handshake
  {
    std::lock_guard<std::mutex> lock(rig.mu);
    rig.done = false;
  }
  rig.pool->Submit(fds[0]);
  {
    std::unique_lock<std::mutex> lock(rig.mu);
    rig.cv.wait(lock, [&] { return rig.done; });
  }
  close(fds[1]);
  FUZZ_CHECK(!rig.ok);  // no client key: no handshake can finish
  FUZZ_CHECK(!rig.tls_left);
  if (rig.plain_http) FUZZ_CHECK(size > 0 && std::isupper(data[0]));
  if (size > 0 && data[0] == 22) FUZZ_CHECK(!rig.plain_http);
  return 0;
}
