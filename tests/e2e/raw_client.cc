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

std::optional<std::string> HttpResponse::Header(const std::string& name) const {
  return FindHeader(headers, name);
}
int HttpResponse::HeaderCount(const std::string& name) const { return CountHeader(headers, name); }
std::vector<std::string> HttpResponse::HeaderValues(const std::string& name) const {
  std::vector<std::string> v;
  for (const auto& kv : headers) {
    if (IEquals(kv.first, name)) v.push_back(kv.second);
  }
  return v;
}

RawClient::~RawClient() { Close(); }

bool RawClient::Connect(uint16_t port, int timeout_ms) {
  Close();
  port_ = port;
  fd_ = ConnectLoopbackWithin(port, timeout_ms);
  return fd_ >= 0;
}

void RawClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buf_.clear();
}

bool RawClient::Send(const std::string& bytes) {
  if (fd_ < 0) return false;
  return SendAll(fd_, bytes);
}

bool RawClient::Fill(int64_t deadline_ms, std::string* error) {
  if (fd_ < 0) {
    *error = "not connected";
    return false;
  }
  while (true) {
    int64_t left = deadline_ms - NowMs();
    if (left <= 0) {
      *error = "timeout";
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r == 0) continue;
    if (r < 0) {
      if (errno == EINTR) continue;
      *error = std::string("poll: ") + strerror(errno);
      return false;
    }
    char tmp[16384];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      *error = std::string("recv: ") + strerror(errno);
      return false;
    }
    if (n == 0) {
      *error = "eof";
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
}

HttpResponse RawClient::ReadResponse(bool head_request, int timeout_ms) {
  HttpResponse r;
  int64_t deadline = NowMs() + timeout_ms;
  std::string err;
  size_t he;
  while ((he = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!Fill(deadline, &err)) {
      r.error = err + " while reading the response head; have: " + Printable(buf_.substr(0, 400));
      return r;
    }
  }
  r.raw_head = buf_.substr(0, he);
  SplitHead(r.raw_head, &r.status_line, &r.header_lines, &r.headers);
  {
    std::istringstream ss(r.status_line);
    ss >> r.version >> r.status;
  }
  if (r.version.rfind("HTTP/", 0) != 0 || r.status < 100 || r.status > 999) {
    r.error = "bad status line: " + Printable(r.status_line);
    Close();
    return r;
  }
  size_t pos = he + 4;
  if (r.status < 200 || r.status == 204 || r.status == 304 || head_request) {
    buf_.erase(0, pos);
    r.ok = true;
    return r;
  }
  r.chunked = IsChunked(r.headers);
  if (r.chunked) {
    long n;
    while ((n = ParseChunked(buf_, pos, &r.body)) == 0) {
      if (!Fill(deadline, &err)) {
        r.error = err + " while reading a chunked body";
        return r;
      }
    }
    if (n < 0) {
      r.error = "malformed chunked body: " + Printable(buf_.substr(pos, 200));
      Close();
      return r;
    }
    buf_.erase(0, pos + static_cast<size_t>(n));
  } else if (auto cl = r.Header("Content-Length")) {
    size_t len = std::strtoull(cl->c_str(), nullptr, 10);
    while (buf_.size() < pos + len) {
      if (!Fill(deadline, &err)) {
        r.error = err + " while reading a body of " + std::to_string(len) + " bytes, have " +
                  std::to_string(buf_.size() - pos);
        return r;
      }
    }
    r.body = buf_.substr(pos, len);
    buf_.erase(0, pos + len);
  } else {
    while (Fill(deadline, &err)) {
    }
    if (err != "eof") {
      r.error = err + " while reading a body delimited by close";
      return r;
    }
    r.body = buf_.substr(pos);
    Close();
  }
  r.ok = true;
  return r;
}

HttpResponse RawClient::ReadFinal(bool head_request, int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    int left = static_cast<int>(std::max<int64_t>(1, deadline - NowMs()));
    HttpResponse r = ReadResponse(head_request, left);
    if (!r.ok || r.status >= 200) return r;
  }
}

bool RawClient::WaitForClose(int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  std::string err;
  while (Fill(deadline, &err)) {
  }
  if (err == "eof" || err.rfind("recv:", 0) == 0) {
    Close();
    return true;
  }
  return false;
}

HttpResponse RawClient::Request(const std::string& method, const std::string& target,
                                const Headers& headers, const std::string& body, int timeout_ms) {
  if (fd_ < 0 && !Connect(port_)) {
    HttpResponse r;
    r.error = "connect failed";
    return r;
  }
  std::string req = method + " " + target + " HTTP/1.1\r\n";
  bool has_host = false, has_len = false;
  for (const auto& kv : headers) {
    has_host |= IEquals(kv.first, "Host");
    has_len |= IEquals(kv.first, "Content-Length") || IEquals(kv.first, "Transfer-Encoding");
  }
  if (!has_host) req += "Host: 127.0.0.1:" + std::to_string(port_) + "\r\n";
  for (const auto& kv : headers) req += kv.first + ": " + kv.second + "\r\n";
  if (!body.empty() && !has_len) req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  req += "\r\n";
  req += body;
  if (!Send(req)) {
    HttpResponse r;
    r.error = "send failed";
    return r;
  }
  return ReadFinal(method == "HEAD", timeout_ms);
}

}  // namespace e2e
}  // namespace strangler
