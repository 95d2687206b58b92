#include "control/serve.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <vector>

#include <spdlog/spdlog.h>

#include "base/time.h"
#include "control/admin.h"
#include "control/live_page.h"
#include "control/metrics_page.h"
#include "decisions/decision_log.h"
#include "proxy/net.h"
#include "proxy/proxy.h"
#include "proxy/tls_context.h"
#include "rules/route_table.h"
#include "store/store.h"

namespace strangler {
std::string AdminAddressFile(const std::string& db_path) { return db_path + ".admin"; }

namespace {

// The URL a client on this machine reaches the admin listener by: a
// wildcard address becomes loopback, an IPv6 one goes in brackets.
std::string AdminUrl(const std::string& host, uint16_t port) {
  std::string h = host == "0.0.0.0" || host.empty() ? "127.0.0.1" : host == "::" ? "::1" : host;
  if (h.find(':') != std::string::npos) h = "[" + h + "]";
  return "http://" + h + ":" + std::to_string(port);
}

// Writes `url` to AdminAddressFile whole (a temporary file renamed over it).
Status WriteAdminAddress(const std::string& db_path, const std::string& url) {
  const std::string path = AdminAddressFile(db_path);
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  FILE* f = std::fopen(tmp.c_str(), "w");
  bool ok = f != nullptr && std::fputs((url + "\n").c_str(), f) >= 0;
  if (f != nullptr) ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    return Status::Io("cannot write the admin address to " + path);
  }
  return Status::Ok();
}

// Removes AdminAddressFile if it still holds `url` (another serve on the
// same store may have written its own since).
void RemoveAdminAddress(const std::string& db_path, const std::string& url) {
  const std::string path = AdminAddressFile(db_path);
  FILE* f = std::fopen(path.c_str(), "r");
  if (f == nullptr) return;
  char line[512] = "";
  bool ours = std::fgets(line, sizeof(line), f) != nullptr && url + "\n" == line;
  std::fclose(f);
  if (ours) std::remove(path.c_str());
}

// "HOSTNAME 127.0.0.1:8080 pid 4242": names this serve in the store's
// instance_load rows (several serves may share a store).
std::string ServeId(const std::string& listen_host, uint16_t port) {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) name[0] = '\0';
  return std::string(name[0] ? name : "localhost") + " " + HostPortText(listen_host, port) +
         " pid " + std::to_string(getpid());
}

constexpr int kListenBacklog = 4096;

Result<std::shared_ptr<const RouteTable>> LoadTable(Store* store) {
  auto rules = store->Load();
  if (!rules.ok()) return rules.status();
  return RouteTable::Compile(rules.value());
}

// (device, inode) of the file at `path`, or (0, 0) when there is none;
// *size (when given) its size.
using FileId = std::pair<uint64_t, uint64_t>;
FileId FileIdentity(const std::string& path, off_t* size = nullptr) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return {0, 0};
  if (size != nullptr) *size = st.st_size;
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino)};
}

// Watches the store and swaps in a new snapshot when it changes. A snapshot
// that fails to build is logged once and the previous one keeps serving. The
// store file itself is watched too: deleted, it is reported once and the
// last good rules keep serving; replaced by another file (a restore, a copy
// from another host), the new file is opened and its rules take over once
// they load.
class Reloader {
 public:
  // `identity`: the file's, taken when `store` was opened (a change made
  // before the Reloader exists must not become its starting point).
  Reloader(std::unique_ptr<Store> store, Proxy* proxy, std::string db_path, FileId identity)
      : store_(std::move(store)),
        proxy_(proxy),
        db_path_(std::move(db_path)),
        identity_(identity) {}

  void Poll() {
    // While the path holds no store (gone, or a file that cannot be opened)
    // the last good rules serve and the store still open is not read: it
    // is not what the path says any more, and reading it would clear the
    // error and report it again at the next poll.
    if (!CheckFile()) return;
    if (!store_) return;
    auto dv = store_->DataVersion();
    if (!dv.ok()) {
      Report("cannot read store: " + dv.status().message());
      return;
    }
    if (dv.value() == data_version_ && !failing_ && !force_) return;
    data_version_ = dv.value();
    if (!failing_ && !force_) {
      // Other serves write ramp counts and mirror results too: only a new
      // ruleset version is worth a rebuild.
      auto v = store_->RulesetVersion();
      if (v.ok() && v.value() == proxy_->snapshot()->table->version()) return;
    }
    auto table = LoadTable(store_.get());
    if (!table.ok()) {
      Report("new rules refused, still serving ruleset " +
             std::to_string(proxy_->snapshot()->table->version()) + ": " +
             table.status().message());
      return;
    }
    int64_t old = proxy_->snapshot()->table->version();
    if (table.value()->version() != old || failing_ || force_) {
      proxy_->SetSnapshot(proxy_->upstreams().MakeSnapshot(std::move(table.value())));
      spdlog::info("reloaded rules: ruleset {} -> {}", old, proxy_->snapshot()->table->version());
    }
    if (failing_) spdlog::info("store {} is readable again", db_path_);
    failing_ = false;
    force_ = false;
    last_error_.clear();
  }

