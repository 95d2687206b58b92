// The store's ramps (start, pause/resume/abort, RampTick judging windows) and
// mirror results (tallies, kept mismatches). Time is passed in: RampTick gets
// now_ms, and ramps use windows far longer than the test runs.
#include <doctest/doctest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "store/store.h"
#include "test_util.h"

namespace strangler {
namespace {

TEST_SUITE_BEGIN("ramps");

using testing::RawInt;
using testing::TempDir;

const ChangeContext kCtx{"alice", "ticket-7"};
constexpr int64_t kEvery = 60000;  // a minute: the wall clock never makes a ramp due by itself

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void RequireOk(const Status& s) {
  INFO(s.message());
  REQUIRE(s.ok());
}

std::unique_ptr<Store> MustOpen(const std::string& path) {
  auto s = Store::Open(path);
  INFO(path, ": ", s.status().message());
  REQUIRE(s.ok());
  return std::move(*s);
}

// legacy (default) and new; route "api" to new at `percent_bp`, else legacy by default.
void Seed(Store& s, int percent_bp = 0) {
  for (auto [name, port] : {std::pair<const char*, int>{"legacy", 9001}, {"new", 9002}}) {
    Backend b;
    b.name = name;
    b.urls = {"http://127.0.0.1:" + std::to_string(port)};
    RequireOk(s.AddBackend(b, kCtx));
  }
  Route r;
  r.name = "api";
  r.to = "new";
  r.path = "/api";
  r.percent_bp = percent_bp;
  RequireOk(s.AddRoute(r, kCtx));
}

RampSpec Spec(int target_pct, int step_pct) {
  RampSpec s;
  s.route = "api";
  s.target_bp = target_pct * 100;
  s.step_bp = step_pct * 100;
  s.every_ms = kEvery;
  return s;
}

int Percent(Store& s) {
  auto r = s.GetRoute("api");
  REQUIRE(r.ok());
  return r->percent_bp;
}

Ramp GetRamp(Store& s) {
  auto r = s.GetRamp("api");
  INFO(r.status().message());
  REQUIRE(r.ok());
  return *r;
}

using Counted = std::vector<std::pair<std::string, RampCounts>>;

Counted Counts(int64_t to_n, int64_t to_5xx, int64_t else_n, int64_t else_5xx) {
  return {{"api", RampCounts{to_n, to_5xx, else_n, else_5xx}}};
}

RampTickResult Tick(Store& s, int64_t now_ms, const Counted& counted = {}) {
  auto r = s.RampTick(now_ms, counted);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return *r;
}

// The one event of a tick that must have judged "api".
RampEvent OneEvent(const RampTickResult& t) {
  REQUIRE(t.events.size() == 1);
  INFO(t.events[0].message);
  CHECK(t.events[0].route == "api");
  return t.events[0];
}

// Starts a ramp and takes its first step at `*now`; afterwards *now is the
// time the first window is due.
void StartAndFirstStep(Store& s, const RampSpec& spec, int64_t* now) {
  RequireOk(s.StartRamp(spec, kCtx));
  *now = NowMs() + 1;
  CHECK(OneEvent(Tick(s, *now)).what == "step");
  *now += spec.every_ms;
}

TEST_CASE("ramp start refuses bad specs, unknown routes, lower targets and a ramp in progress") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s, 3000);

