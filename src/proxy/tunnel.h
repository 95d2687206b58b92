// After a 101 (WebSocket): the client and backend connections become one
// tunnel that relays bytes both ways as they come, with no parsing.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>

#include "proxy/read_buffer.h"

namespace strangler {

// One end of the tunnel: its socket, the bytes read from it and not yet
// passed on (what followed the request or the 101 starts there), and the
// count of bytes passed on from it.
struct TunnelEnd {
  int fd = -1;
  ReadBuffer* from = nullptr;
  uint64_t* passed = nullptr;
};

// Relays until either side has closed and what it sent before is delivered
// (a WebSocket has no use for a half-open connection), either side fails,
// no byte went either way for `idle`, or `must_end(now)` says so (checked
// while waiting). Inside a fiber; closes neither socket.
void RunTunnel(TunnelEnd client, TunnelEnd backend, std::chrono::milliseconds idle,
               const std::function<bool(std::chrono::steady_clock::time_point)>& must_end);

}  // namespace strangler
