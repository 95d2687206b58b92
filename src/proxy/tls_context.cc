#include "proxy/tls_context.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <tuple>

#include <openssl/x509v3.h>

#include "proxy/net.h"
#include "proxy/transport.h"

namespace strangler {
namespace {

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

// What OpenSSL's error queue says, first cause first; `fallback` when empty.
std::string SslErrors(const char* fallback) {
  std::string out;
  unsigned long e;
  while ((e = ERR_get_error()) != 0) {
    if (!out.empty()) continue;  // the first is the cause
    const char* reason = ERR_reason_error_string(e);
    if (reason) {
      out = reason;
    } else {
      char text[256];
      ERR_error_string_n(e, text, sizeof(text));
      out = text;
    }
  }
  return out.empty() ? fallback : out;
}

// Settings both sides share.
void CommonSettings(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
  // Read what the socket has, not one record at a time (transport.cc takes
  // the records read in together).
  SSL_CTX_set_read_ahead(ctx, 1);
}

SslCtxPtr Own(SSL_CTX* ctx) { return SslCtxPtr(ctx, SSL_CTX_free); }

// ALPN on the listener: http/1.1 when the client offers it; a client that
// offers only others (h2) gets no ALPN answer and speaks HTTP/1.1 or leaves.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, kAlpnHttp11, sizeof(kAlpnHttp11), in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

Result<SslCtxPtr> BuildServerContext(const std::string& cert_file, const std::string& key_file) {
  ERR_clear_error();
  SslCtxPtr ctx = Own(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return Status::Internal("TLS: " + SslErrors("cannot make a context"));
  CommonSettings(ctx.get());
  SSL_CTX_set_options(ctx.get(), SSL_OP_CIPHER_SERVER_PREFERENCE);
  // Resumption by stateless tickets only: no server-side session cache (its
  // table is walked under a lock every 255 handshakes).
  SSL_CTX_set_num_tickets(ctx.get(), 1);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  // The chain sent is the file's, as given: without this OpenSSL would try
  // to build one from its trust store at every handshake.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_NO_AUTO_CHAIN);
  SSL_CTX_set_alpn_select_cb(ctx.get(), SelectAlpn, nullptr);
  // A key under a pass phrase is refused like any bad key: OpenSSL's own
  // callback would ask for it on the terminal and hold serve's loop.
  SSL_CTX_set_default_passwd_cb(ctx.get(), [](char*, int, int, void*) { return 0; });
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    return Status::Usage("--tls-cert " + cert_file + ": " +
                         SslErrors("not a PEM certificate chain"));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx.get(), key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    return Status::Usage("--tls-key " + key_file + ": " + SslErrors("not a PEM private key"));
  }
  if (SSL_CTX_check_private_key(ctx.get()) != 1) {
    return Status::Usage("--tls-key " + key_file + " is not the key of --tls-cert " + cert_file +
                         " (" + SslErrors("they do not match") + ")");
  }
  return ctx;
}

}  // namespace

SSL* NewClientSsl(SSL_CTX* ctx, int fd, const std::string& host) {
  SSL* ssl = SSL_new(ctx);
  if (!ssl) return nullptr;
  SSL_set_fd(ssl, fd);
  const bool literal = IsAddressLiteral(host);
  if (!literal) SSL_set_tlsext_host_name(ssl, host.c_str());  // no SNI for an address
  if (SSL_CTX_get_verify_mode(ctx) & SSL_VERIFY_PEER) {
    if (literal) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    } else {
      SSL_set1_host(ssl, host.c_str());
    }
  }
  return ssl;
}

std::string TlsHandshakeError(SSL* ssl, int ssl_error, int saved_errno) {
  const long verify = SSL_get_verify_result(ssl);
  if (verify != X509_V_OK) {
    ERR_clear_error();
    return std::string("certificate not accepted: ") + X509_verify_cert_error_string(verify);
  }
  std::string errors = SslErrors("");
  if (!errors.empty()) return "TLS handshake failed: " + errors;
  // (With SSL_OP_IGNORE_UNEXPECTED_EOF a close is ZERO_RETURN, even here.)
  if (ssl_error == SSL_ERROR_ZERO_RETURN || (ssl_error == SSL_ERROR_SYSCALL && saved_errno == 0)) {
    return "the peer closed the connection during the TLS handshake";
  }
  if (ssl_error == SSL_ERROR_SYSCALL) {
    return std::string("TLS handshake failed: ") + std::strerror(saved_errno);
  }
  return "TLS handshake failed";
}

