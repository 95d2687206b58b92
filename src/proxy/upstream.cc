#include "proxy/upstream.h"

#include <unistd.h>

#include <algorithm>
#include <vector>

#include "proxy/fiber.h"
#include "proxy/transport.h"

namespace strangler {

Instance::Instance(std::string host, uint16_t port, int workers, int idle_ms, TlsClientSettings tls)
    : host_(std::move(host)),
      port_(port),
      idle_ms_(idle_ms),
      tls_(std::move(tls)),
      sessions_(tls_.on ? std::make_shared<TlsSessionSlot>() : nullptr),
      health_(HostPortText(host_, port_)),
      probe_(host_, port_, tls_, &health_, [this] { SendWaitersElsewhere(); }),
      idle_(static_cast<size_t>(workers)) {
  // An address literal needs no lookup (getaddrinfo does not block on one).
  if (IsAddressLiteral(host_)) {
    auto r = Resolve(host_, port_);
    if (r.ok()) {
      addr_ = r.value();
      has_addr_ = true;
      literal_ = true;
    }
  }
}

void Instance::RefreshAddress(std::chrono::steady_clock::time_point now) {
  {
    std::lock_guard<std::mutex> lock(addr_mu_);
    if (literal_ || now < next_resolve_) return;
  }
  auto r = Resolve(host_, port_);  // may block: not under the lock
  std::lock_guard<std::mutex> lock(addr_mu_);
  if (r.ok()) {
    addr_ = r.value();
    has_addr_ = true;
    resolve_error_.clear();
    next_resolve_ = now + std::chrono::seconds(30);
  } else {
    // The last address (if any) stays in use until a lookup succeeds.
    resolve_error_ = r.status().message();
    next_resolve_ = now + std::chrono::seconds(5);
  }
}

std::string Instance::ResolveError() const {
  std::lock_guard<std::mutex> lock(addr_mu_);
  if (has_addr_) return "";
  return resolve_error_.empty() ? "'" + host_ + "' not looked up yet" : resolve_error_;
}

Instance::~Instance() {
  for (auto& list : idle_) {
    for (const Idle& c : list) fio::CloseUnregistered(c.fd);
  }
}

void Instance::ExpireLocked(std::deque<Idle>* idle, Clock::time_point now) {
  const auto max_idle = std::chrono::milliseconds(idle_ms_);
  while (!idle->empty() && now - idle->front().since >= max_idle) {
    fio::Close(idle->front().fd);
    idle->pop_front();
    --idle_n_;
    --open_;  // nobody is queued while connections sit idle
  }
}

fio::Parking Instance::GrantFirstLocked(int worker, int fd) {
  Waiter* w = queue_.front();
  w->released = Clock::now();
  queue_.pop_front();
  queued_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
  if (fd >= 0 && w->worker != worker) {
    fio::Disown(fd);
    w->moved = true;
  }
  w->granted = true;
  w->fd = fd;
  return w->parking;
}

void Instance::FreeSlotLocked(fio::Parking* wake) {
  // open_ counts the slot still: it passes to the first queued request as
  // is, or is given back.
  if (!queue_.empty() && open_ <= max_conns()) {
    *wake = GrantFirstLocked(-1, -1);
    return;
  }
  --open_;
}

void Instance::SetMaxConns(int max) {
  std::vector<fio::Parking> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    max_conns_.store(max, std::memory_order_relaxed);
    // A lowered cap bites at once: idle connections over it are closed.
    CloseOverCapLocked();
    // A raised (or removed) cap lets queued requests connect.
    while (!queue_.empty() && UnderCapLocked()) {
      ++open_;
      wake.push_back(GrantFirstLocked(-1, -1));
    }
  }
  for (const fio::Parking& p : wake) fio::Unpark(p);
}

void Instance::SetSettle(std::chrono::milliseconds settle) {
  settle_us_.store(std::chrono::microseconds(settle).count(), std::memory_order_relaxed);
}

