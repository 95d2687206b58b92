#include "proxy/mirror.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <algorithm>

#include "base/time.h"
#include "http/http_message.h"
#include "http/response_relay.h"
#include "proxy/net.h"
#include "proxy/transport.h"
#include "proxy/upstream.h"

namespace strangler {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kReadBytes = 16 * 1024;
constexpr size_t kMaxHeadBytes = 256 * 1024;

}  // namespace

void ResponseCapture::Reset(const CompareOptions* opts) {
  opts_ = opts;
  response = CapturedResponse{};
  hasher_ = BodyHasher{};
}

void ResponseCapture::OnFinalHead(const MessageParser& parser, const char* base) {
  // A fallback's answer replaces the first one's.
  response = CapturedResponse{};
  hasher_ = BodyHasher{};
  response.status = parser.status();
  for (const HeaderSpan& h : parser.headers()) {
    std::string_view name = h.name.in(base);
    if (IEquals(name, "content-type")) response.content_type.assign(h.value.in(base));
    for (const std::string& want : opts_->headers) {
      if (IEquals(name, want)) response.headers.emplace_back(name, h.value.in(base));
    }
  }
}

void ResponseCapture::OnBodyPiece(const char* data, size_t len) {
  hasher_.Update(data, len);
  response.body_bytes += len;
  size_t room = kMirrorBodyCap - std::min(kMirrorBodyCap, response.body.size());
  if (len > room) response.truncated = true;
  response.body.append(data, std::min(len, room));
  response.body_hash = hasher_.value();
}

Mirror::Mirror(int in_flight, size_t max_jobs, size_t max_bytes)
    : in_flight_(in_flight), max_jobs_(max_jobs), max_bytes_(max_bytes),
      pool_(std::make_unique<WorkerPool>(1, [this](int) { Drain(); }, [this](int) {
        std::function<void()> fn;
        {
          std::lock_guard<std::mutex> lock(housekeeping_mu_);
          fn = housekeeping_;
        }
        if (fn) fn();
      })) {}

void Mirror::SetHousekeeping(std::function<void()> fn) {
  std::lock_guard<std::mutex> lock(housekeeping_mu_);
  housekeeping_ = std::move(fn);
}

Mirror::~Mirror() { Stop(); }

void Mirror::Stop() {
  std::lock_guard<std::mutex> once(stop_mu_);
  std::map<std::string, int64_t> unsent;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ && !pool_) return;
    stopping_ = true;
    for (const MirrorJob& job : queue_) ++unsent[job.plan->route];
    queue_.clear();
    queued_bytes_ = 0;
    // Fibers waiting on these wake up to an error and find stopping_ set.
    for (int fd : busy_fds_) shutdown(fd, SHUT_RDWR);
  }
  {
    std::lock_guard<std::mutex> lock(results_mu_);
    for (const auto& [route, n] : unsent) {
      MirrorTally d;
      d.dropped = n;
      Tally(route, d);
    }
  }
  pool_->Stop();
  pool_->Join();
  std::lock_guard<std::mutex> lock(mu_);
  pool_.reset();
}

bool Mirror::Submit(MirrorJob job) {
  std::string route = job.plan->route;
  {
    std::lock_guard<std::mutex> lock(mu_);
    size_t bytes = job.bytes();
    if (!stopping_ && queue_.size() < max_jobs_ && queued_bytes_ + bytes <= max_bytes_) {
      queued_bytes_ += bytes;
      queue_.push_back(std::move(job));
      // A new fiber only while fewer than in_flight_ drain the queue; those
      // running take this copy when they are done with theirs. Handed over
      // under the lock, so that Stop() cannot free the pool meanwhile.
      if (running_ < in_flight_) {
        ++running_;
        pool_->Submit(-1);
      }
      return true;
    }
  }
  CountDropped(route);
  return false;
}

void Mirror::CountDropped(const std::string& route) {
  std::lock_guard<std::mutex> lock(results_mu_);
  MirrorTally d;
  d.dropped = 1;
  Tally(route, d);
}

void Mirror::Tally(const std::string& route, const MirrorTally& delta) {
  tallies_[route] += delta;
  recent_[route].Add(LivePeriod(std::chrono::steady_clock::now()), delta);
}

void Mirror::TakeResults(std::vector<std::pair<std::string, MirrorTally>>* tallies,
                         std::vector<DiffRecord>* records) {
  std::lock_guard<std::mutex> lock(results_mu_);
  for (auto& [route, t] : tallies_) {
    tallies->emplace_back(route, t);
    taken_[route] += t;
  }
  tallies_.clear();
  for (DiffRecord& r : records_) records->push_back(std::move(r));
  records_.clear();
}

