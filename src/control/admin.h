// The admin listener (`serve --admin HOST:PORT`, PRODUCT.md "Operating a
// running router"): cpp-httplib on threads of its own, never the data
// plane's. It answers GET /healthz (200 while the process runs), GET /readyz
// (200 once the data listener is bound and a snapshot loaded, 503 before
// that and while draining after SIGTERM), each a JSON object, and GET
// /metrics (Prometheus text, from the function SetMetrics gave; 503 before),
// the control API under /api/v1 (api.h) and the dashboard at GET /
// (dashboard.h).
// Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "base/status.h"
#include "control/api.h"

namespace httplib {
class Server;
}

namespace strangler {

class AdminServer {
 public:
  enum class State { kStarting, kReady, kDraining };

  // Binds HOST:PORT (port 0: one the system picks) and serves on a thread,
  // with the control API's /api/v1 when `api` is given.
  static Result<std::unique_ptr<AdminServer>> Start(const std::string& host, uint16_t port,
                                                    std::unique_ptr<ControlApi> api = nullptr);
  ~AdminServer();  // stops serving and joins
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  uint16_t port() const { return port_; }
  void SetState(State s) { state_.store(s, std::memory_order_relaxed); }
  // What GET /metrics answers; called on the listener's threads. Cleared
  // (nullptr) before what it reads goes away.
  void SetMetrics(std::function<std::string()> render);
  // What GET /api/v1/live shows (ControlApi::SetLive); likewise.
  void SetLive(std::function<Json()> live);

 private:
  AdminServer();

  std::unique_ptr<ControlApi> api_;  // before server_: outlives its handlers
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::atomic<State> state_{State::kStarting};
  std::mutex metrics_mu_;  // held while rendering, so that clearing waits for a scrape
  std::function<std::string()> metrics_;  // guarded by metrics_mu_
};

}  // namespace strangler
