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

}  // namespace e2e
}  // namespace strangler