  struct Bad {
    const char* what;
    RampSpec spec;
  };
  std::vector<Bad> bad;
  auto add = [&](const char* what, auto change) {
    RampSpec r = Spec(50, 10);
    change(r);
    bad.push_back({what, r});
  };
  add("target 0", [](RampSpec& r) { r.target_bp = 0; });
  add("target over 100", [](RampSpec& r) { r.target_bp = 10001; });
  add("step 0", [](RampSpec& r) { r.step_bp = 0; });
  add("step over 100", [](RampSpec& r) { r.step_bp = 10001; });
  add("every under 1s", [](RampSpec& r) { r.every_ms = 999; });
  add("error rate over 1", [](RampSpec& r) { r.max_error_rate = 1.5; });
  add("error rate negative", [](RampSpec& r) { r.max_error_rate = -0.1; });
  add("min requests negative", [](RampSpec& r) { r.min_requests = -1; });
  add("bad route name", [](RampSpec& r) { r.route = "Bad Name"; });
  for (const Bad& b : bad) {
    CAPTURE(b.what);
    Status st = s->StartRamp(b.spec, kCtx);
    CHECK(st.code() == Code::kUsage);
  }
  RampSpec ghost = Spec(50, 10);
  ghost.route = "ghost";
  CHECK(s->StartRamp(ghost, kCtx).code() == Code::kNotFound);
  for (int target : {20, 30}) {
    CAPTURE(target);
    Status st = s->StartRamp(Spec(target, 10), kCtx);
    CHECK(st.code() == Code::kConflict);
    CHECK(st.message().find("already at 30%") != std::string::npos);
    CHECK(st.message().find("route set") != std::string::npos);
  }
  // Nothing was written by the refusals.
  auto list = s->ListRamps();
  REQUIRE(list.ok());
  CHECK(list->empty());
  auto h = s->History("api", 0);
  REQUIRE(h.ok());
  CHECK(h->size() == 1);  // route.add

  RequireOk(s->StartRamp(Spec(50, 10), kCtx));
  Status again = s->StartRamp(Spec(60, 10), kCtx);
  CHECK(again.code() == Code::kConflict);
  CHECK(again.message().find("abort it first") != std::string::npos);
  RequireOk(s->PauseRamp("api", kCtx));
  CHECK(s->StartRamp(Spec(60, 10), kCtx).code() == Code::kConflict);

  // An ended ramp is replaced; the history row keeps the old one as before.
  RequireOk(s->AbortRamp("api", kCtx));
  RequireOk(s->StartRamp(Spec(60, 5), kCtx));
  Ramp r = GetRamp(*s);
  CHECK(r.state == RampState::kRunning);
  CHECK(r.spec.target_bp == 6000);
  CHECK(r.step == 0);
  CHECK(r.percent_bp == 3000);
  auto start = s->History("api", 1);
  REQUIRE(start.ok());
  const ChangeRow& row = (*start)[0];
  CHECK(row.action == "ramp.start");
  CHECK(row.object == "ramp/api");
  CHECK(row.actor == "alice");
  CHECK(row.reason == "ticket-7");
  CHECK(row.before["state"] == "aborted");
  CHECK(row.after["state"] == "running");
  CHECK(row.after["target"] == 60);
  CHECK(row.after["step"] == 5);
}

TEST_CASE("ramp: the first tick takes the first step without judging") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  RampSpec spec = Spec(50, 10);
  spec.max_error_rate = 0.01;
  spec.min_requests = 100;
  RequireOk(s->StartRamp(spec, kCtx));
  int64_t now = NowMs() + 1;
  // Every request failed and there are too few: the first step is not judged.
  RampTickResult t = Tick(*s, now, Counts(10, 10, 0, 0));
  RampEvent e = OneEvent(t);
  CHECK(e.what == "step");
  CHECK(e.message == "step 1: 0% -> 10%");
  CHECK(Percent(*s) == 1000);
  CHECK(t.running == std::vector<std::string>{"api"});
  CHECK(t.next_due_ms == now + kEvery);

  Ramp r = GetRamp(*s);
  CHECK(r.step == 1);
  CHECK(r.next_at_ms == now + kEvery);
  CHECK(r.current.empty());  // the step-0 counts went with the step
  auto h = s->History("api", 1);
  REQUIRE(h.ok());
  CHECK((*h)[0].action == "route.set");
  CHECK((*h)[0].actor == "ramp");
  CHECK((*h)[0].reason == "ramp step 1: 0% -> 10%");
  CHECK((*h)[0].before["percent"] == 0);
  CHECK((*h)[0].after["percent"] == 10);
}