std::map<std::string, MirrorTally> Mirror::Totals() {
  std::lock_guard<std::mutex> lock(results_mu_);
  std::map<std::string, MirrorTally> totals = taken_;
  for (const auto& [route, t] : tallies_) totals[route] += t;
  return totals;
}

std::map<std::string, MirrorTally> Mirror::Recent() {
  const int64_t now = LivePeriod(std::chrono::steady_clock::now());
  std::lock_guard<std::mutex> lock(results_mu_);
  std::map<std::string, MirrorTally> recent;
  for (const auto& [route, slots] : recent_) recent[route] = slots.Sum(now);
  return recent;
}

void Mirror::Drain() {
  ReadBuffer buf(kReadBytes);
  while (true) {
    MirrorJob job;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_ || queue_.empty()) {
        --running_;
        return;
      }
      job = std::move(queue_.front());
      queue_.pop_front();
      queued_bytes_ -= job.bytes();
    }
    Process(job, &buf);
  }
}

bool Mirror::Stopping() {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

bool Mirror::Track(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) return false;
  busy_fds_.insert(fd);
  return true;
}

void Mirror::Untrack(int fd) {
  std::lock_guard<std::mutex> lock(mu_);
  busy_fds_.erase(fd);
}

namespace {

// The copy as the mirror gets it: the request line with the mirror URL's
// base path, the client's forwarded fields, the router's mark, and a length
// of its own for the decoded body.
std::string MirrorRequest(const MirrorJob& job, const std::string& base_path) {
  std::string req;
  req.reserve(job.headers.size() + job.body.size() + 128);
  req.append(job.method).append(" ");
  if (job.target != "*") req.append(base_path);  // OPTIONS * asks the server itself
  req.append(job.target);
  req.append(" HTTP/1.1\r\n").append(job.headers);
  req.append("X-Strangler-Mirror: 1\r\n");
  if (!job.body.empty() || (job.method != "GET" && job.method != "HEAD" &&
                            job.method != "OPTIONS" && job.method != "DELETE")) {
    req.append("Content-Length: ").append(std::to_string(job.body.size())).append("\r\n");
  }
  req.append("\r\n").append(job.body);
  return req;
}

// How reading the mirror's answer ended.
struct MirrorAnswer {
  bool complete = false;
  bool any_byte = false;
  std::string error;  // why not complete
};

// Reads the answer to the copy on fd through `relay` (whose output goes to
// no client) until it is complete, fails, or `left_ms()` is 0.
MirrorAnswer ReadMirrorAnswer(int fd, ResponseRelay* relay, ReadBuffer* buf,
                              const std::function<int()>& left_ms, const std::string& too_slow) {
  MirrorAnswer a;
  buf->rpos = buf->wpos = 0;
  while (true) {
    if (!buf->MakeRoom(relay->in_head(), kMaxHeadBytes)) {
      a.error = "sent a response head over " + std::to_string(kMaxHeadBytes) + " bytes";
      return a;
    }
    int wait_ms = left_ms();
    if (wait_ms == 0) {
      a.error = too_slow;
      return a;
    }
    ssize_t n = fio::Recv(fd, buf->tail(), buf->room(), wait_ms);
    if (n < 0) {
      a.error = errno == ETIMEDOUT ? too_slow : std::string("failed: ") + std::strerror(errno);
      return a;
    }
    if (n == 0) {
      if (a.any_byte && relay->Finish() == ResponseRelay::Event::kDone) {
        a.complete = true;
      } else {
        a.error = a.any_byte ? "cut its answer short" : "closed the connection without answering";
      }
      return a;
    }
    a.any_byte = true;
    buf->wpos += static_cast<size_t>(n);
    size_t used = 0;
    auto ev = relay->Feed(buf->data(), buf->rpos, buf->wpos, &used);
    buf->rpos += used;
    relay->out().clear();  // the copy's answer goes to no client
    if (ev == ResponseRelay::Event::kDone) {
      a.complete = true;
      return a;
    }
    if (ev != ResponseRelay::Event::kNeedMore) {
      a.error = std::string("sent a malformed answer: ") + (relay->error() ? relay->error() : "");
      return a;
    }
  }
}

}  // namespace