Instance::Got Instance::Take(int worker, bool fresh, int* fd) {
  Clock::time_point released;
  Got got;
  {
    std::lock_guard<std::mutex> lock(mu_);
    got = TakeLocked(worker, fresh, fd, &released);
  }
  return got == Got::kPooled ? Settled(released, fd) : got;
}

Instance::Got Instance::Settled(Clock::time_point released, int* fd) {
  const auto settle = this->settle();
  if (settle.count() == 0 || fio::QuietUntil(*fd, released + settle)) return Got::kPooled;
  // Bytes came after all: the connection is closed and its slot stays with
  // this request, which connects anew.
  fio::Close(*fd);
  *fd = -1;
  return Got::kSlot;
}

void Instance::CloseOverCapLocked() {
  const int max = max_conns();
  while (max > 0 && open_ > max && idle_n_ > 0) {
    std::deque<Idle>* oldest = nullptr;
    for (std::deque<Idle>& list : idle_) {
      if (!list.empty() && (!oldest || list.front().since < oldest->front().since)) oldest = &list;
    }
    // Closed from here, whichever thread this is (the reload's, when the
    // cap changed): see Take.
    fio::CloseUnregistered(oldest->front().fd);
    oldest->pop_front();
    --idle_n_;
    --open_;
  }
}

Instance::Got Instance::TakeLocked(int worker, bool fresh, int* fd, Clock::time_point* released) {
  CloseOverCapLocked();
  std::deque<Idle>& idle = idle_[static_cast<size_t>(worker)];
  if (!fresh) {
    const auto now = Clock::now();
    const auto settle = this->settle();
    ExpireLocked(&idle, now);
    // The back holds the youngest. The youngest that has been quiet for
    // settle() since its answer; at the cap, the oldest younger one once it
    // has. (Not even the client that a young one just served takes it at
    // once: behind a load balancer one client connection carries many
    // users' requests.)
    auto young = [&] {
      auto it = idle.end();
      while (it != idle.begin() && now - std::prev(it)->since < settle) --it;
      return it;
    };
    auto take = [&](std::deque<Idle>::iterator it) {
      int c = it->fd;
      idle.erase(it);
      --idle_n_;
      if (fio::IdleAndClean(c)) return c;
      fio::Close(c);
      --open_;
      return -1;
    };
    for (auto it = young(); it != idle.begin(); it = young()) {
      if ((*fd = take(std::prev(it))) >= 0) {
        *released = now - settle;  // nothing to wait for
        return Got::kPooled;
      }
    }
    if (!idle.empty() && (!queue_.empty() || !UnderCapLocked())) {
      *released = idle.front().since;
      if ((*fd = take(idle.begin())) >= 0) return Got::kPooled;
    }
  }
  if (!queue_.empty()) return Got::kFull;  // first come, first served
  if (UnderCapLocked()) {
    ++open_;
    return Got::kSlot;
  }
  // At the cap with connections idle in other workers' pools (a socket is
  // registered with the worker that pooled it): the youngest moves here,
  // rather than be closed for a new one (a fragile backend pays for every
  // connect).
  for (std::deque<Idle>& other : idle_) {
    if (other.empty()) continue;
    const Idle moved = other.back();
    other.pop_back();
    --idle_n_;
    if (fresh || Clock::now() - moved.since >= std::chrono::milliseconds(idle_ms_)) {
      fio::CloseUnregistered(
          moved.fd);  // leaves that worker's poll set with it; its slot is taken here
      return Got::kSlot;
    }
    fio::AdoptFrom(moved.poll_set, moved.fd);
    *fd = moved.fd;
    *released = moved.since;
    return Got::kPooled;
  }
  return Got::kFull;
}

