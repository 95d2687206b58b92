// Small blocking-socket helpers for the data plane. Stateless; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <sys/socket.h>

#include "status.h"

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

enum class ConnectError { kNone, kRefused, kTimeout, kOther };
// Non-blocking connect bounded by timeout_ms; returns a blocking socket with
// TCP_NODELAY on, or -1 with *err set.
int ConnectWithTimeout(const ResolvedAddr& a, int timeout_ms, ConnectError* err);

void SetNoDelay(int fd);
void SetTimeouts(int fd, int recv_ms, int send_ms);
// Sends everything (MSG_NOSIGNAL). False on error or send timeout.
bool SendAll(int fd, const char* data, size_t len);
inline bool SendAll(int fd, std::string_view s) { return SendAll(fd, s.data(), s.size()); }

// Peer address as text ("127.0.0.1", "::1"); IPv4-mapped IPv6 shown as IPv4.
std::string PeerAddress(int fd);

}  // namespace strangler
