// Socket helpers for the data plane: addresses, listening, name resolution.
// Stateless; thread-safe. (Connecting and I/O are the fibers' own: fiber.h.)
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include "base/status.h"

namespace strangler {

struct HostPort {
  std::string host;
  uint16_t port = 0;
};
// "127.0.0.1:8080", "[::1]:8080", "localhost:0".
Result<HostPort> ParseHostPort(std::string_view text);

// Binds and listens (SO_REUSEADDR, no SO_REUSEPORT, the given backlog).
Result<int> Listen(const HostPort& hp, int backlog);
// Port a listening socket is bound to (for --listen HOST:0).
uint16_t LocalPort(int fd);

struct ResolvedAddr {
  sockaddr_storage addr{};
  socklen_t len = 0;
};
Result<ResolvedAddr> Resolve(const std::string& host, uint16_t port);

// Why a connection attempt failed (fio::Connect).
// kTls: connected, but the TLS handshake failed (a certificate refused, ...).
enum class ConnectError { kNone, kRefused, kTimeout, kUnresolved, kOther, kTls };

// True when `host` is an IPv4 or IPv6 address literal (no lookup needed).
bool IsAddressLiteral(const std::string& host);

void SetNoDelay(int fd);

// "host:port", "[::1]:port" for an IPv6 address.
std::string HostPortText(const std::string& host, uint16_t port);

// Peer address as text ("127.0.0.1", "::1"); IPv4-mapped IPv6 shown as IPv4.
std::string PeerAddress(int fd);

}  // namespace strangler
