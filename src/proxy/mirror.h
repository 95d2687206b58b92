// Mirror and compare (PRODUCT.md "Migrating safely"): a copy of a matched
// request goes to the route's --mirror backend off the request path, and the
// mirror's answer is compared with the one the client got.
//
// A session hands its copy over with Submit(), which never blocks and never
// queues without bound: when the queue is full the copy is dropped and
// counted. The Mirror has a fiber worker of its own (one thread, one epoll
// loop, see fiber.h): up to kMirrorInFlight copies are sent at once, each by a
// fiber, over keep-alive connections of the backends' one pool (Instance, in
// a slot of the Mirror's own: a socket belongs to the worker that opened it);
// the rest wait in the queue. A copy is compared with the
// client's answer on that thread, and the outcome is kept until serve's tick
// takes it (TakeResults) and writes it to the store. Waiting on a slow mirror
// costs a parked fiber, not a blocked thread, so copies cost little CPU and
// no kernel context switch each. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "http/response_relay.h"
#include "metrics/live_window.h"
#include "proxy/fiber.h"
#include "proxy/read_buffer.h"
#include "safety/compare.h"
#include "safety/mirror_results.h"

namespace strangler {

class Instance;  // proxy/upstream.h

inline constexpr size_t kMirrorBodyCap = 1 << 20;  // request bodies and captured answers
inline constexpr size_t kMirrorQueueJobs = 256;
inline constexpr size_t kMirrorQueueBytes = 32u << 20;
inline constexpr size_t kMirrorPendingRecords = 1000;  // mismatches waiting for serve's tick
inline constexpr int kMirrorInFlight = 64;  // copies sent at once (fibers, connections)

// Captures an answer for comparison as a ResponseRelay reads it: status,
// Content-Type, the headers named for comparison, the body up to
// kMirrorBodyCap and the size and hash of all of it. Used for the client's
// answer (by the session) and the mirror's (by the Mirror), so both are
// captured alike.
class ResponseCapture : public RelayObserver {
 public:
  explicit ResponseCapture(const CompareOptions* opts = nullptr) : opts_(opts) {}
  // Captures for `opts` from now on, with nothing captured yet.
  void Reset(const CompareOptions* opts);
  void OnFinalHead(const MessageParser& parser, const char* base) override;
  void OnBodyPiece(const char* data, size_t len) override;

  CapturedResponse response;

 private:
  const CompareOptions* opts_;
  BodyHasher hasher_;
};

// What a route's mirror needs, compiled once per snapshot.
struct MirrorPlan {
  struct Target {
    Instance* instance = nullptr;  // the backend URL's host:port, and its pool
    std::string base_path;
  };
  std::string route;
  std::string backend;          // the mirror backend's name
  std::vector<Target> targets;  // its URLs, used in turn
  int timeout_ms = 0;
  int connect_timeout_ms = 0;
  int pool_slot = 0;  // the Mirror's own slot in each Instance's pool (see Upstreams)
  int percent_bp = 0;
  bool writes = false;
  CompareOptions compare;
  mutable std::atomic<uint32_t> next{0};
};

// One copy to send. `head` is the request line and header fields to send as
// they are (ending before the blank line; the Mirror adds Content-Length and
// X-Strangler-Mirror: 1); `target` is the request target after the mirror's
// base path, which `head`'s request line must not contain yet: the Mirror
// writes the request line itself.
struct MirrorJob {
  std::shared_ptr<const MirrorPlan> plan;
  std::string method;
  std::string target;   // path and query as the client sent them
  std::string headers;  // "Name: value\r\n" lines, without Content-Length
  std::string body;     // decoded request body (at most kMirrorBodyCap)
  std::string request_id;
  std::string primary_backend;
  int64_t ts_ms = 0;
  CapturedResponse primary;  // the answer the client got
  size_t bytes() const { return headers.size() + body.size() + primary.body.size(); }
};

class Mirror {
 public:
  explicit Mirror(int in_flight = kMirrorInFlight, size_t max_jobs = kMirrorQueueJobs,
                  size_t max_bytes = kMirrorQueueBytes);
  ~Mirror();
  Mirror(const Mirror&) = delete;
  Mirror& operator=(const Mirror&) = delete;
  // Runs `fn` about once a second on the Mirror's own thread (outside any
  // fiber), as the workers' housekeeping: the pooled connections of the
  // Mirror's pool slot are expired there.
  void SetHousekeeping(std::function<void()> fn);

  // Never blocks. False (and the copy counted as dropped) when the queue is
  // full or the Mirror is stopping.
  bool Submit(MirrorJob job);
  // Counts a copy that could not be made (e.g. a request body over the cap).
  void CountDropped(const std::string& route);

  // Moves out what was counted and found since the last call.
  void TakeResults(std::vector<std::pair<std::string, MirrorTally>>* tallies,
                   std::vector<DiffRecord>* records);
  // Everything counted since the Mirror began, by route (for GET /metrics).
  std::map<std::string, MirrorTally> Totals();
  // What was counted in the last minute (live_window.h), by route.
  std::map<std::string, MirrorTally> Recent();

  // Stops the worker: copies still queued are dropped, copies in flight are
  // cut off (both counted as dropped); a copy still connecting finishes its
  // connect first (bounded by the mirror backend's --timeout-ms).
  // Idempotent; the destructor calls it.
  void Stop();

 private:
  // The fiber body: sends queued copies one after another until none is left.
  // (Should the worker fail to map a fiber stack, that fiber never runs and
  // one of the in_flight_ slots stays taken.)
  void Drain();
  void Process(MirrorJob& job, ReadBuffer* read_buf);
  void Finish(const MirrorJob& job, const CapturedResponse* mirror, const std::string& error);
  bool Stopping();
  // Connections in use, so that Stop() can cut them off.
  bool Track(int fd);
  void Untrack(int fd);

  std::mutex stop_mu_;  // one Stop() at a time
  const int in_flight_;
  const size_t max_jobs_, max_bytes_;
  std::mutex mu_;
  std::deque<MirrorJob> queue_;  // guarded by mu_
  size_t queued_bytes_ = 0;      // guarded by mu_
  int running_ = 0;              // fibers draining the queue; guarded by mu_
  std::set<int> busy_fds_;       // guarded by mu_
  bool stopping_ = false;        // guarded by mu_
  // Counts `delta` for `route`, in the totals and the last minute; with
  // results_mu_ held.
  void Tally(const std::string& route, const MirrorTally& delta);

  std::map<std::string, MirrorTally> tallies_;  // guarded by results_mu_
  std::map<std::string, RecentSlots<MirrorTally>> recent_;  // likewise
  std::map<std::string, MirrorTally> taken_;    // what TakeResults moved out; likewise
  std::vector<DiffRecord> records_;             // guarded by results_mu_
  std::mutex results_mu_;
  std::mutex housekeeping_mu_;
  std::function<void()> housekeeping_;  // guarded by housekeeping_mu_
  std::unique_ptr<WorkerPool> pool_;
};

}  // namespace strangler
