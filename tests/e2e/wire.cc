#include "wire.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <sstream>

namespace strangler {
namespace e2e {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ' || s[b] == '\t')) ++b;
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t')) --e;
  return s.substr(b, e - b);
}

// Splits a head (start line + header lines, no final CRLFCRLF) into its
// start line, raw header lines and parsed headers.
void SplitHead(const std::string& head, std::string* start_line, std::vector<std::string>* lines,
               Headers* headers) {
  size_t p = 0;
  bool first = true;
  while (p <= head.size()) {
    size_t e = head.find("\r\n", p);
    if (e == std::string::npos) e = head.size();
    std::string line = head.substr(p, e - p);
    if (first) {
      *start_line = line;
      first = false;
    } else if (!line.empty()) {
      lines->push_back(line);
      size_t colon = line.find(':');
      if (colon == std::string::npos) {
        headers->emplace_back(line, "");
      } else {
        headers->emplace_back(line.substr(0, colon), Trim(line.substr(colon + 1)));
      }
    }
    p = e + 2;
  }
}

std::optional<std::string> FindHeader(const Headers& h, const std::string& name) {
  for (const auto& kv : h) {
    if (IEquals(kv.first, name)) return kv.second;
  }
  return std::nullopt;
}

int CountHeader(const Headers& h, const std::string& name) {
  int n = 0;
  for (const auto& kv : h) n += IEquals(kv.first, name) ? 1 : 0;
  return n;
}

RecordedRequest RequestFromHead(std::string head, int connection) {
  RecordedRequest req;
  req.connection = connection;
  req.head = std::move(head);
  SplitHead(req.head, &req.request_line, &req.header_lines, &req.headers);
  std::istringstream ss(req.request_line);
  ss >> req.method >> req.target >> req.version;
  req.chunked = IsChunked(req.headers);
  return req;
}

size_t ContentLengthOf(const RecordedRequest& req) {
  if (req.chunked) return 0;
  auto cl = req.Header("Content-Length");
  return cl ? std::strtoull(cl->c_str(), nullptr, 10) : 0;
}

bool IsChunked(const Headers& h) {
  for (const auto& kv : h) {
    if (IEquals(kv.first, "Transfer-Encoding") &&
        Lower(kv.second).find("chunked") != std::string::npos) {
      return true;
    }
  }
  return false;
}

// Parses a chunked body starting at buf[pos]. Returns the bytes it spans
// (> 0), 0 when incomplete, -1 when malformed.
long ParseChunked(const std::string& buf, size_t pos, std::string* body) {
  body->clear();
  size_t p = pos;
  while (true) {
    size_t eol = buf.find("\r\n", p);
    if (eol == std::string::npos) return 0;
    std::string line = buf.substr(p, eol - p);
    size_t semi = line.find(';');
    if (semi != std::string::npos) line = line.substr(0, semi);
    line = Trim(line);
    if (line.empty() || line.size() > 15) return -1;
    for (char c : line) {
      if (!isxdigit(static_cast<unsigned char>(c))) return -1;
    }
    size_t size = std::strtoull(line.c_str(), nullptr, 16);
    p = eol + 2;
    if (size == 0) {
      while (true) {  // trailer section
        size_t e = buf.find("\r\n", p);
        if (e == std::string::npos) return 0;
        if (e == p) return static_cast<long>(p + 2 - pos);
        p = e + 2;
      }
    }
    if (buf.size() < p + size + 2) return 0;
    body->append(buf, p, size);
    if (buf.compare(p + size, 2, "\r\n") != 0) return -1;
    p += size + 2;
  }
}

bool SendAll(int fd, const std::string& bytes) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd, POLLOUT, 0};
        poll(&p, 1, 100);
        continue;
      }
      return false;
    }
    off += static_cast<size_t>(n);
  }
  return true;
}

void SetNoDelay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int ConnectLoopback(uint16_t port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
    close(fd);
    return -1;
  }
  SetNoDelay(fd);
  return fd;
}

int ConnectLoopbackWithin(uint16_t port, int timeout_ms) {
  const int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    int fd = ConnectLoopback(port);
    if (fd >= 0 || NowMs() >= deadline) return fd;
    usleep(10000);
  }
}

int ListenLoopback(uint16_t* port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 || listen(fd, 1024) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(a);
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  *port = ntohs(a.sin_port);
  return fd;
}

ssize_t RecvMore(int fd, std::string* buf, const std::atomic<bool>& stop, int64_t deadline_ms) {
  while (!stop.load()) {
    int wait = 50;
    if (deadline_ms >= 0) {
      int64_t left = deadline_ms - NowMs();
      if (left <= 0) return -1;
      if (left < wait) wait = static_cast<int>(left);
    }
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, wait);
    if (r == 0) continue;
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    char tmp[65536];
    ssize_t n = recv(fd, tmp, sizeof(tmp), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) buf->append(tmp, static_cast<size_t>(n));
    return n;
  }
  return -1;
}

bool LoopbackServer::Start(const std::atomic<bool>* stop, Handler handler) {
  stop_ = stop;
  handler_ = std::move(handler);
  listen_fd_ = ListenLoopback(&port_);
  if (listen_fd_ < 0) return false;
  accept_thread_ = std::thread([this] {
    while (!stop_->load()) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) continue;
      SetNoDelay(fd);
      int index = ++accepted_;
      std::lock_guard<std::mutex> l(mu_);
      threads_.emplace_back([this, fd, index] { handler_(fd, index); });
    }
  });
  return true;
}

void LoopbackServer::Join() {
  if (accept_thread_.joinable()) accept_thread_.join();
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> l(mu_);
    threads.swap(threads_);
  }
  for (auto& t : threads) t.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
}

}  // namespace e2e
}  // namespace strangler