// Sends one copy and reads the answer: a pooled connection first, and a
// fresh one if the pooled one turns out to be closed before any answer byte.
void Mirror::Process(MirrorJob& job, ReadBuffer* read_buf) {
  const MirrorPlan& plan = *job.plan;
  if (plan.targets.empty()) return;
  size_t pick = plan.targets.size() == 1
                    ? 0
                    : plan.next.fetch_add(1, std::memory_order_relaxed) % plan.targets.size();
  const MirrorPlan::Target& t = plan.targets[pick];
  const std::string req = MirrorRequest(job, t.base_path);
  const std::string too_slow = "did not answer within " + std::to_string(plan.timeout_ms) + " ms";
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(plan.timeout_ms);
  const std::function<int()> left_ms = [&] {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return static_cast<int>(std::max<int64_t>(ms.count(), 0));
  };
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (Stopping()) {
      CountDropped(plan.route);
      return;
    }
    // A pooled connection first (checked open and clean by Take), a
    // fresh one when that one turned out stale.
    // At the instance's connection cap the copy is not sent: requests
    // come first, and a copy never waits in their queue.
    int fd = -1;
    Instance::Got got = t.instance->Take(plan.pool_slot, attempt > 0, &fd);
    if (got == Instance::Got::kFull) {
      CountDropped(plan.route);
      return;
    }
    bool reused = got == Instance::Got::kPooled;
    if (got == Instance::Got::kSlot) {
      ConnectError err = ConnectError::kNone;
      std::string tls_error;
      const int connect_ms = std::max(std::min(left_ms(), plan.connect_timeout_ms), 1);
      fd = t.instance->Connect(connect_ms, &err, &tls_error);
      if (fd < 0) {
        Finish(job, nullptr,
               err == ConnectError::kTimeout
                   ? "did not accept a connection within " + std::to_string(connect_ms) + " ms"
               : err == ConnectError::kRefused    ? std::string("refused the connection")
               : err == ConnectError::kUnresolved ? "has no address: " + t.instance->ResolveError()
               : err == ConnectError::kTls        ? tls_error
                                                  : std::string("could not be reached"));
        return;
      }
    }
    if (!Track(fd)) {  // stopping
      t.instance->Discard(fd);
      CountDropped(plan.route);
      return;
    }
    MirrorAnswer answer;
    ResponseCapture capture(&plan.compare);
    RelayRequest rr;
    rr.head = job.method == "HEAD";
    ResponseRelay relay;
    relay.Begin(rr, &capture);
    if (fio::SendAll(fd, req.data(), req.size(), std::max(left_ms(), 1))) {
      answer = ReadMirrorAnswer(fd, &relay, read_buf, left_ms, too_slow);
    } else {
      answer.error = errno == ETIMEDOUT ? too_slow : std::string("failed: ") + std::strerror(errno);
    }
    Untrack(fd);
    if (answer.complete) {
      if (relay.Reusable(read_buf->unread())) {
        t.instance->Release(plan.pool_slot, fd);
      } else {
        t.instance->Discard(fd);
      }
      Finish(job, &capture.response, "");
      return;
    }
    t.instance->Discard(fd);
    if (Stopping()) {  // cut off by Stop(): not the mirror's failure
      CountDropped(plan.route);
      return;
    }
    if (reused && !answer.any_byte && left_ms() > 0) continue;  // the pooled connection was stale
    Finish(job, nullptr, answer.error);
    return;
  }
}

void Mirror::Finish(const MirrorJob& job, const CapturedResponse* mirror,
                    const std::string& error) {
  const MirrorPlan& plan = *job.plan;
  DiffRecord rec;
  bool keep = false;
  Comparison c;
  if (mirror != nullptr) c = CompareResponses(job.primary, *mirror, plan.compare);
  std::lock_guard<std::mutex> lock(results_mu_);
  MirrorTally tally;
  if (mirror == nullptr) {
    ++tally.failed;
    rec.result = Json{{"error", "mirror backend '" + plan.backend + "' " + error}};
    keep = true;
  } else {
    ++tally.compared;
    if (c.equal) {
      ++tally.equal;
    } else {
      rec.result = ToJson(c);
      keep = true;
    }
  }
  Tally(plan.route, tally);
  if (!keep || records_.size() >= kMirrorPendingRecords) return;
  rec.route = plan.route;
  AppendRfc3339Ms(job.ts_ms, &rec.ts);
  rec.request_id = job.request_id;
  rec.method = job.method;
  rec.target = job.target;
  rec.primary_backend = job.primary_backend;
  rec.mirror_backend = plan.backend;
  records_.push_back(std::move(rec));
}

}  // namespace strangler
