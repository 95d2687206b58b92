// Tests of passive ejection's arithmetic and its log lines
// (proxy/instance_health.h), on a clock the test moves.
#include "proxy/instance_health.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <thread>

#include "proxy/health_probe.h"

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
        "instance 10.0.0.1:80 up: 2 checks passed in a row (GET /h: 200), and its ejection "
        "ended\n");
  // Checks turned off while down: back in rotation.
  h.CheckResult(false, "x");
  h.CheckResult(false, "x");
  h.CheckResult(false, "x");
  CHECK_FALSE(h.Usable(Clock::now()));
  h.SetChecked(false);
  CHECK(h.Usable(Clock::now()));
}

TEST_CASE("only checks passed after an ejection end it; one that runs out while checks hold the "
          "instance down says nothing") {
  CapturedLog log;
  InstanceHealth h("10.0.0.1:80");
  h.SetPolicy(1, 1000);
  h.SetChecked(true);
  h.CheckResult(true, "GET /h: 200");
  h.CheckResult(true, "GET /h: 200");
  const Clock::time_point t0 = Clock::now();
  REQUIRE(h.Failed("connection reset or closed before an answer", t0));
  h.CheckResult(true, "GET /h: 200");  // the passes before the ejection do not count
  CHECK_FALSE(h.Usable(t0));
  h.CheckResult(true, "GET /h: 200");
  CHECK(h.Usable(t0));
  CHECK(log.text().substr(log.text().find('\n') + 1) ==
        "instance 10.0.0.1:80 back in rotation (2 checks passed in a row: GET /h: 200)\n");

  // Ejected, then down by checks; the ejection runs out: still out, no line.
  InstanceHealth g("10.0.0.2:80");
  g.SetPolicy(1, 1000);
  g.SetChecked(true);
  const Clock::time_point t1 = Clock::now();
  REQUIRE(g.Failed("connection refused", t1));
  for (int i = 0; i < 3; ++i) g.CheckResult(false, "GET /h: connection refused");
  g.Tick(t1 + milliseconds(1500));
  CHECK_FALSE(g.Usable(t1 + milliseconds(1500)));
  CHECK(log.text().find("10.0.0.2:80 back in rotation") == std::string::npos);
  // Checks turned off then: back.
  g.SetChecked(false);
  CHECK(g.Usable(t1 + milliseconds(1500)));
  CHECK(log.text().find("instance 10.0.0.2:80 back in rotation (no longer checked)") !=
        std::string::npos);
}

// Runs one health check against a loopback socket that answers `answer`
// (then closes); what the check said in *what.
bool CheckAgainst(const std::string& answer, std::string* what) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(a);
  REQUIRE(bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
  REQUIRE(listen(lfd, 1) == 0);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len);
  std::thread server([&] {
    int c = accept(lfd, nullptr, nullptr);
    if (c < 0) return;
    char buf[1024];
    ssize_t got = recv(c, buf, sizeof(buf), 0);  // the request head
    (void)got;
    ssize_t sent = send(c, answer.data(), answer.size(), MSG_NOSIGNAL);
    (void)sent;
    close(c);
  });
  bool passed = HealthProbe::CheckOnce(
      "127.0.0.1", ntohs(a.sin_port), TlsClientSettings{}, "/healthz", 10000, [] { return false; },
      what);
  server.join();
  close(lfd);
  return passed;
}

TEST_CASE("a check passes on a final 2xx or 3xx status line, interim answers passed over") {
  struct Case {
    const char* answer;
    bool passed;
    const char* what;
  };
  const Case cases[] = {
      {"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true, "200"},
      {"HTTP/1.1 302 Found\r\n\r\n", true, "302"},
      {"HTTP/1.0 204\r\n\r\n", true, "204"},
      {"HTTP/1.1 204 No Content\n\n", true, "204"},  // bare LF
      {"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", true, "200"},
      {"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 503 x\r\n\r\n", false,
       "503"},
      {"HTTP/1.1 503 Service Unavailable\r\n\r\n", false, "503"},
      {"HTTP/1.1 404 Not Found\r\n\r\n", false, "404"},
      {"HTTP/1.1 2000 OK\r\n\r\n", false, "not an HTTP/1 answer"},
      {"HTTP/1.1 20 OK\r\n\r\n", false, "not an HTTP/1 answer"},
      {"SSH-2.0-OpenSSH\r\n", false, "not an HTTP/1 answer"},
      {"HTTP/1.1 200 O", false, "closed before a status line"},
      {"", false, "closed before a status line"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.answer);
    std::string what;
    CHECK(CheckAgainst(c.answer, &what) == c.passed);
    CHECK(what == c.what);
  }
  std::string what;
  CHECK_FALSE(CheckAgainst("HTTP/1.1 200 " + std::string(20000, 'x'), &what));
  CHECK(what == "no status line in 16384 bytes");
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