TEST_CASE("ramp: a tick with nothing due and nothing counted writes nothing") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto s = MustOpen(path);
  auto watcher = MustOpen(path);
  Seed(*s);
  int64_t now = 0;
  StartAndFirstStep(*s, Spec(50, 10), &now);
  auto before = watcher->DataVersion();
  REQUIRE(before.ok());
  RampTickResult t = Tick(*s, now - 1, {{"other-route", RampCounts{5, 0, 5, 0}}});
  CHECK(t.events.empty());
  CHECK(t.running == std::vector<std::string>{"api"});
  CHECK(t.next_due_ms == now);
  auto after = watcher->DataVersion();
  REQUIRE(after.ok());
  CHECK(*after == *before);
  // Counts of a running ramp are written even when nothing is due.
  Tick(*s, now - 1, Counts(3, 1, 4, 0));
  Ramp r = GetRamp(*s);
  CHECK(r.current.to_n == 3);
  CHECK(r.current.to_5xx == 1);
  CHECK(r.current.else_n == 4);
  // A take can hold a 5xx whose request went with the take before: kept.
  Tick(*s, now - 1, Counts(0, 1, 0, 0));
  r = GetRamp(*s);
  CHECK(r.current.to_n == 3);
  CHECK(r.current.to_5xx == 2);
}

TEST_CASE("ramp: a window below --min-requests waits and keeps counting") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  RampSpec spec = Spec(50, 10);
  spec.min_requests = 20;
  int64_t now = 0;
  StartAndFirstStep(*s, spec, &now);

  RampEvent wait = OneEvent(Tick(*s, now, Counts(5, 0, 50, 0)));
  CHECK(wait.what == "waiting");
  CHECK(wait.message == "waiting for 20 requests to new in this window (have 5)");
  CHECK(Percent(*s) == 1000);
  Ramp r = GetRamp(*s);
  CHECK(r.note == wait.message);
  CHECK(r.next_at_ms == now + kEvery);
  CHECK(r.current.to_n == 5);

  now += kEvery;
  RampEvent step = OneEvent(Tick(*s, now, Counts(15, 0, 50, 1)));
  CHECK(step.what == "step");
  CHECK(step.message == "step 2: 10% -> 20% (last window: new 5xx 0/20, legacy 5xx 1/100)");
  CHECK(Percent(*s) == 2000);
  r = GetRamp(*s);
  CHECK(r.last.to_n == 20);
  CHECK(r.last.else_n == 100);
  CHECK(r.last.else_5xx == 1);
  CHECK(r.note.empty());
  CHECK(r.current.empty());
}

TEST_CASE("ramp: a breach with rollback sets the percent to 0 and records the rates") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  RampSpec spec = Spec(50, 10);
  spec.max_error_rate = 0.05;
  int64_t now = 0;
  StartAndFirstStep(*s, spec, &now);
  auto v = s->RulesetVersion();
  REQUIRE(v.ok());

  RampEvent e = OneEvent(Tick(*s, now, Counts(40, 12, 60, 0)));
  CHECK(e.what == "rolled_back");
  const std::string numbers = "new 5xx 12/40 = 30.00% > 5.00% (legacy 5xx 0/60 = 0.00%)";
  CHECK(e.message.find(numbers) != std::string::npos);
  CHECK(Percent(*s) == 0);
  auto v2 = s->RulesetVersion();
  REQUIRE(v2.ok());
  CHECK(*v2 == *v + 1);  // the rollback is a rule change

  Ramp r = GetRamp(*s);
  CHECK(r.state == RampState::kRolledBack);
  CHECK(r.last.to_n == 40);
  CHECK(r.last.to_5xx == 12);
  CHECK(r.note.find(numbers) != std::string::npos);
  CHECK(r.note.find("rolled back from 10% to 0%") != std::string::npos);

  auto h = s->History("api", 2);
  REQUIRE(h.ok());
  const ChangeRow& breach = (*h)[0];
  const ChangeRow& rollback = (*h)[1];
  CHECK(breach.action == "ramp.breach");
  CHECK(breach.actor == "ramp");
  CHECK(breach.reason.find("error budget breached: " + numbers) == 0);
  CHECK(breach.after["state"] == "rolled_back");
  CHECK(rollback.action == "route.set");
  CHECK(rollback.actor == "ramp");
  CHECK(rollback.reason == "error budget breached: " + numbers + "; rolled back to 0%");
  CHECK(rollback.after["percent"] == 0);

  // Ended: later ticks leave it alone.
  CHECK(Tick(*s, now + 10 * kEvery, Counts(100, 0, 0, 0)).events.empty());
  CHECK(Percent(*s) == 0);
}

