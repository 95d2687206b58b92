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
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "metrics/request_metrics.h"
#include "proxy/fiber.h"
#include "proxy/health_probe.h"
#include "proxy/instance_health.h"
#include "proxy/mirror.h"
#include "proxy/net.h"
#include "proxy/tls_context.h"
#include "proxy/transport.h"
#include "rules/route_table.h"
#include "rules/rules.h"
#include "safety/backend_load.h"
#include "safety/ramp.h"

namespace strangler {

class Instance {
 public:
  // Pooled sockets idle longer than idle_ms are closed. With tls.on, every
  // connection speaks TLS (sessions resumed across connections).
  Instance(std::string host, uint16_t port, int workers, int idle_ms, TlsClientSettings tls = {});
  ~Instance();

  // How a request gets a connection (Take, Queue).
  enum class Got {
    kPooled,  // *fd: an idle pooled connection, checked open and clean
    kSlot,    // room under the cap: the caller connects (Connect)
    kFull,    // at the cap (Take), or the wait in the queue ended (Queue)
    kEjected, // (Queue) the instance was ejected while the request waited
  };

  // The cap on connections (--max-conns; 0: none). Raising or removing it
  // lets waiting requests in.
  void SetMaxConns(int max);
  int max_conns() const { return max_conns_.load(std::memory_order_relaxed); }

  // A connection is reused only once it has been quiet this long since its
  // last answer ended (--reuse-quiet-ms; 0: at once). A backend that writes
  // more than it was asked for (a second answer, a longer body than it
  // announced) tends to do it at once; a connection handed on sooner would
  // carry those bytes to the next client as the answer to its request.
  void SetSettle(std::chrono::milliseconds settle);
  std::chrono::microseconds settle() const {
    return std::chrono::microseconds(settle_us_.load(std::memory_order_relaxed));
  }

  // Call from a fiber of worker `worker`. An idle pooled connection of this
  // worker (unless `fresh`) that has settled (settle()), else a slot when
  // under the cap and nobody is queued before this request; at the cap, a
  // pooled connection once it has settled; kFull otherwise. A pooled socket
  // is handed out only when it is still open, has no unread byte (a late
  // body, an unsolicited answer) and was idle for at most `idle_ms`; any
  // other is closed, never handed to a request. At the cap, a connection
  // idle in another worker's pool is moved to this worker.
  Got Take(int worker, bool fresh, int* fd);
  // After Take said kFull: waits in this instance's FIFO queue, the fiber
  // parked, for at most timeout_ms. A connection released meanwhile is
  // handed over once it has settled (kPooled), or a slot freed by a closed
  // one (kSlot); kFull when the time ran out.
  Got Queue(int worker, int timeout_ms, int* fd);
  // With a slot: a new connection (the TLS handshake done, for https), or
  // -1 with *err (the slot is given back) and, when given, *why in words
  // for kTls.
  int Connect(int timeout_ms, ConnectError* err, std::string* why = nullptr);
  bool tls() const { return tls_.on; }

  // Returns a socket whose last response completed cleanly, with no byte
  // after it: to the first queued request, else to the pool.
  void Release(int worker, int fd);
  // Closes a connection of this instance; its slot goes to the first
  // queued request.
  void Discard(int fd);
  // Closes worker's pooled sockets idle too long, and those the backend
  // closed or wrote to while they idled. On that worker's thread.
  void ExpireIdle(int worker);
  // A request refused at once because its backend's queue was full.
  void CountQueueFull() { queue_503_.fetch_add(1, std::memory_order_relaxed); }

  int64_t queued() const { return queued_.load(std::memory_order_relaxed); }
  InstanceLoad Load() const;  // backend name left empty
  // Whether it takes requests (passive ejection); answers are reported to
  // it, failures through ReportFailure.
  InstanceHealth& health() { return health_; }
  // A failure (`what`: how). When it ejects the instance, the requests
  // queued for it are woken to go elsewhere (Queue says kEjected).
  void ReportFailure(const char* what);
  // Wakes the requests queued here to pick again (Queue says kEjected): the
  // instance left rotation (ejected, or down by its checks).
  void SendWaitersElsewhere();
  const InstanceHealth& health() const { return health_; }
  // Active checks (--health-path; "" for none).
  void ConfigureChecks(const std::string& path, int every_ms, int timeout_ms) {
    probe_.Configure(path, every_ms, timeout_ms);
  }
  // Looks the host name up again when due: 30 s after a success, 5 s after
  // a failure (the last address is kept meanwhile). Blocks in the
  // resolver: call from Upstreams' resolver thread only.
  void RefreshAddress(std::chrono::steady_clock::time_point now);
  // Why the host has no address yet ("" when it has one).
  std::string ResolveError() const;
  const std::string& host() const { return host_; }
  uint16_t port() const { return port_; }

