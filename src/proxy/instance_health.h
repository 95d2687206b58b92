// Whether a backend instance takes requests (PRODUCT.md "Backends in
// production"): passive ejection, and active checks when the backend has a
// --health-path (HealthProbe runs them and reports here: 3 failing checks in
// a row mark the instance down, 2 passing ones mark it up and end an
// ejection).
//
// Passive ejection: Requests that could not reach the instance (a
// connect refused or timed out, a connection reset, no answer in time) count
// as consecutive failures; an answer of any status ends the run. After
// eject_after of them the instance is out of rotation for eject_for; once
// back, one more failure takes it out again for twice as long (at most 5
// minutes), until an answer resets both.
//
// Workers report outcomes and ask Usable() on every request: two relaxed
// atomic loads on the way, a lock only when a failure is counted or a run of
// them ends. State changes are logged by Tick(), on serve's thread, once each.
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace strangler {

// What `backend show` prints of an instance's health.
struct HealthView {
  bool ejected = false;
  int failures = 0;             // consecutive, since the last answer
  int ejections = 0;            // in a row, since the last answer (the doubling)
  int64_t ejected_until_ms = 0;  // Unix ms; 0 when not ejected
  std::string last_failure;     // "" when none since serve started
  bool checked = false;         // active checks run
  bool check_down = false;      // the checks took it out
  std::string last_check;       // "GET /healthz: 200", "" before the first
  int64_t last_check_ms = 0;    // Unix ms of the last check; 0 before the first
};

class InstanceHealth {
 public:
  using Clock = std::chrono::steady_clock;

  explicit InstanceHealth(std::string label) : label_(std::move(label)) {}
  InstanceHealth(const InstanceHealth&) = delete;
  InstanceHealth& operator=(const InstanceHealth&) = delete;

  // From the backends that list the instance (each reload).
  void SetPolicy(int eject_after, int eject_for_ms);

  // In rotation: not marked down by checks, not ejected (or the ejection
  // has run out). Reads the clock only while an ejection is on record
  // (Tick clears one that ran out).
  bool Usable() const {
    if (check_down_.load(std::memory_order_relaxed)) return false;
    const Clock::rep until = ejected_until_.load(std::memory_order_relaxed);
    return until == 0 || Clock::now().time_since_epoch().count() >= until;
  }
  bool Usable(Clock::time_point now) const {
    return !check_down_.load(std::memory_order_relaxed) &&
           now.time_since_epoch().count() >= ejected_until_.load(std::memory_order_relaxed);
  }
  // An answer came (whatever its status).
  void Answered() {
    if (failures_.load(std::memory_order_relaxed) != 0 ||
        ejections_.load(std::memory_order_relaxed) != 0) {
      EndRun();
    }
  }
  // The instance could not be reached or did not answer: `what` says how.
  // True when this failure ejected it (its queued requests should go
  // elsewhere).
  bool Failed(const char* what, Clock::time_point now = Clock::now());

  // Active checks: whether they run (an instance no backend checks any more
  // is marked up), and each result. `what` describes it ("GET /h: 503").
  void SetChecked(bool checked);
  // True when this check took the instance down (its queued requests
  // should go elsewhere).
  bool CheckResult(bool passed, const std::string& what);

  // Logs (to stderr, through spdlog) the return of an instance whose
  // ejection ran out, once. On serve's thread, about once a tick. (An
  // ejection is logged when it happens, preceded by the return from the
  // one before when Tick had not logged that yet: one line per event, in
  // order.)
  void Tick(Clock::time_point now);
  HealthView View(Clock::time_point now) const;

 private:
  void EndRun();
  bool Ejected(Clock::time_point now) const;
  // An ejection ended (ran out, or its return was due before a new one):
  // logged when the instance is back in rotation. Under mu_.
  void EjectionOverLocked(const std::string& why);

  const std::string label_;  // host:port, for the log
  std::atomic<int> eject_after_{0};
  std::atomic<int> eject_for_ms_{0};
  std::atomic<int> failures_{0};
  std::atomic<Clock::rep> ejected_until_{0};  // steady clock ticks; 0: none
  std::atomic<bool> check_down_{false};

  std::atomic<int> ejections_{0};  // in a row; written under mu_

  mutable std::mutex mu_;  // guards what follows
  std::string last_failure_;
  bool logged_out_ = false;  // an ejection was logged, its end not yet
  // Active checks.
  bool checked_ = false;
  int passes_ = 0, fails_ = 0;  // in a row
  std::string last_check_;
  int64_t last_check_ms_ = 0;
};

}  // namespace strangler
