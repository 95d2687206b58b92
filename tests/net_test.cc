// proxy/net.h on real loopback sockets: the --listen address grammar, a
// listen that fails with the address in its message, the bound port, and
// the client address the decision log records (IPv4, IPv6, IPv4-mapped).
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "proxy/net.h"

namespace strangler {
namespace {

TEST_CASE("net: ParseHostPort takes HOST:PORT and [V6]:PORT, refuses the rest") {
  struct Good {
    std::string text, host;
    uint16_t port;
  };
  for (const Good& g : std::vector<Good>{{"127.0.0.1:8080", "127.0.0.1", 8080},
                                         {"localhost:0", "localhost", 0},
                                         {"[::1]:65535", "::1", 65535},
                                         {"[fe80::1%lo]:80", "fe80::1%lo", 80},
                                         {"a:b:1", "a:b", 1}}) {
    INFO(g.text);
    auto hp = ParseHostPort(g.text);
    REQUIRE(hp.ok());
    CHECK(hp->host == g.host);
    CHECK(hp->port == g.port);
  }
  for (const std::string bad : {"", "8080", ":8080", "host:", "[::1]", "[::1]8080", "[::1:80",
                                "[]:80", "host:65536", "host:123456", "host:8o", "[::1]:"}) {
    INFO("'" << bad << "'");
    auto hp = ParseHostPort(bad);
    REQUIRE_FALSE(hp.ok());
    CHECK(hp.status().message() ==
          "bad address '" + bad + "': use HOST:PORT, e.g. 127.0.0.1:8080");
  }
}

TEST_CASE("net: Listen on a port in use fails and names the address") {
  auto first = Listen({"127.0.0.1", 0}, 16);
  REQUIRE(first.ok());
  const uint16_t port = LocalPort(first.value());
  REQUIRE(port != 0);
  auto second = Listen({"127.0.0.1", port}, 16);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().message() ==
        "cannot listen on 127.0.0.1:" + std::to_string(port) + ": " + std::strerror(EADDRINUSE));
  close(first.value());
}

// Connects to a listening socket and returns the accepted end's peer address.
std::string PeerOfAccepted(int listen_fd, const sockaddr* to, socklen_t len, int family) {
  int c = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(c >= 0);
  REQUIRE(connect(c, to, len) == 0);
  int a = accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(a >= 0);
  std::string peer = PeerAddress(a);
  close(a);
  close(c);
  return peer;
}

TEST_CASE("net: the client address of IPv4, IPv6 and IPv4-mapped connections") {
  SUBCASE("IPv4") {
    auto l = Listen({"127.0.0.1", 0}, 16);
    REQUIRE(l.ok());
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(LocalPort(l.value()));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(PeerOfAccepted(l.value(), reinterpret_cast<sockaddr*>(&to), sizeof(to), AF_INET) ==
          "127.0.0.1");
    close(l.value());
  }
  // Both below need IPv6 on loopback: "[::1]:0" and the dual-stack "[::]:0".
  SUBCASE("IPv6, and the port of an IPv6 listener") {
    auto l = Listen({"::1", 0}, 16);
    REQUIRE_MESSAGE(l.ok(), l.status().message());
    const uint16_t port = LocalPort(l.value());
    REQUIRE(port != 0);
    sockaddr_in6 to{};
    to.sin6_family = AF_INET6;
    to.sin6_port = htons(port);
    to.sin6_addr = in6addr_loopback;
    CHECK(PeerOfAccepted(l.value(), reinterpret_cast<sockaddr*>(&to), sizeof(to), AF_INET6) ==
          "::1");
    close(l.value());
  }
  SUBCASE("IPv4 on a dual-stack IPv6 listener is shown as IPv4") {
    auto l = Listen({"::", 0}, 16);
    REQUIRE_MESSAGE(l.ok(), l.status().message());
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(LocalPort(l.value()));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(PeerOfAccepted(l.value(), reinterpret_cast<sockaddr*>(&to), sizeof(to), AF_INET) ==
          "127.0.0.1");
    close(l.value());
  }
  SUBCASE("no peer: not a connected socket") {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(s >= 0);
    CHECK(PeerAddress(s) == "");
    close(s);
    CHECK(LocalPort(-1) == 0);
  }
}

}  // namespace
}  // namespace strangler