TEST_CASE("ramp: a --to rate not above the --else rate, or within budget, is no breach") {
  struct Case {
    const char* what;
    RampCounts window;
  };
  const Case cases[] = {
      {"worse than budget, but else is worse", {40, 10, 100, 30}},
      {"worse than budget, as bad as else", {40, 10, 40, 10}},
      {"within budget", {100, 5, 100, 0}},
      {"no --to requests", {0, 0, 100, 50}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.what);
    TempDir dir;
    auto s = MustOpen(dir.File("s.db"));
    Seed(*s);
    RampSpec spec = Spec(50, 10);
    spec.max_error_rate = 0.05;
    int64_t now = 0;
    StartAndFirstStep(*s, spec, &now);
    RampEvent e = OneEvent(Tick(*s, now, {{"api", c.window}}));
    CHECK(e.what == "step");
    CHECK(Percent(*s) == 2000);
  }
}

TEST_CASE("ramp: a breach with --on-breach freeze keeps the percent") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  RampSpec spec = Spec(50, 10);
  spec.max_error_rate = 0.1;
  spec.on_breach = OnBreach::kFreeze;
  int64_t now = 0;
  StartAndFirstStep(*s, spec, &now);
  OneEvent(Tick(*s, now, Counts(10, 0, 10, 0)));  // step 2: 20%
  auto v = s->RulesetVersion();
  REQUIRE(v.ok());
  now += kEvery;
  RampEvent e = OneEvent(Tick(*s, now, Counts(10, 5, 10, 0)));
  CHECK(e.what == "frozen");
  CHECK(e.message.find("new 5xx 5/10 = 50.00% > 10.00% (legacy 5xx 0/10 = 0.00%)") !=
        std::string::npos);
  CHECK(e.message.find("frozen at 20%") != std::string::npos);
  CHECK(Percent(*s) == 2000);
  CHECK(GetRamp(*s).state == RampState::kFrozen);
  auto v2 = s->RulesetVersion();
  REQUIRE(v2.ok());
  CHECK(*v2 == *v);  // nothing changed in the rules
  auto h = s->History("api", 1);
  REQUIRE(h.ok());
  CHECK((*h)[0].action == "ramp.breach");
}

TEST_CASE("ramp: done one window after the last step; a breach in that window still rolls back") {
  for (bool breach : {false, true}) {
    CAPTURE(breach);
    TempDir dir;
    auto s = MustOpen(dir.File("s.db"));
    Seed(*s);
    RampSpec spec = Spec(25, 10);
    spec.max_error_rate = 0.05;
    int64_t now = 0;
    StartAndFirstStep(*s, spec, &now);                                    // 10%
    CHECK(OneEvent(Tick(*s, now, Counts(10, 0, 10, 0))).what == "step");  // 20%
    now += kEvery;
    RampEvent last = OneEvent(Tick(*s, now, Counts(10, 0, 10, 0)));
    CHECK(last.what == "step");
    CHECK(last.message.find("20% -> 25%") != std::string::npos);  // capped at the target
    CHECK(Percent(*s) == 2500);
    CHECK(GetRamp(*s).state == RampState::kRunning);
    now += kEvery;
    RampEvent end = OneEvent(Tick(*s, now, breach ? Counts(10, 9, 10, 0) : Counts(10, 0, 10, 0)));
    auto h = s->History("api", 1);
    REQUIRE(h.ok());
    if (breach) {
      CHECK(end.what == "rolled_back");
      CHECK(Percent(*s) == 0);
      CHECK((*h)[0].action == "ramp.breach");
    } else {
      CHECK(end.what == "done");
      CHECK(end.message.find("reached 25%") == 0);
      CHECK(Percent(*s) == 2500);
      Ramp r = GetRamp(*s);
      CHECK(r.state == RampState::kDone);
      CHECK(r.note == "reached 25%");
      CHECK((*h)[0].action == "ramp.done");
      CHECK((*h)[0].actor == "ramp");
    }
    auto steps = s->History("api", 0);
    REQUIRE(steps.ok());
    int route_sets = 0;
    for (const ChangeRow& c : *steps) route_sets += c.action == "route.set";
    CHECK(route_sets == (breach ? 4 : 3));
  }
}

