// Bad backends: each bad answer costs only its own request (502, 504, or a
// cut connection once the response has begun), within the backend's
// timeout, and the router goes on serving.
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
// `body_bytes` bytes one at a time every `gap_ms`.
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

 private:
  std::string head_;
  int body_bytes_, gap_ms_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
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
  TrickleBackend trickle_body("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", 100, 50);
  TrickleBackend trickle_head("HTTP/1.1 200 OK\r\nX-Slow: ", 100, 50);
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
    int status;  // 0: the connection is cut after the response began
    int64_t within_ms;
  };
  const Case cases[] = {
      {"/garbage", 502, 2000},
      {"/bighead", 502, 2000},
      {"/cut", 0, 2000},
      {"/tbody", 0, 1500},  // 100 bytes at 50 ms each would take 5 s; the timeout is 0.8 s
      {"/thead", 504, 1500},
  };
  for (const auto& c : cases) {
    INFO("path " << c.path);
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    int64_t t0 = NowMs();
    HttpResponse r = client.Get(c.path, {}, 8000);
    int64_t took = NowMs() - t0;
    MESSAGE(c.path << ": " << (r.ok ? std::to_string(r.status) : "cut: " + r.error) << " after "
                   << took << " ms");
    if (c.status == 0) {
      CHECK_FALSE(r.ok);  // the answer began, then the connection was closed
    } else {
      REQUIRE_MESSAGE(r.ok, r.error);
      CHECK(r.status == c.status);
      CHECK(r.body.find("\"backend\"") != std::string::npos);
    }
    CHECK(took < c.within_ms);
    RawClient other;
    REQUIRE(other.Connect(fx.port()));
    HttpResponse ok = other.Get("/fine");
    REQUIRE_MESSAGE(ok.ok, ok.error);
    CHECK(ok.status == 200);
  }
  CHECK(fx.serve()->Running());
}

}  // namespace
}  // namespace e2e
}  // namespace strangler
