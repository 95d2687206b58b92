#include "script_backend.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <sstream>

#include "wire.h"

namespace strangler {
namespace e2e {

bool ScriptConn::ReadMore(int64_t deadline_ms) {
  return RecvMore(fd_, &buf_, owner_->stop_, deadline_ms) > 0;
}

bool ScriptConn::ReadRequest(RecordedRequest* req, bool head_only, int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  size_t he;
  while ((he = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!ReadMore(deadline)) return false;
  }
  *req = RequestFromHead(buf_.substr(0, he), index_);
  size_t body_start = he + 4;
  size_t end = body_start;
  if (!head_only) {
    if (req->chunked) {
      long n;
      while ((n = ParseChunked(buf_, body_start, &req->body)) == 0) {
        if (!ReadMore(deadline)) return false;
      }
      if (n < 0) return false;
      end = body_start + static_cast<size_t>(n);
    } else {
      const size_t length = ContentLengthOf(*req);
      while (buf_.size() < body_start + length) {
        if (!ReadMore(deadline)) return false;
      }
      req->body = buf_.substr(body_start, length);
      end = body_start + length;
    }
  }
  req->raw = buf_.substr(0, end);
  buf_.erase(0, end);
  owner_->Record(*req);
  return true;
}

bool ScriptConn::ReadBody(size_t n, std::string* body, int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (buf_.size() < n) {
    if (!ReadMore(deadline)) return false;
  }
  body->assign(buf_, 0, n);
  buf_.erase(0, n);
  return true;
}

bool ScriptConn::Send(const std::string& bytes) { return SendAll(fd_, bytes); }

size_t ScriptConn::Unread() const {
  int n = 0;
  if (ioctl(fd_, FIONREAD, &n) != 0 || n < 0) return 0;
  return static_cast<size_t>(n);
}

bool ScriptConn::WaitForPeerClose(int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  discarded_ += buf_.size();
  buf_.clear();
  while (NowMs() < deadline && !owner_->stopping()) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char tmp[65536];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return true;
    discarded_ += static_cast<size_t>(n);
  }
  return false;
}

void ScriptConn::CloseGracefully(int timeout_ms) {
  shutdown(fd_, SHUT_WR);
  WaitForPeerClose(timeout_ms);
}

void ScriptConn::Reset() {
  // connect(AF_UNSPEC) disconnects a TCP socket; Linux sends a reset for an
  // established connection. (close() would free the fd number too early.)
  sockaddr sa{};
  sa.sa_family = AF_UNSPEC;
  connect(fd_, &sa, sizeof(sa));
}

void ScriptConn::ShutdownWrite() { shutdown(fd_, SHUT_WR); }

bool ScriptConn::stopping() const { return owner_->stopping(); }

void ScriptConn::Sleep(int ms) {
  const int64_t until = NowMs() + ms;
  while (!owner_->stopping() && NowMs() < until) usleep(5000);
}

ScriptBackend::ScriptBackend(Script script) : script_(std::move(script)) {}

ScriptBackend::~ScriptBackend() { Stop(); }

bool ScriptBackend::Start() {
  return server_.Start(&stop_, [this](int fd, int index) { Serve(fd, index); });
}

void ScriptBackend::Serve(int fd, int index) {
  int open = ++open_;
  int seen = max_open_.load();
  while (open > seen && !max_open_.compare_exchange_weak(seen, open)) {
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    fds_.push_back(fd);
  }
  ScriptConn conn(this, fd, index);
  script_(conn);
  shutdown(fd, SHUT_RDWR);
  --open_;
}

void ScriptBackend::Stop() {
  if (stop_.exchange(true)) return;
  server_.Join();
  for (int fd : fds_) close(fd);
  fds_.clear();
}

void ScriptBackend::Record(const RecordedRequest& req) {
  std::lock_guard<std::mutex> l(mu_);
  requests_.push_back(req);
}

std::vector<RecordedRequest> ScriptBackend::requests() const {
  std::lock_guard<std::mutex> l(mu_);
  return requests_;
}

size_t ScriptBackend::request_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return requests_.size();
}

}  // namespace e2e
}  // namespace strangler