TEST_CASE("ramp: two stores ticking at once take each step once") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto a = MustOpen(path);
  auto b = MustOpen(path);
  Seed(*a);
  RequireOk(a->StartRamp(Spec(100, 10), kCtx));
  int64_t now = NowMs() + 1;
  std::atomic<int> steps{0};
  std::atomic<int> failures{0};
  for (int window = 0; window < 12; ++window) {
    std::atomic<bool> go{false};
    auto run = [&](Store* s) {
      while (!go) std::this_thread::yield();
      auto t = s->RampTick(now, Counts(50, 0, 50, 0));
      if (!t.ok()) {
        ++failures;
        return;
      }
      for (const RampEvent& e : t->events) steps += e.what == "step";
    };
    std::thread ta(run, a.get()), tb(run, b.get());
    go = true;
    ta.join();
    tb.join();
    now += kEvery;
  }
  CHECK(failures == 0);
  CHECK(steps == 10);
  CHECK(Percent(*a) == 10000);
  Ramp r = GetRamp(*b);
  CHECK(r.state == RampState::kDone);
  CHECK(r.step == 10);
  // Both stores' counts reached the windows they were counted in.
  CHECK(r.last.to_n == 100);
  auto h = a->History("api", 0);
  REQUIRE(h.ok());
  int route_sets = 0, done = 0;
  for (const ChangeRow& c : *h) {
    route_sets += c.action == "route.set";
    done += c.action == "ramp.done";
  }
  CHECK(route_sets == 10);
  CHECK(done == 1);
}

TEST_CASE("ramp pause, resume and abort move between states and refuse the wrong one") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  CHECK(s->PauseRamp("api", kCtx).code() == Code::kNotFound);
  CHECK(s->GetRamp("api").status().code() == Code::kNotFound);
  int64_t now = 0;
  StartAndFirstStep(*s, Spec(50, 10), &now);
  Tick(*s, now - 1, Counts(7, 0, 7, 0));

  CHECK(s->ResumeRamp("api", kCtx).code() == Code::kConflict);
  RequireOk(s->PauseRamp("api", kCtx));
  Ramp r = GetRamp(*s);
  CHECK(r.state == RampState::kPaused);
  CHECK(r.note == "paused by alice");
  Status twice = s->PauseRamp("api", kCtx);
  CHECK(twice.code() == Code::kConflict);
  CHECK(twice.message().find("already paused") != std::string::npos);
  // A paused ramp is neither advanced nor counted.
  CHECK(Tick(*s, now + 5 * kEvery, Counts(9, 0, 9, 0)).events.empty());
  CHECK(Percent(*s) == 1000);
  CHECK(GetRamp(*s).current.to_n == 7);

  int64_t before_resume = NowMs();
  RequireOk(s->ResumeRamp("api", kCtx));
  r = GetRamp(*s);
  CHECK(r.state == RampState::kRunning);
  CHECK(r.note.empty());
  CHECK(r.current.empty());  // a fresh window
  CHECK(r.next_at_ms >= before_resume + kEvery);
  CHECK(r.next_at_ms <= NowMs() + kEvery);

  RequireOk(s->AbortRamp("api", kCtx));
  r = GetRamp(*s);
  CHECK(r.state == RampState::kAborted);
  CHECK(r.note == "aborted by alice");
  CHECK(Percent(*s) == 1000);  // the percent stays
  for (Status st :
       {s->PauseRamp("api", kCtx), s->ResumeRamp("api", kCtx), s->AbortRamp("api", kCtx)}) {
    CHECK(st.code() == Code::kConflict);
    CHECK(st.message().find("ended") != std::string::npos);
  }
  CHECK(Tick(*s, now + 10 * kEvery, Counts(9, 0, 9, 0)).events.empty());

  auto h = s->History("api", 4);
  REQUIRE(h.ok());
  std::vector<std::string> actions;
  for (const ChangeRow& c : *h) actions.push_back(c.action);
  CHECK(actions ==
        std::vector<std::string>{"ramp.abort", "ramp.resume", "ramp.pause", "route.set"});
  CHECK((*h)[0].actor == "alice");
  CHECK((*h)[0].before["state"] == "running");
  CHECK((*h)[0].after["state"] == "aborted");
}

