// Helpers shared by the TLS e2e tests (tls_listener_e2e.cc, tls_backend_e2e.cc):
// test certificates made with the `openssl` CLI, OpenSSL's words for a
// failure, and the small file and process helpers they need.
//
// The certificates are P-256 keys in PEM files, valid 2 days, made by
// running the CLI (found on PATH; a test fails when it is not there).
//
// Implemented in tls_helpers.cc. Stateless; thread-safe except where a
// helper fails the test (doctest's REQUIRE, from the test's thread only).
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace strangler {
namespace e2e {

// n bytes of binary (every byte value occurs), the same for the same n and
// seed: a body to compare byte for byte.
std::string Blob(size_t n, unsigned seed = 7);

// The absolute path of a program on PATH (the harness execs argv[0] as a
// path), or "" when there is none.
std::string Which(const std::string& name);

// Writes `bytes` to `path` (created or truncated); fails the test when it
// cannot.
void WriteFile(const std::string& path, const std::string& bytes);

// Runs a command (capped at 30 s) and fails the test, with its command line,
// exit code and output, unless it exits 0.
void MustRun(const std::vector<std::string>& argv);

// What OpenSSL says about the last failure of an SSL_* call that returned
// SSL_get_error `ssl_error`: that code, errno for SSL_ERROR_SYSCALL, the
// error queue (emptied), and, given `ssl`, the certificate check's verdict
// when it was not X509_V_OK.
std::string SslWhy(int ssl_error, const SSL* ssl = nullptr);

// One SSL_read on `ssl`, whose socket is non-blocking, appended to *buf.
// While OpenSSL wants the socket readable or writable, `wait(ssl_error)`
// waits for that (false: give up). Returns the bytes appended (> 0), or 0
// with *ssl_error the SSL_get_error of the failure (SSL_ERROR_WANT_READ or
// _WRITE when `wait` gave up); errno and OpenSSL's error queue are left as
// the failure left them, for SslWhy.
int SslReadSome(SSL* ssl, std::string* buf, int* ssl_error,
                const std::function<bool(int ssl_error)>& wait);

// --- certificates ------------------------------------------------------------

// A certificate and its key: PEM file paths.
struct KeyPair {
  std::string crt, key;
};

// The `openssl` CLI's absolute path; fails the test when it is not on PATH.
std::string OpenSslCli();

// A self-signed certificate BASE.crt (subject CN=`cn`) with a new key
// BASE.key; each of `extensions` is passed as an -addext ("name=value").
KeyPair MakeSelfSigned(const std::string& base, const std::string& cn,
                       const std::vector<std::string>& extensions);

// A CA for the tests: MakeSelfSigned with CA:TRUE (critical) and key usage
// keyCertSign, cRLSign.
KeyPair MakeCa(const std::string& base, const std::string& cn);

// A new key BASE.key and a certificate request BASE.csr for CN=`cn`.
void MakeKeyAndCsr(const std::string& base, const std::string& cn);

// A server certificate BASE.crt signed by `ca`, for a new key BASE.key
// (request BASE.csr, extensions BASE.ext): CN=`cn`, subjectAltName `san`
// ("DNS:localhost,IP:127.0.0.1"), serial `serial`, CA:FALSE, key usage
// digitalSignature, extended key usage serverAuth, key identifiers.
KeyPair MakeServerCert(const KeyPair& ca, const std::string& base, const std::string& cn,
                       const std::string& san, long serial);

}  // namespace e2e
}  // namespace strangler