 private:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxIdlePerWorker = 256;
  struct Idle {
    int fd;
    Clock::time_point since;  // its last answer ended
    int poll_set;             // of the worker it is registered with
  };
  // A request parked in the queue. Lives on its fiber's stack; touched by
  // others only under mu_.
  struct Waiter {
    int worker = 0;
    fio::Parking parking;
    bool granted = false;
    int fd = -1;         // granted a released connection (else a slot)
    bool moved = false;  // that connection was registered with another worker
    bool ejected = false;  // woken without a grant: the instance was ejected
    Clock::time_point released;
  };
  // Closes the sockets of `idle` that have been idle too long (the oldest
  // are at the front). Under mu_.
  void ExpireLocked(std::deque<Idle>* idle, Clock::time_point now);
  // One slot fewer in use (a connection closed or never made): it goes to
  // the first queued request when the cap allows. Under mu_; the parking
  // to end (after unlocking) in *wake.
  void FreeSlotLocked(fio::Parking* wake);
  // Pops the first queued request, granted a slot (fd < 0) or the
  // connection `fd` of worker `worker`. Under mu_; the parking to end once
  // unlocked.
  fio::Parking GrantFirstLocked(int worker, int fd);
  // Take under mu_. kPooled with *released: the time its answer ended, for
  // Settled (after unlocking).
  Got TakeLocked(int worker, bool fresh, int* fd, Clock::time_point* released);
  // *fd, pooled, once it has been quiet until released + settle(): kPooled,
  // or kSlot when bytes came (closed; the caller connects in its slot).
  Got Settled(Clock::time_point released, int* fd);
  // While more connections are open than the cap allows, idle ones are
  // closed (the cap was lowered). Under mu_; on any thread.
  void CloseOverCapLocked();
  bool UnderCapLocked() const {
    int max = max_conns();
    return max == 0 || open_ < max;
  }

  std::string host_;
  uint16_t port_;
  int idle_ms_;
  const TlsClientSettings tls_;
  const std::shared_ptr<TlsSessionSlot> sessions_;  // https: the newest session, for resumption
  InstanceHealth health_;
  HealthProbe probe_;  // after health_, which it reports to
  std::atomic<int> max_conns_{0};
  std::atomic<int64_t> settle_us_{1000};
  // The address, resolved off the request path (RefreshAddress).
  mutable std::mutex addr_mu_;  // guards what follows
  bool has_addr_ = false;
  ResolvedAddr addr_;
  std::string resolve_error_;  // the last lookup's failure ("" after a success)
  Clock::time_point next_resolve_{};  // due at once
  bool literal_ = false;  // an address literal: never looked up again

  mutable std::mutex mu_;  // guards what follows
  std::vector<std::deque<Idle>> idle_;  // per worker (and the Mirror's slot)
  int open_ = 0;    // slots taken: connecting, in use or idle
  int idle_n_ = 0;  // of those, idle in a pool
  std::deque<Waiter*> queue_;
  std::atomic<int64_t> queued_{0};  // queue_.size(), readable without mu_
  std::atomic<int64_t> queue_waits_{0}, queue_503_{0}, connect_failures_{0};
};

// A backend as the forwarder sees it: its instances, used in turn.
struct BackendTarget {
  const Backend* backend = nullptr;
  uint32_t metric_id = 0;  // the backend's name in RequestMetrics::backends()
  std::vector<Instance*> instances;
  std::vector<std::string> base_paths;  // parallel to instances
  mutable std::atomic<uint32_t> next{0};

  // The instance for request number `turn`: the instances in rotation
  // take turns evenly (an instance out of rotation does not hand its turns
  // to its neighbour); turn % n, with *all_down, when every instance is out
  // (panic mode: they take requests in turn anyway). `skip` is passed over
  // unless it is the only one in rotation.
  size_t Pick(uint32_t turn, const Instance* skip, bool* all_down) const;
};

// Requests of one route by where they went, for ramps (serve reads and
// resets them). Outlive snapshots: one per route name, kept by Upstreams.
struct RouteCounters {
  std::atomic<int64_t> to_n{0}, to_5xx{0}, else_n{0}, else_5xx{0};
};

// What the forwarder needs of one route beyond the table.
struct RouteExtras {
  int to_backend = -1;  // index into table->backends()
  uint32_t metric_id = 0;  // the route's name in RequestMetrics::routes()
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
  ~Upstreams();  // stops the resolver thread before the instances go
  Upstreams(const Upstreams&) = delete;
  Upstreams& operator=(const Upstreams&) = delete;
  // Before the first MakeSnapshot.
  void set_workers(int workers) { workers_ = workers; }
  void set_idle_ms(int ms) { idle_ms_ = ms; }
  // Where snapshots take their routes' and backends' metric ids (none: 0).
  // Must outlive the Upstreams.
  void set_metrics(RequestMetrics* metrics) { metrics_ = metrics; }
  // Builds the forwarding view of a table, creating instances as needed.
  std::shared_ptr<const ProxySnapshot> MakeSnapshot(std::shared_ptr<const RouteTable> table);
  // Closes the pooled connections of `worker` idle longer than the limit,
  // so that they go even when no request comes to their backend any more.
  // On that worker's thread (WorkerPool housekeeping).
  void ExpireIdle(int worker);
  // The load of every instance of `snap`, per backend that lists it.
  static std::vector<InstanceLoad> Loads(const ProxySnapshot& snap);
  // Logs instances ejected or back since the last call (serve's thread).
  void HealthTick();
  // Counted requests of every route since the last call (routes with none
  // are left out), and the counters reset.
  std::vector<std::pair<std::string, RampCounts>> TakeCounts();

 private:
  std::mutex mu_;
  int workers_ = 1;
  int idle_ms_ = 30000;
  RequestMetrics* metrics_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<Instance>> instances_;
  std::unordered_map<std::string, std::unique_ptr<RouteCounters>> counters_;  // by route
  // Looks host names up off the request path (Instance::RefreshAddress),
  // started with the first snapshot that names one.
  void ResolveLoop();
  std::condition_variable resolve_cv_;  // with mu_
  bool stop_resolver_ = false;          // guarded by mu_
  std::thread resolver_;
};

}  // namespace strangler
