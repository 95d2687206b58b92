// How loaded one backend instance is, as one serve process sees it: its
// upstream connections against the cap and the requests queued for them.
// Counted by the forwarder, written to the store by serve about once a
// second, shown by `backend show` (another process).
#pragma once

#include <cstdint>
#include <string>

namespace strangler {

struct InstanceLoad {
  std::string backend;   // the backend's name
  std::string instance;  // host:port ("[::1]:80" for IPv6)
  int max_conns = 0;     // 0: no cap
  // Now:
  int64_t open = 0;      // connections open (idle + in use)
  int64_t idle = 0;      // pooled, waiting for a request
  int64_t in_use = 0;    // carrying a request (or a WebSocket tunnel)
  int64_t queued = 0;    // requests waiting for a connection
  // Since serve started:
  int64_t queue_waits = 0;  // requests that waited in the queue
  int64_t queue_503 = 0;    // of those and others: 503 because the wait ended or the queue was full
  int64_t connect_failures = 0;  // refused, timed out or unreachable connects
  // Health (passive ejection), now:
  bool ejected = false;          // out of rotation
  int failures = 0;              // consecutive failures since the last answer
  int ejections = 0;             // ejections in a row since the last answer
  int64_t ejected_until_ms = 0;  // Unix ms; 0 when in rotation
  std::string last_failure;      // how the last failure went ("" if none)
  // Active checks (--health-path), now:
  bool checked = false;       // they run
  bool check_down = false;    // they took the instance out
  std::string last_check;     // "GET /healthz: 200" ("" before the first)
  int64_t last_check_ms = 0;  // Unix ms of the last check (0 before the first)
  // https:// instances, since serve started:
  int64_t tls_handshakes = 0;  // connections whose TLS handshake succeeded
  int64_t tls_resumed = 0;     // of those, the ones that resumed a session

  bool operator==(const InstanceLoad& o) const {
    return backend == o.backend && instance == o.instance && max_conns == o.max_conns &&
           open == o.open && idle == o.idle && in_use == o.in_use && queued == o.queued &&
           queue_waits == o.queue_waits && queue_503 == o.queue_503 &&
           connect_failures == o.connect_failures && ejected == o.ejected &&
           failures == o.failures && ejections == o.ejections &&
           ejected_until_ms == o.ejected_until_ms && last_failure == o.last_failure &&
           checked == o.checked && check_down == o.check_down && last_check == o.last_check &&
           last_check_ms == o.last_check_ms && tls_handshakes == o.tls_handshakes &&
           tls_resumed == o.tls_resumed;
  }
  bool operator!=(const InstanceLoad& o) const { return !(*this == o); }
};

}  // namespace strangler
