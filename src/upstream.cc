#include "upstream.h"

#include <unistd.h>

namespace strangler {

Instance::Instance(std::string host, uint16_t port) : host_(std::move(host)), port_(port) {}

Instance::~Instance() {
  for (int fd : idle_) close(fd);
}

int Instance::Acquire(int timeout_ms, bool* reused, ConnectError* err) {
  ResolvedAddr addr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!idle_.empty()) {
      int fd = idle_.back();
      idle_.pop_back();
      *reused = true;
      *err = ConnectError::kNone;
      return fd;
    }
    if (!resolved_) {
      auto r = Resolve(host_, port_);
      if (!r.ok()) {
        *err = ConnectError::kOther;
        return -1;
      }
      addr_ = r.value();
      resolved_ = true;
    }
    addr = addr_;
  }
  *reused = false;
  return ConnectWithTimeout(addr, timeout_ms, err);
}

void Instance::Release(int fd) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < kMaxIdle) {
      idle_.push_back(fd);
      return;
    }
  }
  close(fd);
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
      if (!slot) slot = std::make_unique<Instance>(url->host, url->port);
      target->instances.push_back(slot.get());
      target->base_paths.push_back(url->base_path);
    }
    snap->targets.push_back(std::move(target));
  }
  snap->table = std::move(table);
  return snap;
}

}  // namespace strangler
