#include "harness.h"

#include <csignal>

#include <doctest/doctest.h>

#include "wire.h"

namespace strangler {
namespace e2e {

void ExpectOnly(const HttpResponse& r, const RawBackend& be, size_t n, const RawBackend& other) {
  INFO("answer:\n" << Printable(r.raw_head));
  CHECK(r.Header("X-Backend") == std::optional<std::string>(be.name()));
  CHECK(be.request_count() == n);
  CHECK_MESSAGE(other.request_count() == 0, "backend " << other.name() << " got a request too");
}

void TwoBackends::ExpectLogged(const Json& line, const RawBackend& be) const {
  INFO("log: " << line.dump());
  CHECK(line["backend"] == be.name());
  if (&be == &fresh) {
    CHECK(line["route"] == "new");
  } else {
    CHECK(line["route"].is_null());
  }
}

void ExpectRefused(Fixture& fx, const std::vector<RawBackend*>& backends,
                   const std::vector<Refusal>& cases) {
  for (const auto& c : cases) {
    INFO("case: " << c.name << ": " << Printable(c.bytes.substr(0, 200)));
    for (RawBackend* be : backends) be->ClearRequests();
    RawClient client;
    REQUIRE(client.Connect(fx.port()));
    REQUIRE(client.Send(c.bytes));
    HttpResponse r = client.ReadFinal(false, kHangGuardMs);
    CHECK_MESSAGE(r.ok, r.error);
    CHECK(r.status == c.status);
    if (client.connected())
      CHECK_MESSAGE(client.WaitForClose(kCloseWaitMs), "connection left open");
    for (RawBackend* be : backends) {
      CHECK_MESSAGE(be->request_count() == 0, "forwarded to " << be->name());
    }
    // The router's own answer is logged as such: reason "refused", no route,
    // no backend (PRODUCT.md, decision log).
    std::optional<std::string> id = r.Header("X-Request-Id");
    REQUIRE_MESSAGE(id.has_value(), "the refusal names no request id");
    std::optional<Json> line = fx.LogLineFor(*id);
    REQUIRE_MESSAGE(line.has_value(), "the refusal is not in the decision log");
    CHECK((*line)["reason"] == "refused");
    CHECK((*line)["backend"].is_null());
    CHECK((*line)["route"].is_null());
    CHECK((*line)["status"] == c.status);
  }
}

Fixture::Fixture() : db_(dir_.File("strangler.db")), log_path_(dir_.File("decisions.log")) {}

Fixture::~Fixture() {
  if (serve_ && serve_->Running()) StopServe(SIGTERM, 5000);
}

RunResult Fixture::Cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {STRANGLER_BIN, "--db", db_};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, {"STRANGLER_DB=" + db_, "STRANGLER_ACTOR=e2e"});
}

RunResult Fixture::MustCli(const std::vector<std::string>& args) {
  RunResult r = Cli(args);
  if (r.exit_code != 0) {
    std::string cmd = "strangler";
    for (const auto& a : args) cmd += " " + a;
    FAIL_CHECK("CLI failed (exit " << r.exit_code << "): " << cmd << "\nstderr: " << r.err
                                   << "\nstdout: " << r.out);
  }
  return r;
}

void Fixture::AddBackend(const std::string& name, const std::string& url,
                         const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"backend", "add", name, url};
  args.insert(args.end(), extra.begin(), extra.end());
  MustCli(args);
}

void Fixture::AddRoute(const std::string& name, const std::vector<std::string>& args) {
  std::vector<std::string> a = {"route", "add", name};
  a.insert(a.end(), args.begin(), args.end());
  MustCli(a);
}

