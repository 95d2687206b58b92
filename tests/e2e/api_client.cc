#include "api_client.h"

namespace strangler {
namespace e2e {

// A token made by the CLI (printed once on stdout).
std::string AddToken(Fixture& fx, const std::string& name, const std::string& role,
                     const std::string& file) {
  RunResult r = fx.MustCli({"token", "add", name, "--role", role, "--file", file});
  std::string token = r.out;
  while (!token.empty() && token.back() == '\n') token.pop_back();
  REQUIRE(token.rfind("strangler_", 0) == 0);
  return token;
}

bool Api::WaitReady() {
  return PollUntil([this] { return Call("GET", "/readyz", "").status == 200; });
}

HttpResponse Api::Call(const std::string& method, const std::string& path, const std::string& token,
                       const std::string& body, Headers headers) {
  RawClient c;
  REQUIRE(c.Connect(port));
  if (!token.empty()) headers.push_back({"Authorization", "Bearer " + token});
  if (!body.empty()) headers.push_back({"Content-Type", "application/json"});
  // cpp-httplib refuses a POST without a length (400, see admin.cc).
  if (body.empty() && method != "GET") headers.push_back({"Content-Length", "0"});
  HttpResponse r = c.Request(method, path, headers, body, kHangGuardMs);
  REQUIRE_MESSAGE(r.ok, r.error);
  return r;
}

Json Api::CallJson(const std::string& method, const std::string& path, const std::string& token,
                   int want_status, const std::string& body, Headers headers) {
  HttpResponse r = Call(method, path, token, body, std::move(headers));
  INFO(method << " " << path << " -> " << r.status << " " << r.body);
  CHECK(r.status == want_status);
  CHECK(r.Header("Content-Type") == "application/json");
  Json j = Json::parse(r.body, nullptr, false);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

// The CLI's message for a failed command ("strangler: MSG" on stderr).
std::string CliError(Fixture& fx, const std::vector<std::string>& args) {
  RunResult r = fx.Cli(args);
  REQUIRE(r.exit_code != 0);
  std::string err = r.err;
  const std::string kPrefix = "strangler: ";
  REQUIRE(err.rfind(kPrefix, 0) == 0);
  err = err.substr(kPrefix.size());
  while (!err.empty() && err.back() == '\n') err.pop_back();
  return err;
}

}  // namespace e2e
}  // namespace strangler