  void set_data_version(int64_t v) { data_version_ = v; }
  // Reload errors logged (GET /metrics); any thread.
  uint64_t reload_errors() const { return reload_errors_.load(std::memory_order_relaxed); }

  // Ramps and mirror results, once per tick: counts go to the store about
  // once a second (or when a ramp is due), so that the ramp's serve judges
  // windows that hold every serve's requests.
  void SafetyTick(bool final_flush) {
    for (auto& [route, c] : proxy_->upstreams().TakeCounts()) {
      RampCounts& sum = counts_[route];
      sum.to_n += c.to_n;
      sum.to_5xx += c.to_5xx;
      sum.else_n += c.else_n;
      sum.else_5xx += c.else_5xx;
    }
    proxy_->mirror().TakeResults(&tallies_, &records_);
    if (records_.size() > kMirrorPendingRecords) {
      // Ticks come every --reload-ms, writes once a second: keep the newest
      // mismatches only (the store keeps --keep-diffs of them per route).
      records_.erase(records_.begin(),
                     records_.end() - static_cast<std::ptrdiff_t>(kMirrorPendingRecords));
    }
    if (!store_) return;
    const int64_t now = NowUnixMs();
    const bool flush = final_flush || now >= next_flush_ms_;
    if (flush) next_flush_ms_ = now + kFlushMs;
    if (flush || now >= next_due_ms_) {
      std::vector<std::pair<std::string, RampCounts>> counted(counts_.begin(), counts_.end());
      auto tick = store_->RampTick(now, counted);
      if (!tick.ok()) {
        ReportSafety("cannot advance ramps: " + tick.status().message());
      } else {
        counts_.clear();
        next_due_ms_ = tick->next_due_ms;
        for (const RampEvent& e : tick->events) {
          spdlog::info("ramp {}: {}", e.route, e.message);
          // A step or a rollback is a route change made on this connection,
          // which PRAGMA data_version does not report to itself.
          if (e.what == "step" || e.what == "rolled_back") force_ = true;
        }
        safety_error_.clear();
      }
    }
    if (flush && (!tallies_.empty() || !records_.empty())) {
      Status st = store_->RecordMirrorResults(tallies_, records_);
      if (!st.ok()) {
        ReportSafety("cannot record mirror results (kept for the next try): " + st.message());
        MergeTallies();
      } else {
        tallies_.clear();
        records_.clear();
      }
    }
    if (flush) WriteLoad(now, final_flush);
    if (force_) Poll();
  }

  // Who this serve is in the store's instance_load rows.
  void set_serve_id(std::string id) { serve_id_ = std::move(id); }

 private:
  // True when the file at db_path_ is the store held open (or was just
  // opened in its place); false while there is none to read.
  bool CheckFile() {
    off_t size = 0;
    FileId id = FileIdentity(db_path_, &size);
    if (id.second == 0) {
      Report("store file " + db_path_ + " is gone; still serving ruleset " +
             std::to_string(proxy_->snapshot()->table->version()));
      return false;
    }
    if (id == identity_) return true;
    // Another file now stands at the path: open it (never creating one; an
    // empty file may be a copy still being written, so wait for content).
    if (size == 0) return false;
    auto reopened = Store::Open(db_path_);
    if (!reopened.ok()) {
      Report("store file " + db_path_ +
             " was replaced and cannot be opened: " + reopened.status().message());
      return false;
    }
    spdlog::info("store file {} was replaced; reading rules from the new file", db_path_);
    store_ = std::move(reopened.value());
    identity_ = id;
    data_version_ = -1;
    force_ = true;
    return true;
  }

  // Tallies kept for a retry are summed per route so they cannot pile up.
  void MergeTallies() {
    std::map<std::string, MirrorTally> sum;
    for (const auto& [route, t] : tallies_) sum[route] += t;
    tallies_.assign(sum.begin(), sum.end());
  }

