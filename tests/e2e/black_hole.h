// BlackHole: a loopback port where a connect() never completes, for tests of
// connect timeouts.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include <doctest/doctest.h>

namespace strangler {
namespace e2e {

// A listening socket that completes no handshake: its accept queue
// (backlog 0) is filled by connections nobody accepts, so the kernel drops
// further SYNs and a connect() to it waits until its caller gives up.
class BlackHole {
 public:
  BlackHole() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(listen(fd_, 0) == 0);
    socklen_t len = sizeof(a);
    REQUIRE(getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    // Fill the queue until a connect stays pending.
    for (int i = 0; i < 16; ++i) {
      int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      REQUIRE(c >= 0);
      fillers_.push_back(c);
      int r = connect(c, reinterpret_cast<sockaddr*>(&a), sizeof(a));
      if (r == 0) continue;
      REQUIRE(errno == EINPROGRESS);
      pollfd p{c, POLLOUT, 0};
      if (poll(&p, 1, 300) == 0) {
        full_ = true;
        return;
      }
    }
  }
  ~BlackHole() {
    for (int c : fillers_) close(c);
    close(fd_);
  }
  bool full() const { return full_; }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  bool full_ = false;
  std::vector<int> fillers_;
};

}  // namespace e2e
}  // namespace strangler