Instance::Got Instance::Queue(int worker, int timeout_ms, int* fd) {
  Waiter w;
  w.worker = worker;
  w.parking = fio::PrepareParking();
  {
    std::unique_lock<std::mutex> lock(mu_);
    Clock::time_point released;
    Got got = TakeLocked(worker, false, fd, &released);  // room made since Take
    if (got != Got::kFull) {
      lock.unlock();
      return got == Got::kPooled ? Settled(released, fd) : got;
    }
    queue_.push_back(&w);
    queued_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
    queue_waits_.fetch_add(1, std::memory_order_relaxed);
  }
  fio::Park(w.parking, timeout_ms);
  {
    // Granted or not is decided under the lock: a grant that raced with the
    // timeout is taken.
    std::lock_guard<std::mutex> lock(mu_);
    if (!w.granted) {
      queue_.erase(std::find(queue_.begin(), queue_.end(), &w));
      queued_.store(static_cast<int64_t>(queue_.size()), std::memory_order_relaxed);
      queue_503_.fetch_add(1, std::memory_order_relaxed);
      return Got::kFull;
    }
  }
  if (w.ejected) return Got::kEjected;
  if (w.fd < 0) return Got::kSlot;
  if (w.moved) fio::Adopt(w.fd);
  // Checked as a pooled one is, after the same quiet time: a byte the
  // backend sent since its answer belongs to no request.
  *fd = w.fd;
  return Settled(w.released, fd);
}

int Instance::Connect(int timeout_ms, ConnectError* err, std::string* why) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  int fd = -1;
  ResolvedAddr addr;
  bool has_addr;
  {
    std::lock_guard<std::mutex> lock(addr_mu_);
    has_addr = has_addr_;
    addr = addr_;
  }
  if (has_addr) {
    fd = fio::Connect(addr, timeout_ms, err);
  } else {
    *err = ConnectError::kUnresolved;  // the resolver thread has no address (yet)
  }
  std::string tls_error;
  if (fd >= 0 && tls_.on) {
    // The handshake shares the connect's time.
    const int left_ms = static_cast<int>(std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count()));
    auto ctx = ClientTlsContext(tls_.ca_file, tls_.insecure);
    if (!ctx.ok()) {
      tls_error = ctx.status().message();
    } else if (!fio::TlsConnect(fd, ctx.value(), host_, sessions_, left_ms, &tls_error)) {
      if (tls_error.empty()) tls_error = "TLS handshake failed";
    }
    if (!tls_error.empty()) {
      fio::Close(fd);
      fd = -1;
      *err = ConnectError::kTls;
      if (why) *why = tls_error;
    }
  }
  if (fd >= 0) return fd;
  connect_failures_.fetch_add(1, std::memory_order_relaxed);
  // Before the slot goes back: the waiters an ejection wakes leave the
  // queue, so the slot is not granted to one of them.
  ReportFailure(*err == ConnectError::kTimeout      ? "connect timed out"
                : *err == ConnectError::kUnresolved ? "name not resolved"
                : *err == ConnectError::kRefused    ? "connection refused"
                : *err == ConnectError::kTls        ? tls_error.c_str()
                                                    : "connect failed");
  fio::Parking wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    FreeSlotLocked(&wake);
  }
  fio::Unpark(wake);
  return -1;
}

void Instance::ExpireIdle(int worker) {
  std::vector<fio::Parking> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::deque<Idle>& idle = idle_[static_cast<size_t>(worker)];
    ExpireLocked(&idle, Clock::now());
    // Connections the backend closed (or wrote to) while they idled go now,
    // not when a request would have taken them: they count against the cap
    // and sit in CLOSE_WAIT until closed.
    for (auto it = idle.begin(); it != idle.end();) {
      if (fio::IdleAndClean(it->fd)) {
        ++it;
        continue;
      }
      fio::Close(it->fd);
      it = idle.erase(it);
      --idle_n_;
      wake.emplace_back();
      FreeSlotLocked(&wake.back());
    }
  }
  for (const fio::Parking& p : wake) fio::Unpark(p);
}

