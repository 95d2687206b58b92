#include "control/dashboard.h"

#include <openssl/evp.h>

namespace strangler {
namespace {

// 'sha256-BASE64' of `text`, as a CSP source.
std::string HashSource(std::string_view text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  int n = EVP_EncodeBlock(b64, digest, static_cast<int>(len));
  return "'sha256-" + std::string(reinterpret_cast<char*>(b64), static_cast<size_t>(n)) + "'";
}

// The hash sources of every <tag>...</tag> body in `page` (no attributes
// on the opening tag are expected: the page is ours).
std::string HashesOf(std::string_view page, std::string_view tag) {
  const std::string open = "<" + std::string(tag) + ">", close = "</" + std::string(tag) + ">";
  std::string sources;
  for (size_t at = page.find(open); at != std::string_view::npos; at = page.find(open, at)) {
    size_t begin = at + open.size();
    size_t end = page.find(close, begin);
    if (end == std::string_view::npos) break;
    sources += " " + HashSource(page.substr(begin, end - begin));
    at = end;
  }
  return sources;
}

}  // namespace

const std::string& DashboardPolicy() {
  static const std::string kPolicy =
      "default-src 'none'; script-src" + HashesOf(DashboardPage(), "script") + "; style-src" +
      HashesOf(DashboardPage(), "style") +
      "; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
      "frame-ancestors 'none'";
  return kPolicy;
}

}  // namespace strangler
