#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include <doctest/doctest.h>

#include "wire.h"

namespace strangler {
namespace e2e {

std::optional<std::string> RecordedRequest::Header(const std::string& name) const {
  return FindHeader(headers, name);
}
int RecordedRequest::HeaderCount(const std::string& name) const {
  return CountHeader(headers, name);
}

RawBackend::RawBackend(std::string name) : name_(std::move(name)) {}

RawBackend::~RawBackend() { Stop(); }

std::string RawBackend::url() const { return "http://127.0.0.1:" + std::to_string(port()); }

bool RawBackend::Start() {
  return server_.Start(&stop_, [this](int fd, int index) { Serve(fd, index); });
}

void RawBackend::Stop() {
  if (stop_.exchange(true)) return;
  // Under the lock, so that a waiter between its check of stop_ and its wait
  // cannot miss the wake-up.
  { std::lock_guard<std::mutex> l(mu_); }
  cv_.notify_all();
  server_.Join();
}

bool RawBackend::Sleep(int ms) {
  std::unique_lock<std::mutex> l(mu_);
  return !cv_.wait_for(l, std::chrono::milliseconds(ms), [this] { return stop_.load(); });
}

void RawBackend::Hold() {
  std::lock_guard<std::mutex> l(mu_);
  held_ = true;
}

void RawBackend::Release() {
  {
    std::lock_guard<std::mutex> l(mu_);
    held_ = false;
  }
  cv_.notify_all();
}

bool RawBackend::WaitUnheld() {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [this] { return !held_ || stop_.load(); });
  return !stop_.load();
}

std::string RawBackend::DefaultResponse(const RecordedRequest& req) const {
  std::string body = name_;
  std::string r = "HTTP/1.1 200 OK\r\nX-Backend: " + name_ +
                  "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  if (req.method != "HEAD") r += body;
  return r;
}

void RawBackend::set_response(std::string raw) {
  std::lock_guard<std::mutex> l(mu_);
  response_ = std::make_shared<const std::string>(std::move(raw));
}

void RawBackend::set_responder(Responder r) {
  std::lock_guard<std::mutex> l(mu_);
  responder_ = std::make_shared<const Responder>(std::move(r));
}

std::vector<RecordedRequest> RawBackend::requests() const {
  std::lock_guard<std::mutex> l(mu_);
  return requests_;
}

size_t RawBackend::request_count() const {
  std::lock_guard<std::mutex> l(mu_);
  return requests_.size();
}

void RawBackend::ClearRequests() {
  std::lock_guard<std::mutex> l(mu_);
  requests_.clear();
}

bool RawBackend::WaitForRequests(size_t n, int timeout_ms) const {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms),
                      [&] { return requests_.size() >= n; });
}

void RawBackend::Serve(int fd, int index) {
  std::string buf;
  // Reads more bytes; false on EOF, error or stop.
  auto read_more = [&]() -> bool { return RecvMore(fd, &buf, stop_, -1) > 0; };

  while (!stop_) {
    size_t he;
    while ((he = buf.find("\r\n\r\n")) == std::string::npos) {
      if (!read_more()) goto done;
    }
    {
      RecordedRequest req = RequestFromHead(buf.substr(0, he), index);
      size_t body_start = he + 4;
      size_t end = body_start;
      const size_t content_length = ContentLengthOf(req);
      auto expect = req.Header("Expect");
      if (expect && IEquals(*expect, "100-continue") && buf.size() == body_start &&
          (req.chunked || content_length > 0)) {
        if (!SendAll(fd, "HTTP/1.1 100 Continue\r\n\r\n")) goto done;
        req.sent_continue = true;
      }
      if (req.chunked) {
        long n;
        while ((n = ParseChunked(buf, body_start, &req.body)) == 0) {
          if (!read_more()) goto done;
        }
        if (n < 0) {
          SendAll(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          goto done;
        }
        end = body_start + static_cast<size_t>(n);
      } else {
        while (buf.size() < body_start + content_length) {
          if (!read_more()) goto done;
        }
        req.body = buf.substr(body_start, content_length);
        end = body_start + content_length;
      }
      req.raw = buf.substr(0, end);
      buf.erase(0, end);

      std::shared_ptr<const std::string> fixed;
      std::shared_ptr<const Responder> responder;
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(req);
        fixed = response_;
        responder = responder_;
      }
      cv_.notify_all();
      int delay = delay_ms_.load();
      if (delay > 0 && !Sleep(delay)) goto done;
      if (!WaitUnheld()) goto done;
      std::string resp = responder ? (*responder)(req) : fixed ? *fixed : DefaultResponse(req);
      if (!SendAll(fd, resp)) goto done;
      auto conn = req.Header("Connection");
      bool close_conn = close_after_.load() || req.version == "HTTP/1.0" ||
                        (conn && Lower(*conn).find("close") != std::string::npos);
      if (close_conn) {
        shutdown(fd, SHUT_WR);
        goto done;
      }
    }
  }
done:
  close(fd);
}

}  // namespace e2e
}  // namespace strangler
