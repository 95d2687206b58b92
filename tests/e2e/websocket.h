// WebSocket (RFC 6455) helpers for the e2e suite: an echo backend and a
// client, written from the RFC with no library but OpenSSL's SHA-1 and base64,
// so a test sees every byte a proxy in the middle passes, changes or drops.
//
// Both ends frame byte for byte: 7-, 16- and 64-bit payload lengths, masking
// (client to server only), fragmentation, ping/pong and the close handshake.
// Not supported: extensions (permessage-deflate is neither offered nor
// accepted), subprotocols, UTF-8 checks of text payloads.
//
// Every socket read and write has a deadline (or, in the backend, a stop
// check); Stop() joins every backend thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace strangler {
namespace e2e {

// Opcodes of RFC 6455 5.2. Any 4-bit value may be cast in, to send reserved ones.
enum class WsOpcode : uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};
enum class WsFin { kFinal, kMore };  // the FIN bit: last frame of a message, or not
enum class WsMask { kMasked, kUnmasked };

// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")): the
// Sec-WebSocket-Accept a server owes for this Sec-WebSocket-Key.
std::string WsAcceptKey(const std::string& key);
// One frame as it goes on the wire, with the shortest length form. With a
// `mask` key the payload is masked (as every client frame must be).
std::string WsEncodeFrame(WsOpcode op, const std::string& payload, WsFin fin,
                          std::optional<uint32_t> mask);

// --- WsEchoBackend -----------------------------------------------------------

// How an upgraded connection ended, as the backend saw it.
enum class WsEnd {
  kOpen,            // not ended yet
  kCloseHandshake,  // the client sent close; the backend answered close and shut down
  kProtocolError,   // the backend sent close 1002 (or 1009: message too big) and shut down
  kPeerGone,        // EOF or reset with no close frame
  kStopped,         // Stop() ended it
};

// One upgraded connection (one 101 answered).
struct WsSession {
  int connection = 0;  // 1-based TCP connection index, as RecordedRequest::connection
  WsEnd end = WsEnd::kOpen;
  uint16_t received_close = 0;  // code of the client's close frame; 1005: no code; 0: none
  uint16_t sent_close = 0;      // code of the backend's close frame; 0: none sent
  uint64_t bytes_in = 0;        // frame bytes after the handshake (the HTTP head excluded)
  uint64_t bytes_out = 0;       // frame bytes sent after the 101
  int frames_in = 0;
  int messages_echoed = 0;
};

// A WebSocket echo server on 127.0.0.1:0, one thread per connection. A GET
// with `Upgrade: websocket` gets 101 (Upgrade, Connection, the right
// Sec-WebSocket-Accept, X-Backend: NAME) or, when the handshake is invalid,
// 400; any other request gets a keep-alive 200 with X-Backend: NAME and body
// NAME, so it also stands as a plain backend. After the 101 it echoes each
// text/binary message (reassembled, up to 64 MiB) as one unmasked frame,
// answers ping with pong, answers close with close carrying the same code
// and shuts the connection down; an unmasked or malformed client frame gets
// close 1002. Counters are updated before the bytes they describe are sent,
// so a client that has read an answer sees it counted.
// Thread-safe: setters and accessors may be called while it serves.
class WsEchoBackend {
 public:
  explicit WsEchoBackend(std::string name = "ws");
  ~WsEchoBackend();  // Stop()
  WsEchoBackend(const WsEchoBackend&) = delete;
  WsEchoBackend& operator=(const WsEchoBackend&) = delete;

  bool Start();
  // Closes every connection (sessions end kStopped) and joins every thread.
  void Stop();
  uint16_t port() const { return server_.port(); }
  std::string url() const;
  std::string name() const;
  void set_name(std::string name);
  // 0 (the default): answer valid upgrades 101. Otherwise answer them with
  // this status (e.g. 403), X-Backend: NAME and a short body; the connection
  // stays HTTP/1.1 keep-alive.
  void set_refuse_upgrades(int status) { refuse_status_ = status; }

  // Every HTTP request, upgrade requests included, in arrival order; `raw`
  // holds its exact bytes.
  std::vector<RecordedRequest> requests() const;
  // Only the requests with `Upgrade: websocket` (answered 101 or not).
  std::vector<RecordedRequest> upgrade_requests() const;
  std::vector<WsSession> sessions() const;  // one per 101, in order
  int handshakes() const;                   // 101s sent
  int messages_echoed() const;
  int open_connections() const;  // sessions not ended
  int connections_accepted() const { return server_.accepted(); }
  uint64_t bytes_received() const { return bytes_received_.load(); }  // all connections
  uint64_t bytes_sent() const { return bytes_sent_.load(); }
  bool WaitForHandshakes(int n, int timeout_ms) const;
  // True once at least n sessions have ended (the backend has shut its side).
  bool WaitForClosed(int n, int timeout_ms) const;

