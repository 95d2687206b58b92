// Upstream connections: one Instance per backend URL host:port, each with a
// pool of idle keep-alive sockets per worker (a socket is registered with the
// epoll of the worker that opened it, so it is reused only there), plus one
// slot for the Mirror's worker: the forwarder and the mirror share one pool. Instances
// live as long as the Upstreams that made them; snapshots point at them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "proxy/mirror.h"
#include "proxy/net.h"
#include "rules/route_table.h"
#include "rules/rules.h"
#include "safety/ramp.h"

namespace strangler {

class Instance {
 public:
  // Pooled sockets idle longer than idle_ms are closed.
  Instance(std::string host, uint16_t port, int workers, int idle_ms);
  ~Instance();

  // Call from a fiber of worker `worker`. An idle pooled socket (*reused =
  // true) unless `fresh`, else a new connection. -1 on failure with *err.
  // A pooled socket is handed out only when it is still open, has no unread
  // byte (a late body, an unsolicited answer) and was idle for at most
  // `idle_ms`; any other is closed, never handed to a request.
  int Acquire(int worker, int timeout_ms, bool fresh, bool* reused, ConnectError* err);
  // Returns a socket whose last response completed cleanly, with no byte
  // after it.
  void Release(int worker, int fd);
  // Closes worker's pooled sockets idle too long. On that worker's thread.
  void ExpireIdle(int worker);

  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }

 private:
  static constexpr size_t kMaxIdlePerWorker = 256;
  std::string host_;
  uint16_t port_;
  std::mutex mu_;  // guards the resolution only
  std::atomic<bool> resolved_{false};
  ResolvedAddr addr_;
  struct Idle {
    int fd;
    std::chrono::steady_clock::time_point since;
  };
  // Closes the sockets of `idle` that have been idle too long (the oldest
  // are at the front).
  void Expire(std::deque<Idle>* idle, std::chrono::steady_clock::time_point now);
  int idle_ms_;
  std::vector<std::deque<Idle>> idle_;  // per worker; touched only by that worker
};

// A backend as the forwarder sees it: its instances, used in turn.
struct BackendTarget {
  const Backend* backend = nullptr;
  std::vector<Instance*> instances;
  std::vector<std::string> base_paths;  // parallel to instances
  mutable std::atomic<uint32_t> next{0};
};

// Requests of one route by where they went, for ramps (serve reads and
// resets them). Outlive snapshots: one per route name, kept by Upstreams.
struct RouteCounters {
  std::atomic<int64_t> to_n{0}, to_5xx{0}, else_n{0}, else_5xx{0};
};

// What the forwarder needs of one route beyond the table.
struct RouteExtras {
  int to_backend = -1;  // index into table->backends()
  RouteCounters* counters = nullptr;
  std::shared_ptr<const MirrorPlan> mirror;  // null: no --mirror
};

// What a request needs to route and forward: the decision table plus the
// upstream targets of its backends (indexed like table->backends()) and the
// extras of its routes (indexed like table->routes()).
struct ProxySnapshot {
  std::shared_ptr<const RouteTable> table;
  std::vector<std::unique_ptr<BackendTarget>> targets;
  std::vector<RouteExtras> routes;
};

class Upstreams {
 public:
  Upstreams() = default;
  Upstreams(const Upstreams&) = delete;
  Upstreams& operator=(const Upstreams&) = delete;
  // Before the first MakeSnapshot.
  void set_workers(int workers) { workers_ = workers; }
  void set_idle_ms(int ms) { idle_ms_ = ms; }
  // Builds the forwarding view of a table, creating instances as needed.
  std::shared_ptr<const ProxySnapshot> MakeSnapshot(std::shared_ptr<const RouteTable> table);
  // Closes the pooled connections of `worker` idle longer than the limit,
  // so that they go even when no request comes to their backend any more.
  // On that worker's thread (WorkerPool housekeeping).
  void ExpireIdle(int worker);
  // Counted requests of every route since the last call (routes with none
  // are left out), and the counters reset.
  std::vector<std::pair<std::string, RampCounts>> TakeCounts();

 private:
  std::mutex mu_;
  int workers_ = 1;
  int idle_ms_ = 30000;
  std::unordered_map<std::string, std::unique_ptr<Instance>> instances_;
  std::unordered_map<std::string, std::unique_ptr<RouteCounters>> counters_;  // by route
};

}  // namespace strangler
