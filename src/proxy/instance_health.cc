#include "proxy/instance_health.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "base/time.h"
#include "rules/rules.h"

namespace strangler {
namespace {

int64_t ToUnixMs(InstanceHealth::Clock::time_point t, InstanceHealth::Clock::time_point now) {
  return NowUnixMs() + std::chrono::duration_cast<std::chrono::milliseconds>(t - now).count();
}

}  // namespace

void InstanceHealth::SetPolicy(int eject_after, int eject_for_ms) {
  eject_after_.store(eject_after, std::memory_order_relaxed);
  eject_for_ms_.store(eject_for_ms, std::memory_order_relaxed);
}

void InstanceHealth::EndRun() {
  std::lock_guard<std::mutex> lock(mu_);
  failures_.store(0, std::memory_order_relaxed);
  ejections_.store(0, std::memory_order_relaxed);
}

bool InstanceHealth::Ejected(Clock::time_point now) const {
  return now.time_since_epoch().count() < ejected_until_.load(std::memory_order_relaxed);
}

void InstanceHealth::EjectionOverLocked(const std::string& why) {
  ejected_until_.store(0, std::memory_order_relaxed);  // Usable() need not read the clock
  if (!logged_out_) return;
  logged_out_ = false;
  // Still down by its checks: their "up" line will say when it is back.
  if (!check_down_.load(std::memory_order_relaxed)) {
    spdlog::info("instance {} back in rotation ({})", label_, why);
  }
}

bool InstanceHealth::Failed(const char* what, Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  last_failure_ = what;
  const int failures = failures_.load(std::memory_order_relaxed) + 1;
  failures_.store(failures, std::memory_order_relaxed);
  const int after = eject_after_.load(std::memory_order_relaxed);
  // Requests still reach an ejected instance when every instance of its
  // backend is out (panic mode): their failures do not lengthen the
  // ejection.
  if (after <= 0 || failures < after || Ejected(now)) return false;
  // The one before ran out and Tick has not said so yet: first that.
  if (ejected_until_.load(std::memory_order_relaxed) != 0) {
    EjectionOverLocked("its ejection ran out");
  }
  const int ejections = ejections_.load(std::memory_order_relaxed) + 1;
  ejections_.store(ejections, std::memory_order_relaxed);
  int64_t ms = eject_for_ms_.load(std::memory_order_relaxed);
  for (int i = 1; i < ejections && ms < kMaxEjectForMs; ++i) ms *= 2;
  ms = std::min<int64_t>(ms, kMaxEjectForMs);
  ejected_until_.store((now + std::chrono::milliseconds(ms)).time_since_epoch().count(),
                       std::memory_order_relaxed);
  // Once back, the next failure takes it out again.
  failures_.store(after - 1, std::memory_order_relaxed);
  // Only checks passed after this ejection may end it.
  passes_ = 0;
  logged_out_ = true;
  spdlog::warn("instance {} ejected for {} after {} consecutive failure{} (last: {}){}", label_,
               FormatDurationMs(ms), failures, failures == 1 ? "" : "s", what,
               ejections > 1 ? ", ejection " + std::to_string(ejections) + " in a row"
                             : std::string());
  return true;
}

void InstanceHealth::Tick(Clock::time_point now) {
  std::lock_guard<std::mutex> lock(mu_);
  const Clock::rep until = ejected_until_.load(std::memory_order_relaxed);
  if (until == 0 || now.time_since_epoch().count() < until) return;
  EjectionOverLocked("its ejection ran out");
}

void InstanceHealth::SetChecked(bool checked) {
  std::lock_guard<std::mutex> lock(mu_);
  if (checked_ == checked) return;
  checked_ = checked;
  passes_ = fails_ = 0;
  if (!checked && check_down_.load(std::memory_order_relaxed)) {
    check_down_.store(false, std::memory_order_relaxed);
    if (Ejected(Clock::now())) {
      spdlog::info("instance {} no longer checked (still ejected)", label_);
    } else {
      spdlog::info("instance {} back in rotation (no longer checked)", label_);
    }
  }
}

bool InstanceHealth::CheckResult(bool passed, const std::string& what) {
  constexpr int kPassesToUp = 2, kFailsToDown = 3;
  std::lock_guard<std::mutex> lock(mu_);
  last_check_ = what;
  last_check_ms_ = NowUnixMs();
  if (!passed) {
    passes_ = 0;
    if (++fails_ < kFailsToDown || check_down_.load(std::memory_order_relaxed)) return false;
    check_down_.store(true, std::memory_order_relaxed);
    spdlog::warn("instance {} down: {} checks failed in a row (last: {})", label_, fails_, what);
    return true;
  }
  fails_ = 0;
  if (++passes_ < kPassesToUp) return false;
  // Up, and an ejection (made before these passes) ends too: the instance
  // answers again. One more failure takes it out again, for twice as long.
  const bool was_down = check_down_.load(std::memory_order_relaxed);
  const bool was_ejected = Ejected(Clock::now());
  if (!was_down && !was_ejected) return false;
  check_down_.store(false, std::memory_order_relaxed);
  if (was_ejected) {
    ejected_until_.store(0, std::memory_order_relaxed);
    logged_out_ = false;
  }
  if (was_down) {
    spdlog::info("instance {} up: {} checks passed in a row ({}){}", label_, passes_, what,
                 was_ejected ? ", and its ejection ended" : "");
  } else {
    spdlog::info("instance {} back in rotation ({} checks passed in a row: {})", label_, passes_,
                 what);
  }
  return false;
}

HealthView InstanceHealth::View(Clock::time_point now) const {
  HealthView v;
  std::lock_guard<std::mutex> lock(mu_);
  v.ejected = now.time_since_epoch().count() < ejected_until_.load(std::memory_order_relaxed);
  v.failures = failures_.load(std::memory_order_relaxed);
  v.ejections = ejections_.load(std::memory_order_relaxed);
  if (v.ejected) {
    Clock::time_point until{Clock::duration(ejected_until_.load(std::memory_order_relaxed))};
    v.ejected_until_ms = ToUnixMs(until, now);
  }
  v.last_failure = last_failure_;
  v.checked = checked_;
  v.check_down = check_down_.load(std::memory_order_relaxed);
  v.last_check = last_check_;
  v.last_check_ms = last_check_ms_;
  return v;
}

}  // namespace strangler