 private:
  class Conn;
  void Serve(int fd, int index);
  WsEnd RunSession(Conn& c, size_t session);
  void EndSession(size_t session, WsEnd end);

  std::atomic<bool> stop_{false};
  std::atomic<int> refuse_status_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::atomic<uint64_t> bytes_sent_{0};
  LoopbackServer server_;

  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  std::string name_;                       // guarded by mu_
  std::vector<RecordedRequest> requests_;  // guarded by mu_
  std::vector<WsSession> sessions_;        // guarded by mu_
  int messages_echoed_ = 0;                // guarded by mu_
};

// --- WsClient ----------------------------------------------------------------

// One message (or control frame) read by WsClient.
struct WsMessage {
  bool ok = false;
  std::string error;                  // why not, when !ok
  WsOpcode opcode = WsOpcode::kText;  // kText, kBinary, kClose or kPong
  std::string payload;                // for kClose: the reason, after the code
  uint16_t close_code = 0;            // kClose only; 1005 when the frame had no code
  int frames = 0;                     // frames it arrived in
};

// A WebSocket client connection to 127.0.0.1:port. Key and masks come from a
// seeded generator. Pings from the server are answered while reading.
// Byte counts cover everything on the wire, the handshake included.
// Not thread-safe; one per thread.
class WsClient {
 public:
  WsClient();  // seeded from std::random_device
  explicit WsClient(uint64_t seed);
  ~WsClient();
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  bool Connect(uint16_t port, int timeout_ms = 3000);
  // Sends `GET target HTTP/1.1` with Host, Upgrade: websocket, Connection:
  // Upgrade, Sec-WebSocket-Key (16 random bytes) and Sec-WebSocket-Version:
  // 13, each unless `headers` has it, then `headers` in order. Reads the
  // response head (and a non-101's Content-Length body). True when the answer
  // is 101 with Upgrade, Connection and the right Sec-WebSocket-Accept.
  bool Handshake(const std::string& target = "/", const Headers& headers = {},
                 int timeout_ms = 5000);
  // Connect() then Handshake().
  bool Open(uint16_t port, const std::string& target = "/", const Headers& headers = {},
            int timeout_ms = 5000);
  // Drops the TCP connection with no close frame.
  void Close();
  bool connected() const { return fd_ >= 0; }
  const std::string& error() const { return error_; }  // why the last call failed

  int status() const { return response_.status; }
  const HttpResponse& response() const { return response_; }  // the handshake answer
  const std::string& key() const { return key_; }             // Sec-WebSocket-Key sent
  bool accept_ok() const { return accept_ok_; }

  // Masked frames, a fresh mask each. fragment_size > 0: split into frames of
  // at most that many payload bytes.
  bool SendText(const std::string& payload, size_t fragment_size = 0);
  bool SendBinary(const std::string& payload, size_t fragment_size = 0);
  bool SendPing(const std::string& payload = "");
  // code 0: a close frame with an empty payload.
  bool SendClose(uint16_t code = 1000, const std::string& reason = "");
  bool SendFrame(WsOpcode op, const std::string& payload, WsFin fin = WsFin::kFinal,
                 WsMask mask = WsMask::kMasked);
  bool SendRaw(const std::string& bytes);

  // The next text/binary message (reassembled), pong or close. A masked or
  // malformed server frame is an error.
  WsMessage ReceiveMessage(int timeout_ms = 5000);
  // Reads until a close frame, discarding messages.
  WsMessage ReadClose(int timeout_ms = 5000);
  // True when the peer closes the TCP connection within timeout_ms (bytes
  // that arrive first are counted and discarded).
  bool WaitForClosed(int timeout_ms = 5000);

  uint64_t bytes_sent() const { return bytes_sent_; }
  uint64_t bytes_received() const { return bytes_received_; }
  uint64_t handshake_bytes_sent() const { return handshake_bytes_sent_; }
  uint64_t handshake_bytes_received() const { return handshake_bytes_received_; }
  int pings_answered() const { return pings_answered_; }

 private:
  bool Fill(int64_t deadline_ms);
  bool SendMessage(WsOpcode op, const std::string& payload, size_t fragment_size);

  std::mt19937_64 rng_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::string buf_;
  std::string error_;
  std::string key_;
  HttpResponse response_;
  bool accept_ok_ = false;
  // A fragmented message being reassembled across ReceiveMessage() calls.
  std::optional<WsOpcode> partial_op_;
  std::string partial_;
  int partial_frames_ = 0;
  uint64_t bytes_sent_ = 0;
  uint64_t bytes_received_ = 0;
  uint64_t handshake_bytes_sent_ = 0;
  uint64_t handshake_bytes_received_ = 0;
  int pings_answered_ = 0;
};

}  // namespace e2e
}  // namespace strangler
