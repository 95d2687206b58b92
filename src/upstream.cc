#include "upstream.h"

#include <unistd.h>

#include "fiber.h"

namespace strangler {

Instance::Instance(std::string host, uint16_t port, int workers)
    : host_(std::move(host)), port_(port), idle_(static_cast<size_t>(workers)) {}

Instance::~Instance() {
  for (auto& list : idle_) {
    for (int fd : list) close(fd);
  }
}

int Instance::Acquire(int worker, int timeout_ms, bool fresh, bool* reused, ConnectError* err) {
  std::vector<int>& idle = idle_[static_cast<size_t>(worker)];
  if (!fresh && !idle.empty()) {
    int fd = idle.back();
    idle.pop_back();
    *reused = true;
    *err = ConnectError::kNone;
    return fd;
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

void Instance::Release(int worker, int fd) {
  std::vector<int>& idle = idle_[static_cast<size_t>(worker)];
  if (idle.size() < kMaxIdlePerWorker) {
    idle.push_back(fd);
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
      if (!slot) slot = std::make_unique<Instance>(url->host, url->port, workers_);
      target->instances.push_back(slot.get());
      target->base_paths.push_back(url->base_path);
    }
    snap->targets.push_back(std::move(target));
  }
  snap->table = std::move(table);
  return snap;
}

}  // namespace strangler