  void ReportSafety(const std::string& error) {
    if (error != safety_error_) spdlog::error("{}", error);
    safety_error_ = error;
  }

  void Report(const std::string& error) {
    failing_ = true;
    if (error != last_error_) {
      spdlog::error("{}", error);
      reload_errors_.fetch_add(1, std::memory_order_relaxed);
    }
    last_error_ = error;
  }

  std::unique_ptr<Store> store_;
  Proxy* proxy_;
  std::string db_path_;
  FileId identity_;
  int64_t data_version_ = -1;
  bool failing_ = false;
  bool force_ = false;
  std::string last_error_;

  // The load of each backend instance, for `backend show` (another
  // process): written when it changed, and at least every kLoadRefreshMs
  // so that readers can tell a running serve's rows from a gone one's. A
  // serve that stops takes its rows away.
  void WriteLoad(int64_t now, bool final_flush) {
    if (final_flush) {
      Status st = store_->DropInstanceLoad(serve_id_);
      if (!st.ok()) spdlog::warn("cannot remove this serve's instance load: {}", st.message());
      return;
    }
    std::vector<InstanceLoad> load = Upstreams::Loads(*proxy_->snapshot());
    if (load == last_load_ && now < next_load_ms_) return;
    Status st = store_->WriteInstanceLoad(serve_id_, now, load);
    if (!st.ok()) {
      ReportSafety("cannot record instance load: " + st.message());
      return;
    }
    last_load_ = std::move(load);
    next_load_ms_ = now + kLoadRefreshMs;
  }

  static constexpr int64_t kFlushMs = 1000;
  static constexpr int64_t kLoadRefreshMs = 3000;
  std::string serve_id_;
  std::vector<InstanceLoad> last_load_;
  int64_t next_load_ms_ = 0;
  std::map<std::string, RampCounts> counts_;
  std::vector<std::pair<std::string, MirrorTally>> tallies_;
  std::vector<DiffRecord> records_;
  int64_t next_flush_ms_ = 0;
  int64_t next_due_ms_ = 0;
  std::string safety_error_;
  std::atomic<uint64_t> reload_errors_{0};
};

}  // namespace

namespace {

// The listener's certificate and key, looked at once a second: a change is
// served to the next handshake; a bad pair is logged once and the old one
// kept.
void CheckTlsFiles(ServerTls* tls) {
  using Clock = std::chrono::steady_clock;
  static Clock::time_point next;
  static std::string last_error;
  const auto now = Clock::now();
  if (now < next) return;
  next = now + std::chrono::seconds(1);
  std::string why;
  switch (tls->CheckFiles(&why)) {
    case ServerTls::Reload::kUnchanged:
      return;
    case ServerTls::Reload::kReloaded:
      last_error.clear();
      spdlog::info("TLS: certificate and key reloaded from {}", tls->cert_file());
      return;
    case ServerTls::Reload::kFailed:
      if (why != last_error) spdlog::warn("TLS: kept the certificate in use: {}", why);
      last_error = why;
      return;
  }
}

}  // namespace

