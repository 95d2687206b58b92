#include "proxy/mirror_copy.h"

#include <utility>

namespace strangler {

bool MirrorCopy::Wanted(const MirrorPlan& plan, std::string_view method, bool has_length,
                        uint64_t content_length, uint64_t draw) {
  if (!plan.writes && method != "GET" && method != "HEAD" && method != "OPTIONS") return false;
  if (plan.percent_bp < kFullPercentBp && static_cast<int>(draw % kFullPercentBp) >= plan.percent_bp) {
    return false;
  }
  if (plan.targets.empty()) return false;
  if (has_length && content_length > kMirrorBodyCap) {
    mirror_->CountDropped(plan.route);  // too big to copy
    return false;
  }
  return true;
}

void MirrorCopy::Begin(std::shared_ptr<const MirrorPlan> plan, std::string_view target,
                       std::string headers) {
  active_ = true;
  plan_ = std::move(plan);
  target_.assign(target);
  headers_ = std::move(headers);
  body_.clear();
  capture_.Reset(&plan_->compare);
}

void MirrorCopy::AddBody(const char* data, size_t len) {
  if (!active_) return;
  if (body_.size() + len > kMirrorBodyCap) {
    active_ = false;  // too big to copy: counted as dropped
    mirror_->CountDropped(plan_->route);
    std::string().swap(body_);
    return;
  }
  body_.append(data, len);
}

void MirrorCopy::Submit(std::string_view method, std::string_view request_id,
                        std::string_view primary_backend, int64_t ts_ms) {
  if (!active_) return;
  active_ = false;
  MirrorJob job;
  job.plan = std::move(plan_);
  job.method.assign(method);
  job.target = std::move(target_);
  job.headers = std::move(headers_);
  job.body = std::move(body_);
  job.request_id.assign(request_id);
  job.primary_backend.assign(primary_backend);
  job.ts_ms = ts_ms;
  job.primary = std::move(capture_.response);
  mirror_->Submit(std::move(job));
  headers_.clear();
  body_.clear();
}

void MirrorCopy::Drop() {
  if (!active_) return;
  active_ = false;
  mirror_->CountDropped(plan_->route);
  plan_.reset();
}

}  // namespace strangler
