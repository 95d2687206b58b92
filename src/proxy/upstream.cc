#include "proxy/upstream.h"

#include <unistd.h>

#include "proxy/fiber.h"

namespace strangler {

Instance::Instance(std::string host, uint16_t port, int workers, int idle_ms)
    : host_(std::move(host)), port_(port), idle_ms_(idle_ms), idle_(static_cast<size_t>(workers)) {}

Instance::~Instance() {
  for (auto& list : idle_) {
    for (const Idle& c : list) close(c.fd);
  }
}

void Instance::Expire(std::deque<Idle>* idle, std::chrono::steady_clock::time_point now) {
  const auto max_idle = std::chrono::milliseconds(idle_ms_);
  while (!idle->empty() && now - idle->front().since >= max_idle) {
    fio::Close(idle->front().fd);
    idle->pop_front();
  }
}

int Instance::Acquire(int worker, int timeout_ms, bool fresh, bool* reused, ConnectError* err) {
  std::deque<Idle>& idle = idle_[static_cast<size_t>(worker)];
  if (!fresh) {
    Expire(&idle, std::chrono::steady_clock::now());
    while (!idle.empty()) {
      int fd = idle.back().fd;
      idle.pop_back();
      if (!fio::IdleAndClean(fd)) {
        fio::Close(fd);
        continue;
      }
      *reused = true;
      *err = ConnectError::kNone;
      return fd;
    }
  }
  *reused = false;
  if (!resolved_.load(std::memory_order_acquire)) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!resolved_.load(std::memory_order_relaxed)) {
      auto r = Resolve(host_, port_);
      if (!r.ok()) {
        *err = ConnectError::kOther;
        return -1;
      }
      addr_ = r.value();
      resolved_.store(true, std::memory_order_release);
    }
  }
  return fio::Connect(addr_, timeout_ms, err);
}

void Instance::ExpireIdle(int worker) {
  Expire(&idle_[static_cast<size_t>(worker)], std::chrono::steady_clock::now());
}

void Instance::Release(int worker, int fd) {
  std::deque<Idle>& idle = idle_[static_cast<size_t>(worker)];
  auto now = std::chrono::steady_clock::now();
  Expire(&idle, now);
  if (idle.size() < kMaxIdlePerWorker) {
    idle.push_back({fd, now});
    return;
  }
  fio::Close(fd);
}

std::shared_ptr<const ProxySnapshot> Upstreams::MakeSnapshot(
    std::shared_ptr<const RouteTable> table) {
  auto snap = std::make_shared<ProxySnapshot>();
  std::lock_guard<std::mutex> lock(mu_);
  for (const Backend& b : table->backends()) {
    auto target = std::make_unique<BackendTarget>();
    target->backend = &b;
    for (const std::string& u : b.urls) {
      auto url = ParseUrl(u);
      if (!url.ok()) continue;  // validated when written; never happens
      std::string key = url->host + "|" + std::to_string(url->port);
      auto& slot = instances_[key];
      // One pool slot per worker, and the Mirror's after them.
      if (!slot) slot = std::make_unique<Instance>(url->host, url->port, workers_ + 1, idle_ms_);
      target->instances.push_back(slot.get());
      target->base_paths.push_back(url->base_path);
    }
    snap->targets.push_back(std::move(target));
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
  return snap;
}

void Upstreams::ExpireIdle(int worker) {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [key, instance] : instances_) instance->ExpireIdle(worker);
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