Status RunServe(const ServeOptions& opts) {
  auto hp = ParseHostPort(opts.listen);
  if (!hp.ok()) return hp.status();
  if (opts.reload_ms < 10 || opts.reload_ms > 60000) {
    return Status::Usage("--reload-ms must be 10..60000");
  }
  auto store = Store::Open(opts.db_path);
  if (!store.ok()) return store.status();
  const FileId identity = FileIdentity(opts.db_path);
  auto dv = store.value()->DataVersion();
  auto table = LoadTable(store.value().get());
  if (!table.ok()) {
    return Status::FromCode(table.status().code(), "cannot serve the rules in " + opts.db_path +
                                                       ": " + table.status().message());
  }

  // Signals are taken by sigtimedwait below, never by a handler: block them
  // before any thread starts so that every thread inherits the mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  spdlog::flush_every(std::chrono::seconds(1));  // a thread: after the mask

  std::unique_ptr<ServerTls> tls;
  if (!opts.tls_cert.empty()) {
    auto loaded = ServerTls::Load(opts.tls_cert, opts.tls_key);
    if (!loaded.ok()) return loaded.status();
    tls = std::move(loaded.value());
  }
  auto listen_fd = Listen(hp.value(), kListenBacklog);
  if (!listen_fd.ok()) return listen_fd.status();
  std::unique_ptr<AdminServer> admin;
  if (!opts.admin.empty()) {
    auto ahp = ParseHostPort(opts.admin);
    auto api = ControlApi::Make(opts.db_path, opts.admin_token_file, opts.admin_public_read);
    if (!api.ok()) {
      close(listen_fd.value());
      return api.status();
    }
    auto started = ahp.ok() ? AdminServer::Start(ahp->host, ahp->port, std::move(api.value()))
                            : Result<std::unique_ptr<AdminServer>>(ahp.status());
    if (!started.ok()) {
      close(listen_fd.value());
      return started.status();
    }
    admin = std::move(started.value());
    spdlog::info("admin listening on {}:{}", ahp->host, admin->port());
  }
  LogRotation rotation;
  rotation.max_bytes = static_cast<uint64_t>(opts.log_max_mb * 1024 * 1024);
  rotation.keep = opts.log_keep;
  auto log = DecisionLog::Open(opts.log_path, rotation);
  if (!log.ok()) {
    close(listen_fd.value());
    return log.status();
  }

  ProxyOptions popts;
  if (opts.max_connections > 0) popts.max_connections = opts.max_connections;
  popts.workers = opts.threads;
  popts.max_header_bytes = static_cast<size_t>(opts.max_header_kb) * 1024;
  popts.max_body_bytes = static_cast<uint64_t>(opts.max_body_mb) * 1024 * 1024;
  popts.reject_encoded_slash = opts.encoded_slash == "reject";
  popts.tunnel_idle_ms = opts.tunnel_idle_s * 1000;
  popts.tls = tls.get();
  auto* proxy = new Proxy(popts, log.value().get());
  proxy->upstreams().set_idle_ms(opts.upstream_idle_s * 1000);
  proxy->SetSnapshot(proxy->upstreams().MakeSnapshot(table.value()));
  // /api/v1/live from the first request on (it reads only the proxy).
  if (admin) admin->SetLive([proxy] { return RenderLive(*proxy); });
  proxy->Start(listen_fd.value());
  spdlog::info("listening on {}:{}{} (store {}, ruleset {}, log {})", hp->host,
               LocalPort(listen_fd.value()), tls ? " with TLS" : "", opts.db_path,
               table.value()->version(), opts.log_path);

  std::string admin_url;  // what this serve wrote to AdminAddressFile
  Reloader reloader(std::move(store.value()), proxy, opts.db_path, identity);
  if (dv.ok()) reloader.set_data_version(dv.value());
  reloader.set_serve_id(ServeId(hp->host, LocalPort(listen_fd.value())));
  if (admin) {
    DecisionLog* decisions = log.value().get();
    admin->SetMetrics([proxy, decisions, &reloader] {
      return RenderMetrics(*proxy, *decisions, reloader.reload_errors());
    });
    admin->SetState(AdminServer::State::kReady);
    admin_url = AdminUrl(ParseHostPort(opts.admin)->host, admin->port());
    if (Status st = WriteAdminAddress(opts.db_path, admin_url); !st.ok()) {
      spdlog::warn("{} ('strangler status' needs --admin URL)", st.message());
    }
  }
  timespec tick{opts.reload_ms / 1000, static_cast<long>(opts.reload_ms % 1000) * 1000000L};
  while (true) {
    int sig = sigtimedwait(&stop_signals, nullptr, &tick);
    if (sig == SIGINT || sig == SIGTERM) {
      spdlog::info("signal {}: finishing requests in flight", sig);
      // Load balancers stop sending before the listener closes.
      if (admin) admin->SetState(AdminServer::State::kDraining);
      break;
    }
    reloader.Poll();
    reloader.SafetyTick(false);
    proxy->upstreams().HealthTick();  // ejections and returns, to stderr
    proxy->TrimAfterBurst();          // a burst's memory back to the system
    if (tls) CheckTlsFiles(tls.get());
  }
  bool drained = proxy->Shutdown(opts.drain_s * 1000);
  reloader.SafetyTick(true);
  log.value()->Flush();
  spdlog::info("stopped{}", drained ? "" : " (some connections did not finish in time)");
  spdlog::default_logger()->flush();
  if (admin) {
    admin->SetLive(nullptr);
    RemoveAdminAddress(opts.db_path, admin_url);
  }
  admin.reset();
  if (!drained) {
    // Sessions still running hold the proxy; leave without destructors.
    std::fflush(nullptr);
    _exit(0);
  }
  delete proxy;
  log.value().reset();
  return Status::Ok();
}

}  // namespace strangler