TEST_CASE("ramp rows do not bump the ruleset version; steps do") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto s = MustOpen(path);
  Seed(*s);
  auto version = [&] {
    auto v = s->RulesetVersion();
    REQUIRE(v.ok());
    return *v;
  };
  const int64_t v0 = version();
  RequireOk(s->StartRamp(Spec(50, 10), kCtx));
  RequireOk(s->PauseRamp("api", kCtx));
  RequireOk(s->ResumeRamp("api", kCtx));
  CHECK(version() == v0);
  // Each ramp row carries the version in effect.
  CHECK(RawInt(path, "SELECT count(*) FROM changes WHERE object_kind = 'ramp' AND ruleset = " +
                         std::to_string(v0)) == 3);
  CHECK(OneEvent(Tick(*s, NowMs() + kEvery + 1)).what == "step");
  CHECK(version() == v0 + 1);
  auto h = s->History("api", 1);
  REQUIRE(h.ok());
  CHECK(RawInt(path, "SELECT ruleset FROM changes WHERE id = " + std::to_string((*h)[0].id)) ==
        v0 + 1);
}

TEST_CASE("ramp state and on_breach are kept in the store as their text") {
  TempDir dir;
  const std::string path = dir.File("s.db");
  auto s = MustOpen(path);
  Seed(*s);
  RampSpec spec = Spec(50, 10);
  spec.on_breach = OnBreach::kFreeze;
  RequireOk(s->StartRamp(spec, kCtx));
  CHECK(RawInt(path,
               "SELECT count(*) FROM ramps WHERE state = 'running' AND on_breach = "
               "'freeze'") == 1);
  RequireOk(s->PauseRamp("api", kCtx));
  CHECK(RawInt(path, "SELECT count(*) FROM ramps WHERE state = 'paused'") == 1);
  Ramp r = GetRamp(*s);
  CHECK(r.state == RampState::kPaused);
  CHECK(r.spec.on_breach == OnBreach::kFreeze);
}

TEST_CASE("ramp of a removed route is aborted at its next judgement") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  int64_t now = 0;
  StartAndFirstStep(*s, Spec(50, 10), &now);
  RequireOk(s->RemoveRoute("api", kCtx));  // allowed while the ramp runs
  Ramp r = GetRamp(*s);
  CHECK(r.state == RampState::kRunning);
  CHECK(r.percent_bp == -1);
  RampEvent e = OneEvent(Tick(*s, now, Counts(5, 0, 5, 0)));
  CHECK(e.what == "aborted");
  r = GetRamp(*s);
  CHECK(r.state == RampState::kAborted);
  CHECK(r.note == "route removed");
  auto h = s->History("api", 1);
  REQUIRE(h.ok());
  CHECK((*h)[0].action == "ramp.abort");
  CHECK((*h)[0].actor == "ramp");
}

