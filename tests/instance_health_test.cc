// Tests of passive ejection's arithmetic and its log lines
// (proxy/instance_health.h), on a clock the test moves.
#include "proxy/instance_health.h"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>

namespace strangler {
namespace {

TEST_SUITE_BEGIN("instance health");

using Clock = InstanceHealth::Clock;
using std::chrono::milliseconds;

// Sends spdlog's default logger to a string for the test's life.
class CapturedLog {
 public:
  CapturedLog() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out_);
    sink->set_pattern("%v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("captured", sink));
  }
  ~CapturedLog() { spdlog::set_default_logger(previous_); }
  std::string text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  std::shared_ptr<spdlog::logger> previous_;
};

TEST_CASE("after eject_after failures an instance is out for eject_for, doubling once back") {
  CapturedLog log;
  InstanceHealth h("10.0.0.1:80");
  h.SetPolicy(2, 1000);
  const Clock::time_point t0 = Clock::now();
  CHECK_FALSE(h.Failed("connection refused", t0));
  CHECK(h.Usable(t0));
  CHECK(h.Failed("connection refused", t0));  // the second: ejected
  CHECK_FALSE(h.Usable(t0 + milliseconds(999)));
  CHECK(h.Usable(t0 + milliseconds(1000)));
  // Back, and failing again at once: out for twice as long.
  CHECK(h.Failed("connection refused", t0 + milliseconds(1500)));
  CHECK_FALSE(h.Usable(t0 + milliseconds(3499)));
  CHECK(h.Usable(t0 + milliseconds(3500)));
  CHECK(h.View(t0 + milliseconds(2000)).ejections == 2);
  CHECK(log.text() ==
        "instance 10.0.0.1:80 ejected for 1s after 2 consecutive failures (last: connection "
        "refused)\n"
        "instance 10.0.0.1:80 back in rotation (its ejection ran out)\n"
        "instance 10.0.0.1:80 ejected for 2s after 2 consecutive failures (last: connection "
        "refused), ejection 2 in a row\n");
  // Tick says when this one ran out, once.
  h.Tick(t0 + milliseconds(3000));
  h.Tick(t0 + milliseconds(3600));
  h.Tick(t0 + milliseconds(3700));
  CHECK(log.text().substr(log.text().rfind("instance")) ==
        "instance 10.0.0.1:80 back in rotation (its ejection ran out)\n");
}

TEST_CASE("an answer ends the run of failures and the doubling, also with --eject-after 1") {
  // With one failure enough, the count kept after an ejection is 0: the
  // answer must still reset the doubling.
  CapturedLog log;
  InstanceHealth h("10.0.0.1:80");
  h.SetPolicy(1, 1000);
  const Clock::time_point t0 = Clock::now();
  CHECK(h.Failed("no answer in time", t0));
  CHECK(h.Failed("no answer in time", t0 + milliseconds(1000)));  // 2 s now
  CHECK(h.View(t0 + milliseconds(1000)).ejections == 2);
  h.Answered();
  CHECK(h.View(t0 + milliseconds(3000)).ejections == 0);
  CHECK(h.Failed("no answer in time", t0 + milliseconds(3000)));
  CHECK(h.Usable(t0 + milliseconds(4000)));  // 1 s again, not 4
  CHECK(log.text().find("ejection 3 in a row") == std::string::npos);
}

TEST_CASE("the doubling stops at 5 minutes; --eject-after 0 never ejects") {
  CapturedLog log;
  InstanceHealth h("10.0.0.1:80");
  h.SetPolicy(1, 100000);
  Clock::time_point t = Clock::now();
  for (int i = 0; i < 6; ++i) {
    REQUIRE(h.Failed("connection refused", t));
    t += milliseconds(300000);  // every ejection is over by then
  }
  CHECK(log.text().find("ejected for 5m after 1 consecutive failure (last: connection refused), "
                        "ejection 6 in a row") != std::string::npos);
  InstanceHealth never("10.0.0.2:80");
  never.SetPolicy(0, 1000);
  for (int i = 0; i < 100; ++i) CHECK_FALSE(never.Failed("connection refused", t));
  CHECK(never.Usable(t));
  CHECK(never.View(t).failures == 100);
}

TEST_CASE("failing checks mark an instance down, passing ones up, ending an ejection") {
  CapturedLog log;
  InstanceHealth h("10.0.0.1:80");
  h.SetPolicy(1, 60000);
  h.SetChecked(true);
  h.CheckResult(false, "GET /h: 503");
  h.CheckResult(false, "GET /h: 503");
  CHECK(h.Usable(Clock::now()));
  h.CheckResult(false, "GET /h: connection refused");
  CHECK_FALSE(h.Usable(Clock::now()));
  CHECK(h.View(Clock::now()).check_down);
  REQUIRE(h.Failed("connection refused"));  // ejected for a minute as well
  h.CheckResult(true, "GET /h: 200");
  CHECK_FALSE(h.Usable(Clock::now()));
  h.CheckResult(true, "GET /h: 200");
  CHECK(h.Usable(Clock::now()));  // up, and the ejection is over
  CHECK(log.text() ==
        "instance 10.0.0.1:80 down: 3 checks failed in a row (last: GET /h: connection refused)\n"
        "instance 10.0.0.1:80 ejected for 1m after 1 consecutive failure (last: connection "
        "refused)\n"
        "instance 10.0.0.1:80 up: 2 checks passed in a row (GET /h: 200)\n"
        "instance 10.0.0.1:80 back in rotation (2 checks passed in a row: GET /h: 200)\n");
  // Checks turned off while down: back in rotation.
  h.CheckResult(false, "x");
  h.CheckResult(false, "x");
  h.CheckResult(false, "x");
  CHECK_FALSE(h.Usable(Clock::now()));
  h.SetChecked(false);
  CHECK(h.Usable(Clock::now()));
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
