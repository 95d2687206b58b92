#include "tls_helpers.h"

#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {

std::string Blob(size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed + (i >> 8)) & 0xff);
  return s;
}

std::string Which(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path ? path : "/usr/local/bin:/usr/bin:/bin");
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (dir.empty()) continue;
    std::string p = dir + "/" + name;
    if (access(p.c_str(), X_OK) == 0) return p;
  }
  return "";
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << bytes;
  f.close();
  REQUIRE_MESSAGE(f.good(), "cannot write " << path);
}

void MustRun(const std::vector<std::string>& argv) {
  RunResult r = Run(argv, {}, 30000);
  std::string cmd;
  for (const auto& a : argv) cmd += a + " ";
  REQUIRE_MESSAGE(r.exit_code == 0, cmd << "\nexit " << r.exit_code << "\n" << r.err << r.out);
}

std::string SslWhy(int ssl_error, const SSL* ssl) {
  std::string out = "SSL_get_error " + std::to_string(ssl_error);
  if (ssl_error == SSL_ERROR_SYSCALL && errno != 0)
    out += std::string(" (") + strerror(errno) + ")";
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    char text[256];
    ERR_error_string_n(e, text, sizeof(text));
    out += std::string("; ") + text;
  }
  if (ssl) {
    long v = SSL_get_verify_result(ssl);
    if (v != X509_V_OK) out += std::string("; verify: ") + X509_verify_cert_error_string(v);
  }
  return out;
}

int SslReadSome(SSL* ssl, std::string* buf, int* ssl_error,
                const std::function<bool(int ssl_error)>& wait) {
  char tmp[16384];
  while (true) {
    ERR_clear_error();
    errno = 0;
    const int n = SSL_read(ssl, tmp, sizeof(tmp));
    if (n > 0) {
      buf->append(tmp, static_cast<size_t>(n));
      return n;
    }
    const int e = SSL_get_error(ssl, n);
    if ((e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) && wait(e)) continue;
    *ssl_error = e;
    return 0;
  }
}

// --- certificates ------------------------------------------------------------

namespace {

// The CLI's arguments for a new P-256 key, not encrypted.
const std::vector<std::string> kNewKey = {"-newkey", "ec", "-pkeyopt",
                                          "ec_paramgen_curve:prime256v1", "-nodes"};

}  // namespace

std::string OpenSslCli() {
  const std::string openssl = Which("openssl");
  REQUIRE_MESSAGE(!openssl.empty(), "the openssl CLI is not on PATH");
  return openssl;
}

KeyPair MakeSelfSigned(const std::string& base, const std::string& cn,
                       const std::vector<std::string>& extensions) {
  const KeyPair kp{base + ".crt", base + ".key"};
  std::vector<std::string> argv = {OpenSslCli(), "req", "-x509"};
  argv.insert(argv.end(), kNewKey.begin(), kNewKey.end());
  argv.insert(argv.end(), {"-keyout", kp.key, "-out", kp.crt, "-days", "2", "-subj", "/CN=" + cn});
  for (const std::string& ext : extensions) argv.insert(argv.end(), {"-addext", ext});
  MustRun(argv);
  return kp;
}

KeyPair MakeCa(const std::string& base, const std::string& cn) {
  return MakeSelfSigned(
      base, cn, {"basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"});
}

void MakeKeyAndCsr(const std::string& base, const std::string& cn) {
  std::vector<std::string> argv = {OpenSslCli(), "req", "-new"};
  argv.insert(argv.end(), kNewKey.begin(), kNewKey.end());
  argv.insert(argv.end(), {"-keyout", base + ".key", "-out", base + ".csr", "-subj", "/CN=" + cn});
  MustRun(argv);
}

KeyPair MakeServerCert(const KeyPair& ca, const std::string& base, const std::string& cn,
                       const std::string& san, long serial) {
  MakeKeyAndCsr(base, cn);
  const std::string ext = base + ".ext";
  WriteFile(ext,
            "basicConstraints=critical,CA:FALSE\n"
            "keyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n"
            "subjectAltName=" +
                san +
                "\n"
                "subjectKeyIdentifier=hash\n"
                "authorityKeyIdentifier=keyid,issuer\n");
  char hex[32];
  std::snprintf(hex, sizeof(hex), "0x%lx", serial);
  const KeyPair kp{base + ".crt", base + ".key"};
  MustRun({OpenSslCli(), "x509", "-req", "-in", base + ".csr", "-CA", ca.crt, "-CAkey", ca.key,
           "-set_serial", hex, "-days", "2", "-extfile", ext, "-out", kp.crt});
  return kp;
}

}  // namespace e2e
}  // namespace strangler