TEST_CASE("revert of a ramp event is refused and points at ramp abort") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  RequireOk(s->StartRamp(Spec(50, 10), kCtx));
  auto h = s->History("api", 1);
  REQUIRE(h.ok());
  REQUIRE((*h)[0].action == "ramp.start");
  auto r = s->Revert((*h)[0].id, kCtx);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("ramp event") != std::string::npos);
  CHECK(r.status().message().find("strangler ramp abort api") != std::string::npos);
  CHECK(GetRamp(*s).state == RampState::kRunning);
}

// --- mirror results ------------------------------------------------------------

DiffRecord Record(const std::string& route, int n) {
  DiffRecord d;
  d.route = route;
  d.ts = "2026-11-28T04:13:55.123Z";
  d.request_id = "req-" + std::to_string(n);
  d.method = "GET";
  d.target = "/api/" + std::to_string(n);
  d.primary_backend = "legacy";
  d.mirror_backend = "new";
  d.result = Json{{"equal", false},
                  {"kind", "json"},
                  {"diffs", Json::array({{{"where", "$.n"}, {"primary", n}, {"mirror", n + 1}}})},
                  {"more", 0}};
  return d;
}

TEST_CASE("mirror results: tallies add up, mismatches are kept newest first up to keep_diffs") {
  TempDir dir;
  auto s = MustOpen(dir.File("s.db"));
  Seed(*s);
  Route r = *s->GetRoute("api");
  r.to = "legacy";
  r.mirror = "new";
  r.keep_diffs = 3;
  RequireOk(s->SetRoute(r, kCtx));
  auto v = s->RulesetVersion();
  REQUIRE(v.ok());

  std::vector<DiffRecord> first, second;
  for (int i = 0; i < 2; ++i) first.push_back(Record("api", i));
  for (int i = 2; i < 6; ++i) second.push_back(Record("api", i));
  for (int i = 0; i < 105; ++i) second.push_back(Record("gone", i));  // no such route: 100 kept
  RequireOk(s->RecordMirrorResults({{"api", MirrorTally{5, 3, 1, 0}}}, first));
  RequireOk(s->RecordMirrorResults(
      {{"api", MirrorTally{4, 0, 0, 2}}, {"gone", MirrorTally{0, 0, 7, 0}}}, second));

  auto stats = s->ListDiffStats("");
  REQUIRE(stats.ok());
  REQUIRE(stats->size() == 2);
  const DiffStats& api = (*stats)[0];
  CHECK(api.route == "api");
  CHECK(api.tally.compared == 9);
  CHECK(api.tally.equal == 3);
  CHECK(api.tally.dropped == 1);
  CHECK(api.tally.failed == 2);
  CHECK(api.since.size() == 24);
  CHECK(api.last_at >= api.since);
  CHECK((*stats)[1].route == "gone");
  CHECK((*stats)[1].tally.dropped == 7);
  auto one = s->ListDiffStats("gone");
  REQUIRE(one.ok());
  CHECK(one->size() == 1);

  auto kept = s->LatestDiffs("api", 0);
  REQUIRE(kept.ok());
  REQUIRE(kept->size() == 3);
  CHECK((*kept)[0].request_id == "req-5");
  CHECK((*kept)[2].request_id == "req-3");
  CHECK((*kept)[0].result == Record("api", 5).result);
  CHECK((*kept)[0].target == "/api/5");
  CHECK((*kept)[0].primary_backend == "legacy");
  CHECK((*kept)[0].mirror_backend == "new");
  CHECK((*kept)[0].id > (*kept)[1].id);

  auto gone = s->LatestDiffs("gone", 0);
  REQUIRE(gone.ok());
  CHECK(gone->size() == static_cast<size_t>(kDefaultKeepDiffs));
  CHECK(gone->front().request_id == "req-104");

  auto newest = s->LatestDiffs("", 2);
  REQUIRE(newest.ok());
  REQUIRE(newest->size() == 2);
  CHECK(newest->front().route == "gone");

  // Bookkeeping, not rules: no history row, no new version.
  auto v2 = s->RulesetVersion();
  REQUIRE(v2.ok());
  CHECK(*v2 == *v);
  auto h = s->History("", 1);
  REQUIRE(h.ok());
  CHECK((*h)[0].action == "route.set");
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
