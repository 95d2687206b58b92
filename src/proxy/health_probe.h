// Active health checks of one backend instance (--health-path): a thread of
// its own, off the request path, that sends `GET path` every `every_ms` on a
// new connection and reports each result to the instance's InstanceHealth.
// A check passes on a 2xx or 3xx status line within `timeout_ms` of its
// start (connect included); a refusal, a timeout, or anything else fails it.
// The thread starts with the first Configure that names a path and idles
// while none does. Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

#include "proxy/instance_health.h"
#include "proxy/tls_context.h"

namespace strangler {

class HealthProbe {
 public:
  // `on_down`: called (on the probe's thread) when a check took the
  // instance down.
  HealthProbe(std::string host, uint16_t port, TlsClientSettings tls, InstanceHealth* health,
              std::function<void()> on_down);
  ~HealthProbe();  // stops the thread (a check in progress ends within 100 ms)
  HealthProbe(const HealthProbe&) = delete;
  HealthProbe& operator=(const HealthProbe&) = delete;

  // From the backends that list the instance (each reload); "" stops checks.
  // A check under way with other settings is cut short: the new ones apply
  // at once.
  void Configure(const std::string& path, int every_ms, int timeout_ms);

  // One check, as the thread runs it: passed, and what it saw in *what.
  // Ends early (failed) as soon as cancelled() says so (polled every 100 ms).
  // (Over TLS when tls.on, checked as the instance's connections are.)
  static bool CheckOnce(const std::string& host, uint16_t port, const TlsClientSettings& tls,
                        const std::string& path, int timeout_ms,
                        const std::function<bool()>& cancelled, std::string* what);

 private:
  void Run();

  const std::string host_;
  const uint16_t port_;
  const TlsClientSettings tls_;
  InstanceHealth* const health_;
  const std::function<void()> on_down_;
  std::mutex mu_;  // guards what follows
  std::condition_variable cv_;
  std::string path_;
  int every_ms_ = 0;
  int timeout_ms_ = 0;
  std::atomic<bool> stop_{false};          // also read by a check in progress
  std::atomic<uint64_t> generation_{0};    // bumped by each new configuration
  std::thread thread_;
};

}  // namespace strangler