void Instance::Release(int worker, int fd) {
  fio::TrimIdle(fd);  // pooled idle: no TLS buffers held meanwhile
  fio::Parking wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!queue_.empty() && open_ <= max_conns()) {
      // Straight to the first queued request, on whichever worker it waits.
      wake = GrantFirstLocked(worker, fd);
    } else if (max_conns() > 0 && open_ > max_conns()) {
      fio::Close(fd);  // the cap was lowered: over it, connections go
      FreeSlotLocked(&wake);
    } else {
      std::deque<Idle>& idle = idle_[static_cast<size_t>(worker)];
      auto now = Clock::now();
      ExpireLocked(&idle, now);
      if (idle.size() < kMaxIdlePerWorker) {
        idle.push_back({fd, now, fio::PollSet()});
        ++idle_n_;
      } else {
        fio::Close(fd);
        --open_;
      }
    }
  }
  fio::Unpark(wake);
}

void Instance::Discard(int fd) {
  fio::Close(fd);
  fio::Parking wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    FreeSlotLocked(&wake);
  }
  fio::Unpark(wake);
}

InstanceLoad Instance::Load() const {
  InstanceLoad l;
  l.instance = (tls_.on ? "https://" : "") + HostPortText(host_, port_);
  l.max_conns = max_conns();
  if (sessions_) {
    l.tls_handshakes = static_cast<int64_t>(sessions_->handshakes());
    l.tls_resumed = static_cast<int64_t>(sessions_->resumed());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    l.open = open_;
    l.idle = idle_n_;
    l.queued = static_cast<int64_t>(queue_.size());
  }
  l.in_use = l.open - l.idle;
  l.queue_waits = queue_waits_.load(std::memory_order_relaxed);
  l.queue_503 = queue_503_.load(std::memory_order_relaxed);
  l.connect_failures = connect_failures_.load(std::memory_order_relaxed);
  HealthView h = health_.View(InstanceHealth::Clock::now());
  l.ejected = h.ejected;
  l.failures = h.failures;
  l.ejections = h.ejections;
  l.ejected_until_ms = h.ejected_until_ms;
  l.last_failure = std::move(h.last_failure);
  l.checked = h.checked;
  l.check_down = h.check_down;
  l.last_check = std::move(h.last_check);
  l.last_check_ms = h.last_check_ms;
  return l;
}

size_t BackendTarget::Pick(uint32_t turn, const Instance* skip, bool* all_down) const {
  const size_t n = instances.size();
  if (n == 1) {  // the common case: one instance, nothing to choose
    *all_down = !instances[0]->health().Usable();
    return 0;
  }
  auto in_rotation = [&](size_t i) {
    return instances[i] != skip && instances[i]->health().Usable();
  };
  size_t usable = 0;
  for (size_t i = 0; i < n; ++i) usable += in_rotation(i);
  if (usable == 0) {
    for (size_t i = 0; i < n; ++i) {
      if (instances[i] == skip && skip->health().Usable()) return i;
    }
    *all_down = true;
    return turn % n;
  }
  // The (turn % usable)-th instance in rotation.
  size_t k = turn % usable;
  for (size_t i = 0; i < n; ++i) {
    if (in_rotation(i) && k-- == 0) return i;
  }
  return turn % n;  // not reached
}

void Instance::ReportFailure(const char* what) {
  if (health_.Failed(what)) SendWaitersElsewhere();
}

void Instance::SendWaitersElsewhere() {
  // Out of rotation: its waiting requests pick again among those still in
  // rotation rather than wait for a slot here.
  std::vector<fio::Parking> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (Waiter* w : queue_) {
      w->granted = true;
      w->ejected = true;
      wake.push_back(w->parking);
    }
    queue_.clear();
    queued_.store(0, std::memory_order_relaxed);
  }
  for (const fio::Parking& p : wake) fio::Unpark(p);
}

void Upstreams::HealthTick() {
  const auto now = InstanceHealth::Clock::now();
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, instance] : instances_) instance->health().Tick(now);
}

Upstreams::~Upstreams() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_resolver_ = true;
  }
  resolve_cv_.notify_all();
  if (resolver_.joinable()) resolver_.join();
}

void Upstreams::ResolveLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_resolver_) {
    std::vector<Instance*> all;
    for (auto& [key, instance] : instances_) all.push_back(instance.get());
    lock.unlock();
    // Instances live as long as this object; lookups block here only.
    for (Instance* i : all) i->RefreshAddress(std::chrono::steady_clock::now());
    lock.lock();
    resolve_cv_.wait_for(lock, std::chrono::milliseconds(250), [this] { return stop_resolver_; });
  }
}

