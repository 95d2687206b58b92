// The control API (/api/v1 of the admin listener, PRODUCT.md "Operating a
// running router"): JSON over the same store calls as the CLI, so that a
// write from the API is validated, recorded in history and picked up by
// every serve exactly as one from the CLI. Each request opens the store
// itself (a store is one SQLite connection, not shared between threads).
//
// Every /api/v1 request needs `Authorization: Bearer TOKEN` with a token of
// the token file (tokens.h): none or an unknown one is 401, a `read` token
// asking to write is 403. A client address with too many failed attempts
// gets 429 for a while without its token being looked at. Writes are
// recorded with the token's name as actor and the reason from `X-Reason`
// or the body's "reason". Errors are {"error": "..."} with 400, 401, 403,
// 404, 409 or 429. Thread-safe: handlers run on the listener's threads.
#pragma once

#include <chrono>
#include <functional>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/status.h"
#include "control/tokens.h"
#include "rules/rules.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace strangler {

class ControlApi {
 public:
  // Failed attempts a client address may make in kFailureWindow; beyond
  // them it gets 429 until the window ends.
  static constexpr int kMaxFailures = 5;
  static constexpr std::chrono::seconds kFailureWindow{60};

  // Reads the token file now (a bad or missing file fails serve's start);
  // it is read again whenever it changes. `public_read`: reads need no
  // token (a token sent is still checked). An empty `token_file` without
  // `public_read` leaves the API off: every /api/v1 request is 404 and says
  // so; with it, reads are served and writes are 401 (no token exists).
  static Result<std::unique_ptr<ControlApi>> Make(std::string db_path, std::string token_file,
                                                  bool public_read = false);
  // Adds the /api/v1 handlers; this must outlive `server`'s listening.
  void Register(httplib::Server& server);
  // What GET /api/v1/live shows (live_page.h), less the ramps, which come
  // from the store; 503 until set. Cleared (nullptr) before what it reads
  // goes away.
  void SetLive(std::function<Json()> live);

 private:
  ControlApi(std::string db_path, std::string token_file, bool public_read);
  enum class Need { kRead, kWrite };
  // The caller's token, or an error answer already written to `res` (false).
  // A public read's caller has an empty name and role kRead.
  bool Authorize(const httplib::Request& req, httplib::Response& res, Need need,
                 TokenEntry* caller);
  // The token file's entries, read again when its mtime or size changed.
  Status RefreshTokens();
  bool Limited(const std::string& client, int* retry_after_s);
  void Failed(const std::string& client);

  const std::string db_path_;
  const std::string token_file_;
  const bool public_read_;
  std::mutex live_mu_;  // held while rendering, so that clearing waits for it
  std::function<Json()> live_;  // guarded by live_mu_
  std::mutex mu_;  // guards what follows
  std::vector<TokenEntry> tokens_;
  int64_t tokens_mtime_ns_ = -1;
  int64_t tokens_size_ = -1;
  struct Failures {
    int count = 0;
    std::chrono::steady_clock::time_point since;
  };
  std::map<std::string, Failures> failures_;  // by client address
};

}  // namespace strangler
