#include "control/admin.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <string>

#include "control/dashboard.h"

namespace strangler {
namespace {

constexpr size_t kAdminThreads = 128;
// A request body is read whole before any handler (and so before the token
// is looked at): bounded, so that nobody without a token can make serve hold
// more than this per connection. Rule files beyond it go through the CLI.
constexpr size_t kAdminMaxBodyBytes = 4 * 1024 * 1024;
constexpr time_t kAdminReadTimeoutS = 5;

void JsonAnswer(httplib::Response& res, int status, const std::string& body) {
  res.status = status;
  res.set_content(body + "\n", "application/json");
}

}  // namespace

AdminServer::AdminServer() : server_(std::make_unique<httplib::Server>()) {}

void AdminServer::SetMetrics(std::function<std::string()> render) {
  std::lock_guard<std::mutex> lock(metrics_mu_);
  metrics_ = std::move(render);
}

void AdminServer::SetLive(std::function<Json()> live) {
  if (api_) api_->SetLive(std::move(live));
}

AdminServer::~AdminServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

Result<std::unique_ptr<AdminServer>> AdminServer::Start(const std::string& host, uint16_t port,
                                                        std::unique_ptr<ControlApi> api) {
  std::unique_ptr<AdminServer> admin(new AdminServer());
  httplib::Server& s = *admin->server_;
  AdminServer* self = admin.get();
  s.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    JsonAnswer(res, 200, R"({"status":"ok"})");
  });
  s.Get("/readyz", [self](const httplib::Request&, httplib::Response& res) {
    switch (self->state_.load(std::memory_order_relaxed)) {
      case State::kReady:
        return JsonAnswer(res, 200, R"({"status":"ready"})");
      case State::kStarting:
        return JsonAnswer(res, 503, R"({"status":"starting"})");
      case State::kDraining:
        return JsonAnswer(res, 503, R"({"status":"draining"})");
    }
  });
  // The dashboard: the page itself holds no data (it asks /api/v1 for it,
  // with the token its user gives), so it needs none to load.
  s.Get("/", [](const httplib::Request&, httplib::Response& res) {
    res.set_header("Content-Security-Policy", DashboardPolicy());
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    res.set_header("Cache-Control", "no-store");
    const std::string_view page = DashboardPage();
    res.set_content(page.data(), page.size(), "text/html; charset=utf-8");
  });
  s.Get("/metrics", [self](const httplib::Request&, httplib::Response& res) {
    std::lock_guard<std::mutex> lock(self->metrics_mu_);
    if (!self->metrics_) return JsonAnswer(res, 503, R"({"status":"starting"})");
    res.set_content(self->metrics_(), "text/plain; version=0.0.4; charset=utf-8");
  });
  // Each open connection holds one of the listener's threads while it is
  // read: more threads than cpp-httplib's default (8 here) and a short read
  // timeout, so that a few silent connections cannot keep /healthz from a
  // load balancer's probe (the admin listener belongs on loopback or a
  // private address all the same).
  s.new_task_queue = [] { return new httplib::ThreadPool(kAdminThreads); };
  s.set_read_timeout(kAdminReadTimeoutS, 0);
  s.set_payload_max_length(kAdminMaxBodyBytes);
  s.set_keep_alive_timeout(kAdminReadTimeoutS);
  // A path no handler took (a handler's own 404 keeps its message), and a
  // request cpp-httplib refused before any handler: a POST, PUT or PATCH
  // without Content-Length is one (curl -X POST sends none; -d '' does).
  s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
    if (!res.body.empty()) return;
    if (res.status == 404) JsonAnswer(res, 404, R"({"error":"not found"})");
    if (res.status == 413) {
      JsonAnswer(res, 413, R"J({"error":"the body is over 4 MiB, the admin listener's limit"})J");
    }
    if (res.status == 400) {
    JsonAnswer(
        res, 400,
        R"J({"error":"bad request (a header over the size limit, or a POST, PUT or PATCH without a Content-Length: send 0 for none)"})J");
    }
});
// A handler that threw (a bug): JSON like every other answer, and none of
// cpp-httplib's EXCEPTION_WHAT header, which would echo the exception.
s.set_exception_handler([](const httplib::Request& req, httplib::Response& res,
                           std::exception_ptr ep) {
  std::string what = "unknown exception";
  try {
    if (ep) std::rethrow_exception(ep);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  spdlog::error("admin: {} {} failed: {}", req.method, req.path, what);
  JsonAnswer(res, 500, R"J({"error":"internal error (a bug: the serve's log says more)"})J");
});
if (api) {
  admin->api_ = std::move(api);
  admin->api_->Register(s);
}
int bound = port == 0 ? s.bind_to_any_port(host) : (s.bind_to_port(host, port) ? port : -1);
if (bound <= 0) {
  return Status::Io("cannot listen for --admin on " + host + ":" + std::to_string(port));
}
admin->port_ = static_cast<uint16_t>(bound);
admin->thread_ = std::thread([&s] { s.listen_after_bind(); });
return admin;
}

}  // namespace strangler