std::shared_ptr<const ProxySnapshot> Upstreams::MakeSnapshot(
    std::shared_ptr<const RouteTable> table) {
  auto snap = std::make_shared<ProxySnapshot>();
  std::unique_lock<std::mutex> lock(mu_);
  if (!resolver_.joinable()) resolver_ = std::thread([this] { ResolveLoop(); });
  std::vector<Instance*> fresh;  // made now: looked up before the snapshot is used
  for (const Backend& b : table->backends()) {
    auto target = std::make_unique<BackendTarget>();
    target->backend = &b;
    if (metrics_) target->metric_id = metrics_->backends().Id(b.name);
    for (const std::string& u : b.urls) {
      auto url = ParseUrl(u);
      if (!url.ok()) continue;  // validated when written; never happens
      TlsClientSettings tls;
      tls.on = url->tls;
      if (tls.on) {
        tls.ca_file = b.ca_file;
        tls.insecure = b.tls_insecure;
      }
      std::string key = url->host + "|" + std::to_string(url->port) + "|" + tls.Key();
      auto& slot = instances_[key];
      // One pool slot per worker, and the Mirror's after them.
      if (!slot) {
        slot = std::make_unique<Instance>(url->host, url->port, workers_ + 1, idle_ms_, tls);
        fresh.push_back(slot.get());
      }
      target->instances.push_back(slot.get());
      target->base_paths.push_back(url->base_path);
    }
    snap->targets.push_back(std::move(target));
  }
  // Caps: an instance listed by several backends takes the smallest.
  std::unordered_map<Instance*, int> caps;
  for (const auto& target : snap->targets) {
    for (Instance* i : target->instances) {
      int max = target->backend->max_conns;
      auto [it, fresh] = caps.emplace(i, max);
      if (!fresh && max > 0 && (it->second == 0 || max < it->second)) it->second = max;
    }
  }
  // An instance no backend lists any more keeps its cap: requests queued
  // for it (their snapshot still lists it) go on waiting their turn.
  for (auto& [instance, max] : caps) instance->SetMaxConns(max);
  // Quiet before reuse: an instance listed by several backends waits the
  // longest any of them asks for.
  std::unordered_map<Instance*, int> quiet;
  for (const auto& target : snap->targets) {
    for (Instance* i : target->instances) {
      int& q = quiet.emplace(i, 0).first->second;
      q = std::max(q, target->backend->reuse_quiet_ms);
    }
  }
  for (auto& [instance, ms] : quiet) instance->SetSettle(std::chrono::milliseconds(ms));
  // Ejection: an instance listed by several backends takes the strictest
  // (the fewest failures, the longest time out).
  std::unordered_map<Instance*, std::pair<int, int>> eject;
  for (const auto& target : snap->targets) {
    const Backend& b = *target->backend;
    for (Instance* i : target->instances) {
      auto [it, fresh] = eject.emplace(i, std::make_pair(b.eject_after, b.eject_for_ms));
      if (fresh) continue;
      auto& [after, for_ms] = it->second;
      if (b.eject_after > 0 && (after == 0 || b.eject_after < after)) after = b.eject_after;
      for_ms = std::max(for_ms, b.eject_for_ms);
    }
  }
  for (auto& [instance, p] : eject) instance->health().SetPolicy(p.first, p.second);
  // Active checks: the first backend listing the instance with a
  // --health-path names it; the shortest interval, and a check has at most
  // that long (or the backend's --timeout-ms when shorter).
  struct Check {
    std::string path;
    int every_ms = 0, timeout_ms = 0;
  };
  std::unordered_map<Instance*, Check> checks;
  for (const auto& target : snap->targets) {
    const Backend& b = *target->backend;
    for (Instance* i : target->instances) {
      Check& c = checks[i];
      if (b.health_path.empty()) continue;
      if (c.path.empty()) c.path = b.health_path;
      c.every_ms = c.every_ms == 0 ? b.health_every_ms : std::min(c.every_ms, b.health_every_ms);
      int t = std::min(b.health_every_ms, b.timeout_ms);
      c.timeout_ms = c.timeout_ms == 0 ? t : std::min(c.timeout_ms, t);
    }
  }
  // Instances no backend lists any more stop being checked.
  for (auto& [key, instance] : instances_) {
    auto it = checks.find(instance.get());
    if (it == checks.end()) {
      instance->ConfigureChecks("", 0, 0);
    } else {
      instance->ConfigureChecks(it->second.path, it->second.every_ms, it->second.timeout_ms);
    }
  }
  const std::vector<Backend>& backends = table->backends();
  auto backend_index = [&](const std::string& name) {
    for (size_t i = 0; i < backends.size(); ++i) {
      if (backends[i].name == name) return static_cast<int>(i);
    }
    return -1;
  };
  for (const Route& r : table->routes()) {
    RouteExtras extras;
    extras.to_backend = backend_index(r.to);
    if (metrics_) extras.metric_id = metrics_->routes().Id(r.name);
    auto& counters = counters_[r.name];
    if (!counters) counters = std::make_unique<RouteCounters>();
    extras.counters = counters.get();
    int mirror = r.mirror.empty() ? -1 : backend_index(r.mirror);
    if (mirror >= 0) {
      auto plan = std::make_shared<MirrorPlan>();
      const Backend& b = backends[static_cast<size_t>(mirror)];
      const BackendTarget& target = *snap->targets[static_cast<size_t>(mirror)];
      plan->route = r.name;
      plan->backend = b.name;
      for (size_t i = 0; i < target.instances.size(); ++i) {
        plan->targets.push_back({target.instances[i], target.base_paths[i]});
      }
      plan->timeout_ms = b.timeout_ms;
      plan->connect_timeout_ms = b.connect_timeout_ms;
      plan->pool_slot = workers_;
      plan->percent_bp = r.mirror_percent_bp;
      plan->writes = r.mirror_writes;
      plan->compare.headers = r.compare_headers;
      for (const std::string& f : r.ignore_fields) {
        auto field = ParseIgnoreField(f);
        if (field.ok()) plan->compare.ignore.push_back(std::move(field.value()));
      }
      extras.mirror = std::move(plan);
    }
    snap->routes.push_back(std::move(extras));
  }
  snap->table = std::move(table);
  // The first lookup of a new instance's name, on the caller's thread
  // (serve's, at start and reload), outside the lock that workers' housekeeping
  // takes; the resolver thread keeps it fresh from then on.
  lock.unlock();
  for (Instance* i : fresh) i->RefreshAddress(std::chrono::steady_clock::now());
  return snap;
}

void Upstreams::ExpireIdle(int worker) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, instance] : instances_) instance->ExpireIdle(worker);
}

std::vector<InstanceLoad> Upstreams::Loads(const ProxySnapshot& snap) {
  std::vector<InstanceLoad> out;
  for (const auto& target : snap.targets) {
    for (const Instance* i : target->instances) {
      out.push_back(i->Load());
      out.back().backend = target->backend->name;
    }
  }
  return out;
}

std::vector<std::pair<std::string, RampCounts>> Upstreams::TakeCounts() {
  std::vector<std::pair<std::string, RampCounts>> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [route, c] : counters_) {
    // A request adds to *_n before *_5xx; taking *_5xx first means a 5xx
    // taken always comes with its request.
    RampCounts n;
    n.to_5xx = c->to_5xx.exchange(0, std::memory_order_acq_rel);
    n.to_n = c->to_n.exchange(0, std::memory_order_acq_rel);
    n.else_5xx = c->else_5xx.exchange(0, std::memory_order_acq_rel);
    n.else_n = c->else_n.exchange(0, std::memory_order_acq_rel);
    if (!n.empty()) out.emplace_back(route, n);
  }
  return out;
}

}  // namespace strangler