ServerTls::Stamp ServerTls::StampOf(const std::string& file) {
  Stamp s;
  struct stat st {};
  if (stat(file.c_str(), &st) != 0) return s;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime_ns = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return s;
}

Result<std::unique_ptr<ServerTls>> ServerTls::Load(const std::string& cert_file,
                                                   const std::string& key_file) {
  for (const auto& [flag, file] : {std::pair{"--tls-cert", &cert_file}, {"--tls-key", &key_file}}) {
    if (std::FILE* f = std::fopen(file->c_str(), "r")) {
      std::fclose(f);
    } else {
      return Status::Usage(std::string(flag) + " " + *file + ": " + std::strerror(errno));
    }
  }
  std::unique_ptr<ServerTls> tls(new ServerTls(cert_file, key_file));
  tls->cert_stamp_ = StampOf(cert_file);
  tls->key_stamp_ = StampOf(key_file);
  auto ctx = BuildServerContext(cert_file, key_file);
  if (!ctx.ok()) return ctx.status();
  tls->ctx_ = std::move(ctx.value());
  return tls;
}

ServerTls::Reload ServerTls::CheckFiles(std::string* why) {
  const Stamp cert = StampOf(cert_file_), key = StampOf(key_file_);
  if (cert == cert_stamp_ && key == key_stamp_) return Reload::kUnchanged;
  cert_stamp_ = cert;
  key_stamp_ = key;
  auto ctx = BuildServerContext(cert_file_, key_file_);
  if (!ctx.ok()) {
    *why = ctx.status().message();
    // Looked at again next time even if unchanged: a rotation writes the two
    // files one after the other.
    cert_stamp_ = Stamp{};
    return Reload::kFailed;
  }
  std::atomic_store(&ctx_, std::move(ctx.value()));
  reloads.fetch_add(1, std::memory_order_relaxed);
  return Reload::kReloaded;
}

Status CheckCaFile(const std::string& ca_file) {
  std::FILE* f = std::fopen(ca_file.c_str(), "r");
  if (!f) return Status::Usage("--ca " + ca_file + ": " + std::strerror(errno));
  int certs = 0;
  while (X509* x = PEM_read_X509(f, nullptr, nullptr, nullptr)) {
    X509_free(x);
    ++certs;
  }
  std::fclose(f);
  ERR_clear_error();  // the read that ended the loop
  if (certs == 0) return Status::Usage("--ca " + ca_file + ": no PEM certificate in it");
  return Status::Ok();
}

Result<SslCtxPtr> ClientTlsContext(const std::string& ca_file, bool insecure) {
  struct Cached {
    SslCtxPtr ctx;
    int64_t ca_mtime_ns = 0;
    off_t ca_size = -1;
  };
  static std::mutex mu;
  static std::map<std::pair<std::string, bool>, Cached> cache;
  struct stat st {};
  int64_t mtime = 0;
  off_t size = -1;
  if (!ca_file.empty() && stat(ca_file.c_str(), &st) == 0) {
    mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    size = st.st_size;
  }
  std::lock_guard<std::mutex> lock(mu);
  Cached& c = cache[{ca_file, insecure}];
  if (c.ctx && c.ca_mtime_ns == mtime && c.ca_size == size) return c.ctx;
  ERR_clear_error();
  SslCtxPtr ctx = Own(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return Status::Internal("TLS: " + SslErrors("cannot make a context"));
  CommonSettings(ctx.get());
  SSL_CTX_set_alpn_protos(ctx.get(), kAlpnHttp11, sizeof(kAlpnHttp11));
  fio::KeepTlsSessions(ctx.get());
  if (insecure) {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  } else {
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
    if (ca_file.empty()) {
      if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) {
        return Status::Internal("TLS: the system's CA certificates: " +
                                SslErrors("cannot be read"));
      }
    } else {
      STRANGLER_RETURN_IF_ERROR(CheckCaFile(ca_file));
      if (SSL_CTX_load_verify_locations(ctx.get(), ca_file.c_str(), nullptr) != 1) {
        return Status::Usage("--ca " + ca_file + ": " + SslErrors("not PEM certificates"));
      }
    }
  }
  c.ctx = ctx;
  c.ca_mtime_ns = mtime;
  c.ca_size = size;
  return ctx;
}

}  // namespace strangler
