// Byte-level HTTP/1.1 helpers shared by RawBackend and RawClient. Internal
// to the e2e harness; stateless and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <atomic>
#include <sys/types.h>
#include <optional>
#include <string>
#include <vector>

#include "harness.h"

namespace strangler {
namespace e2e {

std::string Lower(std::string s);
std::string Trim(const std::string& s);
// Splits a head (start line + header lines, no final CRLFCRLF) into its
// start line, raw header lines and parsed headers (values OWS-trimmed).
void SplitHead(const std::string& head, std::string* start_line, std::vector<std::string>* lines,
               Headers* headers);
std::optional<std::string> FindHeader(const Headers& h, const std::string& name);
int CountHeader(const Headers& h, const std::string& name);
bool IsChunked(const Headers& h);
// A request's head (request line + header lines, no final CRLFCRLF) as the
// test backends record it: line, method, target, version, headers, chunked.
RecordedRequest RequestFromHead(std::string head, int connection);
// Its Content-Length (0 when chunked or absent).
size_t ContentLengthOf(const RecordedRequest& req);
// Parses a chunked body starting at buf[pos]. Returns the bytes it spans
// (> 0), 0 when incomplete, -1 when malformed.
long ParseChunked(const std::string& buf, size_t pos, std::string* body);
// Writes all bytes (MSG_NOSIGNAL); false when the peer is gone.
bool SendAll(int fd, const std::string& bytes);
void SetNoDelay(int fd);
// A connected, close-on-exec, TCP_NODELAY socket to 127.0.0.1:port, or -1.
int ConnectLoopback(uint16_t port);
// The same, retried every 10 ms until timeout_ms passes.
int ConnectLoopbackWithin(uint16_t port, int timeout_ms);
// A socket listening on 127.0.0.1:0 (backlog 1024); *port is its port. -1
// on failure.
int ListenLoopback(uint16_t* port);
// Waits (polling every 50 ms, so that `stop` is seen) for bytes on fd and
// appends what one recv gives to *buf. > 0 bytes read, 0 at EOF, -1 on an
// error, on stop or once deadline_ms (NowMs() time; -1 = none) passes.
ssize_t RecvMore(int fd, std::string* buf, const std::atomic<bool>& stop, int64_t deadline_ms);

}  // namespace e2e
}  // namespace strangler
