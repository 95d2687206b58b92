// Proxy: the data plane. An acceptor thread hands each client connection to
// a fiber on one of a few worker threads (fiber.h); the fiber reads requests
// with llhttp, asks the current
// snapshot for a decision, forwards to the chosen backend over a pooled
// keep-alive connection, streams the answer back and records the decision.
// Snapshots are swapped atomically; a request keeps the one it started with.
// Public members are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>

#include "decisions/decision_log.h"
#include "metrics/request_metrics.h"
#include "proxy/fiber.h"
#include "proxy/tls_context.h"
#include "proxy/upstream.h"

namespace strangler {

struct ProxyOptions {
  int workers = 0;                // threads running connection fibers; 0 = one per core
  int max_connections = 4096;     // beyond this, new clients get 503
  int idle_timeout_ms = 60000;    // keep-alive idle, and a stalled request body
  int header_timeout_ms = 10000;  // a begun request head must be complete by then: 408
  int client_send_timeout_ms = 60000;
  size_t max_header_bytes = 64 * 1024;  // request head beyond this: 431
  size_t max_uri_bytes = 8 * 1024;      // request target beyond this: 414
  uint64_t max_body_bytes = 0;          // request body beyond this: 413; 0 = no limit
  bool reject_encoded_slash = false;    // %2F/%5C in the path: 400 instead of read as '/'
  int tunnel_idle_ms = 300000;          // an upgraded connection with no byte either way
  ServerTls* tls = nullptr;             // TLS on the listener (owned by the caller); null = plain
};

class Proxy {
 public:
  // `log` must outlive the Proxy.
  Proxy(ProxyOptions opts, DecisionLog* log);
  ~Proxy();
  Proxy(const Proxy&) = delete;
  Proxy& operator=(const Proxy&) = delete;

  Upstreams& upstreams() { return upstreams_; }
  // What the sessions count, a shard per worker (for GET /metrics).
  RequestMetrics& metrics() { return *metrics_; }
  // Client connections open now.
  int OpenSessions();
  Mirror& mirror() { return mirror_; }
  void SetSnapshot(std::shared_ptr<const ProxySnapshot> snap);
  std::shared_ptr<const ProxySnapshot> snapshot() const;
  // Bumped by every SetSnapshot(); lets sessions skip reloading an unchanged one.
  uint64_t snapshot_generation() const { return snapshot_gen_.load(std::memory_order_acquire); }

  // Takes ownership of a listening socket and starts accepting.
  void Start(int listen_fd);
  // Stops accepting, lets requests in flight finish (up to drain_ms), closes
  // idle connections, and returns when every session has ended (true) or
  // time is up (false: sessions still hold the Proxy; do not destroy it).
  bool Shutdown(int drain_ms);

  // Internal to the sessions.
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  // True when the listener speaks TLS.
  bool tls() const { return opts_.tls != nullptr; }
  // The listener's TLS (its counters), or null.
  const ServerTls* server_tls() const { return opts_.tls; }
  // While stopping: when open tunnels (upgraded connections) must end so
  // that the drain finishes in time.
  std::chrono::steady_clock::time_point tunnels_end_at() const {
    return std::chrono::steady_clock::time_point(
        std::chrono::steady_clock::duration(tunnels_end_at_.load(std::memory_order_relaxed)));
  }
  const ProxyOptions& options() const { return opts_; }
  DecisionLog* log() const { return log_; }
  void SessionEnded();
  // While --max-connections turns clients away, connections idle between
  // requests make room: each client turned away asks for one to close (as
  // nginx closes keep-alive connections when it runs out; RFC 9112 9.5).
  // True for the idle session that should close now.
  bool TakeIdleReclaim();
  static constexpr int kMaxReclaim = 64;  // closes asked for at once, at most

  // After a burst of clients has left (the open connections fell to half
  // their peak since the last call that trimmed, and by at least
  // kTrimAfterDrop), hands the allocator's free memory back to the system
  // (glibc's malloc_trim, all arenas). It walks the heap: call from serve's
  // thread, never a worker's. True when it trimmed.
  bool TrimAfterBurst();
  static constexpr int kTrimAfterDrop = 256;

 private:
  void AcceptLoop();
  // The TLS handshake of a new client connection (counted); false when it
  // failed (a plain HTTP request answered 400 first).
  bool ShakeHands(int fd);

  ProxyOptions opts_;
  DecisionLog* log_;
  std::unique_ptr<RequestMetrics> metrics_;  // before upstreams_, which use it
  Upstreams upstreams_;
  Mirror mirror_;
  std::shared_ptr<const ProxySnapshot> snapshot_;  // atomic_load/atomic_store only
  std::atomic<uint64_t> snapshot_gen_{1};
  int listen_fd_ = -1;
  std::unique_ptr<WorkerPool> pool_;
  std::thread acceptor_;
  std::atomic<bool> stopping_{false};
  std::atomic<std::chrono::steady_clock::rep> tunnels_end_at_{0};
  std::atomic<int> busy_answers_{0};  // 503s over --max-connections being sent
  std::atomic<int> reclaim_{0};       // idle connections asked to close (TakeIdleReclaim)
  std::mutex mu_;
  std::condition_variable cv_;
  int sessions_ = 0;       // guarded by mu_
  int peak_sessions_ = 0;  // since the last trim; guarded by mu_
};

}  // namespace strangler