bool Fixture::StartServe(const std::vector<std::string>& extra) {
  if (serve_ && serve_->Running()) return true;
  for (int attempt = 0; attempt < 3; ++attempt) {
    port_ = PickFreePort();
    ++serve_starts_;
    std::vector<std::string> argv = {STRANGLER_BIN, "--db",
                                     db_,           "serve",
                                     "--listen",    "127.0.0.1:" + std::to_string(port_),
                                     "--log",       log_path_,
                                     "--reload-ms", "50"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    std::string tag = "serve" + std::to_string(serve_starts_);
    serve_ = std::make_unique<Process>(argv, std::vector<std::string>{"STRANGLER_DB=" + db_},
                                       dir_.File(tag + ".out"), dir_.File(tag + ".err"));
    if (!serve_->Start()) {
      FAIL_CHECK("could not start " << STRANGLER_BIN);
      return false;
    }
    int64_t deadline = NowMs() + 10000;
    while (NowMs() < deadline) {
      if (!serve_->Running()) break;
      RawClient probe;
      if (probe.Connect(port_, 1)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::string err = serve_->Stderr();
    if (serve_->Running()) {
      serve_->Stop(SIGKILL, 1000);
      FAIL_CHECK("strangler serve did not accept on port " << port_
                                                           << " within 10 s; stderr: " << err);
      return false;
    }
    // Lost a race for the port? Try another one; anything else is a failure.
    if (err.find("in use") == std::string::npos && err.find("bind") == std::string::npos) {
      FAIL_CHECK("strangler serve exited before accepting; stderr: " << err);
      return false;
    }
  }
  FAIL_CHECK("strangler serve could not bind a free port in 3 attempts");
  return false;
}

int Fixture::StopServe(int sig, int timeout_ms) {
  if (!serve_) return -1;
  int st = serve_->Stop(sig, timeout_ms);
  if (st != 0) {
    MESSAGE("strangler serve exit status " << st << "; stderr:\n" << serve_->Stderr());
  }
  return st;
}

std::vector<Json> Fixture::LogLines(std::vector<std::string>* bad_lines) {
  std::vector<Json> out;
  std::string all = ReadFile(log_path_);
  size_t p = 0;
  while (true) {
    size_t e = all.find('\n', p);
    if (e == std::string::npos) break;  // an unterminated last line is still being written
    std::string line = all.substr(p, e - p);
    p = e + 1;
    Json j = Json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      if (bad_lines) bad_lines->push_back(line);
      FAIL_CHECK("decision log line is not a JSON object: " << Printable(line));
      continue;
    }
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<Json> Fixture::WaitForLogLines(size_t n, int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    std::string all = ReadFile(log_path_);
    size_t lines = 0;
    for (char c : all) lines += c == '\n';
    if (lines >= n || NowMs() >= deadline) return LogLines();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<Json> Fixture::StopAndReadLog() {
  int st = StopServe(SIGTERM, 10000);
  CHECK_MESSAGE(st == 0, "strangler serve did not exit 0 on SIGTERM");
  return LogLines();
}

std::map<std::string, Json> ByRequestId(const std::vector<Json>& lines) {
  std::map<std::string, Json> m;
  for (const auto& j : lines) {
    if (j.contains("request_id") && j["request_id"].is_string()) m[j["request_id"]] = j;
  }
  return m;
}

HttpResponse GetMetrics(uint16_t admin) {
  HttpResponse r;
  PollUntil([&] {
    RawClient c;
    if (!c.Connect(admin)) return false;
    r = c.Get("/metrics", {}, kHangGuardMs);
    return r.ok && r.status != 503;
  });
  REQUIRE_MESSAGE(r.ok, r.error);
  REQUIRE(r.status == 200);
  return r;
}

Json ShownInstance(Fixture& fx, const std::string& backend, const std::string& instance) {
  RunResult r = fx.Cli({"backend", "show", backend, "--json"});
  if (r.exit_code != 0) return nullptr;
  Json j = Json::parse(r.out, nullptr, false);
  if (j.is_discarded() || !j.contains("load")) return nullptr;
  for (const Json& row : j["load"]) {
    if (row["instance"] == instance) return row;
  }
  return nullptr;
}

std::optional<Json> Fixture::LogLineFor(const std::string& request_id, int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    std::string all = ReadFile(log_path_);
    if (all.find(request_id) != std::string::npos) {
      for (auto& j : LogLines()) {
        if (j.contains("request_id") && j["request_id"] == request_id) return j;
      }
    }
    if (NowMs() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

}  // namespace e2e
}  // namespace strangler
