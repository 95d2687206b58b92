// Bad backends: each bad answer costs only its own request (502, 504, or a
// cut connection once the response has begun), ended by the backend's
// timeout when the backend would take longer, and the router goes on serving.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>

#include <doctest/doctest.h>

#include "harness.h"

namespace strangler {
namespace e2e {
namespace {

// A backend that answers each connection's first request with `head`, then
// `body_bytes` bytes one at a time every `gap_ms`. sent() counts the bytes
// after the head that went out.
class TrickleBackend {
 public:
  TrickleBackend(std::string head, int body_bytes, int gap_ms)
      : head_(std::move(head)), body_bytes_(body_bytes), gap_ms_(gap_ms) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    listen(fd_, 16);
    socklen_t len = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        int c = accept(fd_, nullptr, nullptr);
        if (c < 0) break;
        char buf[4096];
        ssize_t n = recv(c, buf, sizeof(buf), 0);
        (void)n;
        send(c, head_.data(), head_.size(), MSG_NOSIGNAL);
        for (int i = 0; i < body_bytes_ && !stop_; ++i) {
          usleep(static_cast<useconds_t>(gap_ms_) * 1000);
          if (send(c, "x", 1, MSG_NOSIGNAL) != 1) break;
          ++sent_;
        }
        close(c);
      }
    });
  }
  ~TrickleBackend() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    close(fd_);
    thread_.join();
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int sent() const { return sent_.load(); }
  int body_bytes() const { return body_bytes_; }

 private:
  std::string head_;
  int body_bytes_, gap_ms_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> sent_{0};
  std::thread thread_;
};

TEST_CASE("e2e: bad backends cost only their own request") {
  Fixture fx;
  RawBackend good("good"), garbage("garbage"), bighead("bighead"), cut("cut");
  REQUIRE(good.Start());
  REQUIRE(garbage.Start());
  REQUIRE(bighead.Start());
  REQUIRE(cut.Start());
  garbage.set_response("SMTP ready\r\n\r\n");
  bighead.set_response("HTTP/1.1 200 OK\r\nX-Huge: " + std::string(512 * 1024, 'h') +
                       "\r\nContent-Length: 0\r\n\r\n");
  cut.set_response("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nonly part of it");
  cut.set_close_after_response(true);
  // Each would take 1000 x 50 ms = 50 s to finish: only the router's 0.8 s
  // timeout can end these requests while the backend is still sending.
  TrickleBackend trickle_body("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", 1000, 50);
  TrickleBackend trickle_head("HTTP/1.1 200 OK\r\nX-Slow: ", 1000, 50);
  fx.AddBackend("good", good.url());
  fx.AddBackend("garbage", garbage.url());
  fx.AddBackend("bighead", bighead.url());
  fx.AddBackend("cut", cut.url());
  fx.AddBackend("tbody", trickle_body.url(), {"--timeout-ms", "800"});
  fx.AddBackend("thead", trickle_head.url(), {"--timeout-ms", "800"});
  for (const char* b : {"garbage", "bighead", "cut", "tbody", "thead"}) {
    fx.AddRoute(std::string("r-") + b, {"--to", b, "--path", std::string("/") + b});
  }
  REQUIRE(fx.StartServe());

  struct Case {
    std::string path;
    int status;               // 0: the connection is cut after the response began
    TrickleBackend* trickle;  // the backend is still sending when the request ends
  };
  int fine = 0;  // requests the default backend answered
  const Case cases[] = {
      {"/garbage", 502, nullptr},   {"/bighead", 502, nullptr},     {"/cut", 0, nullptr},
      {"/tbody", 0, &trickle_body}, {"/thead", 504, &trickle_head},
  };
  for (const auto& c : cases) {
    INFO("path " << c.path);
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    int64_t t0 = NowMs();
    // The client's own cap only ends a hang; it is below the trickles' 50 s.
    HttpResponse r = client.Get(c.path, {}, kHangGuardMs / 2);
    int64_t took = NowMs() - t0;
    MESSAGE(c.path << ": " << (r.ok ? std::to_string(r.status) : "cut: " + r.error) << " after "
                   << took << " ms"
                   << (c.trickle
                           ? ", " + std::to_string(c.trickle->sent()) + " of " +
                                 std::to_string(c.trickle->body_bytes()) + " trickled bytes sent"
                           : ""));
    if (c.status == 0) {
      CHECK_FALSE(r.ok);  // the answer began, then the router closed the connection
      CHECK(r.error.find("timeout") == std::string::npos);  // not the client's own cap
    } else {
      REQUIRE_MESSAGE(r.ok, r.error);
      CHECK(r.status == c.status);
      CHECK(r.body.find("\"backend\"") != std::string::npos);
    }
    // The router's timeout ended it, not the backend's last byte.
    if (c.trickle) CHECK(c.trickle->sent() < c.trickle->body_bytes());
    RawClient other;
    REQUIRE(other.Connect(fx.port()));
    HttpResponse ok = other.Get("/fine");
    REQUIRE_MESSAGE(ok.ok, ok.error);
    CHECK(ok.status == 200);
    CHECK(ok.Header("X-Backend") == std::optional<std::string>("good"));
    // The bad answer came from the bad backend: the default one got only
    // the requests meant for it.
    CHECK(good.request_count() == static_cast<size_t>(++fine));
  }
  // Each bad backend got its one request (a trickle answers whatever it is sent).
  for (const RawBackend* be : {&garbage, &bighead, &cut}) {
    INFO("backend " << be->name());
    CHECK(be->request_count() == 1);
  }
  CHECK(fx.serve()->Running());
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
