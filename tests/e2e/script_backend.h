// ScriptBackend: a backend whose every connection runs a test's own script,
// for the misbehaviours a RawBackend cannot show: an answer before the body
// was read, bytes sent after a complete answer or while a connection idles,
// a connection closed just as the next request arrives.
//
// Thread-safe: one thread per connection runs the script; requests() and the
// counters may be read while it serves. Stop() (and the destructor) ends
// every connection and joins its thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace strangler {
namespace e2e {

class ScriptBackend;

// One accepted connection, as its script sees it. Every read has a timeout
// and gives up when the backend stops.
class ScriptConn {
 public:
  int index() const { return index_; }  // 1-based, in accept order
  // Reads one request: its head, and its body unless `head_only`. Recorded
  // in the backend's requests(). False on EOF, timeout or a malformed one.
  bool ReadRequest(RecordedRequest* req, bool head_only = false, int timeout_ms = 5000);
  // After ReadRequest(head_only): reads `n` more bytes of body into *body.
  bool ReadBody(size_t n, std::string* body, int timeout_ms = 5000);
  bool Send(const std::string& bytes);
  // Waits until the peer closes (true) or timeout_ms passes (false); bytes
  // that arrive meanwhile are read and counted in discarded().
  bool WaitForPeerClose(int timeout_ms);
  // Sends FIN, then reads and drops what the peer still sends (up to
  // timeout_ms), so that an answer is not destroyed by a reset.
  void CloseGracefully(int timeout_ms = 2000);
  // Drops the connection with a reset (RST), as a backend that crashes does.
  // The fd stays reserved until the backend stops.
  void Reset();
  // Sends FIN (shutdown for writing) and nothing else: the script may go on
  // not reading.
  void ShutdownWrite();
  size_t discarded() const { return discarded_; }
  // Bytes the kernel holds for this connection that nobody has read yet
  // (FIONREAD): how much of a request the script is leaving unread.
  size_t Unread() const;
  void Sleep(int ms);
  bool stopping() const;  // the backend is stopping: reads give up

 private:
  friend class ScriptBackend;
  ScriptConn(ScriptBackend* owner, int fd, int index) : owner_(owner), fd_(fd), index_(index) {}
  bool ReadMore(int64_t deadline_ms);

  ScriptBackend* owner_;
  int fd_;
  int index_;
  std::string buf_;
  size_t discarded_ = 0;
};

class ScriptBackend {
 public:
  using Script = std::function<void(ScriptConn&)>;

  explicit ScriptBackend(Script script);
  ~ScriptBackend();
  ScriptBackend(const ScriptBackend&) = delete;
  ScriptBackend& operator=(const ScriptBackend&) = delete;

  bool Start();  // 127.0.0.1:0
  void Stop();
  uint16_t port() const { return server_.port(); }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port()); }
  bool stopping() const { return stop_.load(); }

  std::vector<RecordedRequest> requests() const;
  size_t request_count() const;
  int connections_accepted() const { return server_.accepted(); }
  int max_open_connections() const { return max_open_.load(); }
  // Connections whose script has not ended (and so not shut down) yet.
  int open_connections() const { return open_.load(); }

 private:
  friend class ScriptConn;
  void Record(const RecordedRequest& req);

  void Serve(int fd, int index);

  Script script_;
  std::atomic<bool> stop_{false};
  std::atomic<int> open_{0}, max_open_{0};
  LoopbackServer server_;
  mutable std::mutex mu_;
  std::vector<int> fds_;  // closed by Stop(), so that no fd number is reused meanwhile
  std::vector<RecordedRequest> requests_;
};

}  // namespace e2e
}  // namespace strangler
