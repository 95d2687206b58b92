#include "websocket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "wire.h"

namespace strangler {
namespace e2e {

namespace {

constexpr uint64_t kMaxMessageBytes = 64ull << 20;
constexpr int kSendTimeoutMs = 30000;
// After shutting its side down, the backend reads (and drops) what the peer
// still sends for this long, so that close() does not turn into a reset that
// destroys the close frame in flight.
constexpr int kLingerMs = 2000;

uint16_t Be16(const std::string& s, size_t at) {
  return static_cast<uint16_t>((static_cast<uint8_t>(s[at]) << 8) |
                               static_cast<uint8_t>(s[at + 1]));
}

std::string Base64(const unsigned char* data, size_t n) {
  std::string out(4 * ((n + 2) / 3) + 1, '\0');
  int len = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]), data, static_cast<int>(n));
  out.resize(static_cast<size_t>(len));
  return out;
}

// Comma-separated header value containing `token` (case-insensitive).
bool HasToken(const std::optional<std::string>& value, const std::string& token) {
  if (!value) return false;
  std::stringstream ss(*value);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (IEquals(Trim(part), token)) return true;
  }
  return false;
}

struct Frame {
  bool fin = false;
  uint8_t rsv = 0;
  uint8_t opcode = 0;
  bool masked = false;
  std::string payload;  // unmasked
};

enum class Parse { kFrame, kNeedMore, kMalformed, kTooBig };

// Parses one frame at the front of buf; *used = its length on the wire.
Parse ParseFrame(const std::string& buf, Frame* f, size_t* used) {
  if (buf.size() < 2) return Parse::kNeedMore;
  uint8_t b0 = static_cast<uint8_t>(buf[0]);
  uint8_t b1 = static_cast<uint8_t>(buf[1]);
  size_t pos = 2;
  uint64_t len = b1 & 0x7f;
  if (len == 126) {
    if (buf.size() < 4) return Parse::kNeedMore;
    len = Be16(buf, 2);
    pos = 4;
  } else if (len == 127) {
    if (buf.size() < 10) return Parse::kNeedMore;
    len = 0;
    for (size_t i = 2; i < 10; ++i) len = (len << 8) | static_cast<uint8_t>(buf[i]);
    if (len >> 63) return Parse::kMalformed;
    pos = 10;
  }
  if (len > kMaxMessageBytes) return Parse::kTooBig;
  f->masked = (b1 & 0x80) != 0;
  uint8_t key[4] = {0, 0, 0, 0};
  if (f->masked) {
    if (buf.size() < pos + 4) return Parse::kNeedMore;
    std::memcpy(key, buf.data() + pos, 4);
    pos += 4;
  }
  if (buf.size() < pos + len) return Parse::kNeedMore;
  f->fin = (b0 & 0x80) != 0;
  f->rsv = (b0 >> 4) & 0x7;
  f->opcode = b0 & 0x0f;
  f->payload.assign(buf, pos, static_cast<size_t>(len));
  if (f->masked) {
    for (size_t i = 0; i < f->payload.size(); ++i) f->payload[i] ^= static_cast<char>(key[i % 4]);
  }
  *used = pos + static_cast<size_t>(len);
  return Parse::kFrame;
}

bool IsControl(uint8_t opcode) { return (opcode & 0x8) != 0; }

std::string ClosePayload(uint16_t code, const std::string& reason) {
  if (code == 0) return "";
  std::string p;
  p += static_cast<char>(code >> 8);
  p += static_cast<char>(code & 0xff);
  return p + reason;
}

// Sends all bytes before the deadline; false when the peer is gone, the
// deadline passes or *stop turns true. *sent = bytes the kernel took.
bool SendUntil(int fd, const std::string& bytes, int64_t deadline_ms, const std::atomic<bool>* stop,
               size_t* sent) {
  *sent = 0;
  while (*sent < bytes.size()) {
    if ((stop && stop->load()) || NowMs() >= deadline_ms) return false;
    ssize_t n = send(fd, bytes.data() + *sent, bytes.size() - *sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd, POLLOUT, 0};
        poll(&p, 1, 50);
        continue;
      }
      return false;
    }
    *sent += static_cast<size_t>(n);
  }
  return true;
}

const char* Reason(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 426:
      return "Upgrade Required";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Refused";
  }
}

std::string SimpleResponse(int status, const std::string& name, const std::string& body,
                           bool head) {
  return "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) + "\r\nX-Backend: " + name +
         "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + (head ? "" : body);
}

// Why an upgrade request is not a valid opening handshake (RFC 6455 4.2.1);
// empty when it is.
std::string InvalidHandshake(const RecordedRequest& req) {
  if (req.method != "GET") return "the method must be GET";
  if (req.version != "HTTP/1.1") return "the version must be HTTP/1.1";
  if (!HasToken(req.Header("Connection"), "upgrade")) return "Connection has no upgrade token";
  if (req.Header("Sec-WebSocket-Version").value_or("") != "13") {
    return "Sec-WebSocket-Version must be 13";
  }
  std::string key = req.Header("Sec-WebSocket-Key").value_or("");
  bool ok = key.size() == 24 && key.compare(22, 2, "==") == 0;
  for (size_t i = 0; ok && i < 22; ++i) {
    char c = key[i];
    ok = isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/';
  }
  if (!ok) return "Sec-WebSocket-Key must be 16 bytes in base64";
  return "";
}

}  // namespace

std::string WsAcceptKey(const std::string& key) {
  std::string in = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char md[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(in.data()), in.size(), md);
  return Base64(md, sizeof(md));
}

std::string WsEncodeFrame(WsOpcode op, const std::string& payload, WsFin fin,
                          std::optional<uint32_t> mask) {
  std::string f;
  f.reserve(payload.size() + 14);
  f += static_cast<char>((fin == WsFin::kFinal ? 0x80 : 0) | (static_cast<uint8_t>(op) & 0x0f));
  uint8_t m = mask ? 0x80 : 0;
  uint64_t len = payload.size();
  if (len < 126) {
    f += static_cast<char>(m | len);
  } else if (len <= 0xffff) {
    f += static_cast<char>(m | 126);
    f += static_cast<char>(len >> 8);
    f += static_cast<char>(len & 0xff);
  } else {
    f += static_cast<char>(m | 127);
    for (int shift = 56; shift >= 0; shift -= 8) f += static_cast<char>((len >> shift) & 0xff);
  }
  if (!mask) return f + payload;
  char key[4] = {static_cast<char>(*mask >> 24), static_cast<char>(*mask >> 16),
                 static_cast<char>(*mask >> 8), static_cast<char>(*mask)};
  f.append(key, 4);
  size_t at = f.size();
  f += payload;
  for (size_t i = 0; i < payload.size(); ++i) f[at + i] ^= key[i % 4];
  return f;
}

// --- WsEchoBackend -----------------------------------------------------------

// One accepted connection: its read buffer and byte accounting.
class WsEchoBackend::Conn {
 public:
  Conn(WsEchoBackend* be, int fd) : be_(be), fd_(fd) {}
  int fd() const { return fd_; }
  std::string& buf() { return buf_; }
  // Bytes from here on count in this session's bytes_in/bytes_out.
  void set_session(size_t s) { session_ = s; }

  // Reads more bytes into buf(); false on EOF, error, stop, or once
  // deadline_ms (when >= 0) passes.
  bool ReadMore(int64_t deadline_ms = -1) {
    ssize_t n = RecvMore(fd_, &buf_, be_->stop_, deadline_ms);
    if (n <= 0) return false;
    be_->bytes_received_ += static_cast<uint64_t>(n);
    if (session_) {
      std::lock_guard<std::mutex> l(be_->mu_);
      be_->sessions_[*session_].bytes_in += static_cast<uint64_t>(n);
    }
    return true;
  }

  // Counted before sending (see the class comment).
  bool Send(const std::string& bytes) {
    be_->bytes_sent_ += bytes.size();
    if (session_) {
      std::lock_guard<std::mutex> l(be_->mu_);
      be_->sessions_[*session_].bytes_out += bytes.size();
    }
    size_t sent;
    return SendUntil(fd_, bytes, NowMs() + kSendTimeoutMs, &be_->stop_, &sent);
  }

 private:
  WsEchoBackend* be_;
  int fd_;
  std::string buf_;
  std::optional<size_t> session_;
};

WsEchoBackend::WsEchoBackend(std::string name) : name_(std::move(name)) {}

WsEchoBackend::~WsEchoBackend() { Stop(); }

std::string WsEchoBackend::url() const { return "http://127.0.0.1:" + std::to_string(port()); }

std::string WsEchoBackend::name() const {
  std::lock_guard<std::mutex> l(mu_);
  return name_;
}

void WsEchoBackend::set_name(std::string name) {
  std::lock_guard<std::mutex> l(mu_);
  name_ = std::move(name);
}

bool WsEchoBackend::Start() {
  return server_.Start(&stop_, [this](int fd, int index) { Serve(fd, index); });
}

void WsEchoBackend::Stop() {
  if (stop_.exchange(true)) return;
  cv_.notify_all();
  server_.Join();
}

std::vector<RecordedRequest> WsEchoBackend::requests() const {
  std::lock_guard<std::mutex> l(mu_);
  return requests_;
}

std::vector<RecordedRequest> WsEchoBackend::upgrade_requests() const {
  std::lock_guard<std::mutex> l(mu_);
  std::vector<RecordedRequest> v;
  for (const auto& r : requests_) {
    if (HasToken(r.Header("Upgrade"), "websocket")) v.push_back(r);
  }
  return v;
}

std::vector<WsSession> WsEchoBackend::sessions() const {
  std::lock_guard<std::mutex> l(mu_);
  return sessions_;
}

int WsEchoBackend::handshakes() const {
  std::lock_guard<std::mutex> l(mu_);
  return static_cast<int>(sessions_.size());
}

int WsEchoBackend::messages_echoed() const {
  std::lock_guard<std::mutex> l(mu_);
  return messages_echoed_;
}

int WsEchoBackend::open_connections() const {
  std::lock_guard<std::mutex> l(mu_);
  int n = 0;
  for (const auto& s : sessions_) n += s.end == WsEnd::kOpen ? 1 : 0;
  return n;
}

bool WsEchoBackend::WaitForHandshakes(int n, int timeout_ms) const {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms),
                      [&] { return static_cast<int>(sessions_.size()) >= n; });
}

bool WsEchoBackend::WaitForClosed(int n, int timeout_ms) const {
  std::unique_lock<std::mutex> l(mu_);
  return cv_.wait_for(l, std::chrono::milliseconds(timeout_ms), [&] {
    int ended = 0;
    for (const auto& s : sessions_) ended += s.end != WsEnd::kOpen ? 1 : 0;
    return ended >= n;
  });
}

void WsEchoBackend::EndSession(size_t session, WsEnd end) {
  {
    std::lock_guard<std::mutex> l(mu_);
    sessions_[session].end = end;
  }
  cv_.notify_all();
}

void WsEchoBackend::Serve(int fd, int index) {
  Conn c(this, fd);
  std::string& buf = c.buf();
  while (!stop_) {
    // One HTTP request, parsed as RawBackend does.
    size_t he;
    while ((he = buf.find("\r\n\r\n")) == std::string::npos) {
      if (!c.ReadMore()) goto done;
    }
    {
      RecordedRequest req = RequestFromHead(buf.substr(0, he), index);
      size_t body_start = he + 4;
      size_t end = body_start;
      const size_t content_length = ContentLengthOf(req);
      auto expect = req.Header("Expect");
      if (expect && IEquals(*expect, "100-continue") && buf.size() == body_start &&
          (req.chunked || content_length > 0)) {
        if (!c.Send("HTTP/1.1 100 Continue\r\n\r\n")) goto done;
        req.sent_continue = true;
      }
      if (req.chunked) {
        long n;
        while ((n = ParseChunked(buf, body_start, &req.body)) == 0) {
          if (!c.ReadMore()) goto done;
        }
        if (n < 0) {
          c.Send("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
          goto done;
        }
        end = body_start + static_cast<size_t>(n);
      } else {
        while (buf.size() < body_start + content_length) {
          if (!c.ReadMore()) goto done;
        }
        req.body = buf.substr(body_start, content_length);
        end = body_start + content_length;
      }
      req.raw = buf.substr(0, end);
      buf.erase(0, end);

      std::string name;
      {
        std::lock_guard<std::mutex> l(mu_);
        requests_.push_back(req);
        name = name_;
      }
      cv_.notify_all();

      if (!HasToken(req.Header("Upgrade"), "websocket")) {
        if (!c.Send(SimpleResponse(200, name, name, req.method == "HEAD"))) goto done;
        bool close_conn = req.version == "HTTP/1.0" || HasToken(req.Header("Connection"), "close");
        if (close_conn) {
          shutdown(fd, SHUT_WR);
          goto done;
        }
        continue;
      }
      std::string invalid = InvalidHandshake(req);
      int refuse = refuse_status_.load();
      if (!invalid.empty() || refuse != 0) {
        std::string body = invalid.empty() ? name + " refused the upgrade" : invalid;
        if (!c.Send(SimpleResponse(invalid.empty() ? refuse : 400, name, body, false))) goto done;
        continue;
      }

      size_t session;
      {
        std::lock_guard<std::mutex> l(mu_);
        WsSession s;
        s.connection = index;
        s.bytes_in = buf.size();  // frames that came with the handshake
        sessions_.push_back(s);
        session = sessions_.size() - 1;
      }
      cv_.notify_all();
      std::string key = *req.Header("Sec-WebSocket-Key");
      if (!c.Send("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
                  "Upgrade\r\nSec-WebSocket-Accept: " +
                  WsAcceptKey(key) + "\r\nX-Backend: " + name + "\r\n\r\n")) {
        EndSession(session, stop_ ? WsEnd::kStopped : WsEnd::kPeerGone);
        goto done;
      }
      c.set_session(session);
      WsEnd ended = RunSession(c, session);
      if (ended == WsEnd::kCloseHandshake || ended == WsEnd::kProtocolError) {
        shutdown(fd, SHUT_WR);
        EndSession(session, ended);
        int64_t deadline = NowMs() + kLingerMs;
        while (c.ReadMore(deadline)) buf.clear();
      } else {
        EndSession(session, ended);
      }
      goto done;
    }
  }
done:
  close(fd);
}

WsEnd WsEchoBackend::RunSession(Conn& c, size_t s) {
  int message_op = -1;  // opcode of the fragmented message being reassembled; -1: none
  std::string message;
  auto gone = [this] { return stop_ ? WsEnd::kStopped : WsEnd::kPeerGone; };
  auto fail = [&](uint16_t code) {
    {
      std::lock_guard<std::mutex> l(mu_);
      sessions_[s].sent_close = code;
    }
    c.Send(WsEncodeFrame(WsOpcode::kClose, ClosePayload(code, ""), WsFin::kFinal, std::nullopt));
    return WsEnd::kProtocolError;
  };
  auto echo = [&](uint8_t op, const std::string& payload) {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++messages_echoed_;
      ++sessions_[s].messages_echoed;
    }
    cv_.notify_all();
    return c.Send(WsEncodeFrame(static_cast<WsOpcode>(op), payload, WsFin::kFinal, std::nullopt));
  };

  while (true) {
    Frame f;
    size_t used = 0;
    Parse r;
    while ((r = ParseFrame(c.buf(), &f, &used)) == Parse::kNeedMore) {
      if (!c.ReadMore()) return gone();
    }
    if (r == Parse::kTooBig) return fail(1009);
    if (r == Parse::kMalformed) return fail(1002);
    c.buf().erase(0, used);
    {
      std::lock_guard<std::mutex> l(mu_);
      ++sessions_[s].frames_in;
    }
    if (!f.masked || f.rsv != 0) return fail(1002);
    if (IsControl(f.opcode) && (!f.fin || f.payload.size() > 125)) return fail(1002);

    switch (static_cast<WsOpcode>(f.opcode)) {
      case WsOpcode::kClose: {
        if (f.payload.size() == 1) return fail(1002);
        uint16_t code = f.payload.empty() ? 1005 : Be16(f.payload, 0);
        {
          std::lock_guard<std::mutex> l(mu_);
          sessions_[s].received_close = code;
          sessions_[s].sent_close = code;
        }
        std::string reply = f.payload.empty() ? "" : f.payload.substr(0, 2);
        if (!c.Send(WsEncodeFrame(WsOpcode::kClose, reply, WsFin::kFinal, std::nullopt))) {
          return gone();
        }
        return WsEnd::kCloseHandshake;
      }
      case WsOpcode::kPing:
        if (!c.Send(WsEncodeFrame(WsOpcode::kPong, f.payload, WsFin::kFinal, std::nullopt))) {
          return gone();
        }
        break;
      case WsOpcode::kPong:
        break;
      case WsOpcode::kText:
      case WsOpcode::kBinary:
        if (message_op >= 0) return fail(1002);
        if (f.fin) {
          if (!echo(f.opcode, f.payload)) return gone();
        } else {
          message_op = f.opcode;
          message = std::move(f.payload);
        }
        break;
      case WsOpcode::kContinuation:
        if (message_op < 0) return fail(1002);
        if (message.size() + f.payload.size() > kMaxMessageBytes) return fail(1009);
        message += f.payload;
        if (f.fin) {
          if (!echo(static_cast<uint8_t>(message_op), message)) return gone();
          message_op = -1;
          message.clear();
        }
        break;
      default:
        return fail(1002);
    }
  }
}

// --- WsClient ----------------------------------------------------------------

WsClient::WsClient() : rng_(std::random_device{}()) {}

WsClient::WsClient(uint64_t seed) : rng_(seed) {}

WsClient::~WsClient() { Close(); }

bool WsClient::Connect(uint16_t port, int timeout_ms) {
  Close();
  port_ = port;
  fd_ = ConnectLoopbackWithin(port, timeout_ms);
  if (fd_ < 0) error_ = "connect to port " + std::to_string(port) + " failed";
  return fd_ >= 0;
}

void WsClient::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  buf_.clear();
  partial_op_.reset();
  partial_.clear();
  partial_frames_ = 0;
}

bool WsClient::Open(uint16_t port, const std::string& target, const Headers& headers,
                    int timeout_ms) {
  return Connect(port, timeout_ms) && Handshake(target, headers, timeout_ms);
}

bool WsClient::Fill(int64_t deadline_ms) {
  if (fd_ < 0) {
    error_ = "not connected";
    return false;
  }
  while (true) {
    int64_t left = deadline_ms - NowMs();
    if (left <= 0) {
      error_ = "timeout";
      return false;
    }
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(left));
    if (r == 0) continue;
    if (r < 0) {
      if (errno == EINTR) continue;
      error_ = std::string("poll: ") + strerror(errno);
      return false;
    }
    char tmp[65536];
    ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      error_ = std::string("recv: ") + strerror(errno);
      return false;
    }
    if (n == 0) {
      error_ = "eof";
      return false;
    }
    buf_.append(tmp, static_cast<size_t>(n));
    bytes_received_ += static_cast<uint64_t>(n);
    return true;
  }
}

bool WsClient::Handshake(const std::string& target, const Headers& headers, int timeout_ms) {
  response_ = HttpResponse();
  accept_ok_ = false;
  error_.clear();
  auto given = [&](const char* name) { return FindHeader(headers, name).has_value(); };
  if (auto k = FindHeader(headers, "Sec-WebSocket-Key")) {
    key_ = *k;
  } else {
    unsigned char raw[16];
    for (size_t i = 0; i < sizeof(raw); i += 8) {
      uint64_t v = rng_();
      std::memcpy(raw + i, &v, 8);
    }
    key_ = Base64(raw, sizeof(raw));
  }
  std::string req = "GET " + target + " HTTP/1.1\r\n";
  if (!given("Host")) req += "Host: 127.0.0.1:" + std::to_string(port_) + "\r\n";
  if (!given("Upgrade")) req += "Upgrade: websocket\r\n";
  if (!given("Connection")) req += "Connection: Upgrade\r\n";
  if (!given("Sec-WebSocket-Key")) req += "Sec-WebSocket-Key: " + key_ + "\r\n";
  if (!given("Sec-WebSocket-Version")) req += "Sec-WebSocket-Version: 13\r\n";
  for (const auto& kv : headers) req += kv.first + ": " + kv.second + "\r\n";
  req += "\r\n";
  handshake_bytes_sent_ = req.size();
  if (!SendRaw(req)) return false;

  int64_t deadline = NowMs() + timeout_ms;
  size_t he;
  while ((he = buf_.find("\r\n\r\n")) == std::string::npos) {
    if (!Fill(deadline)) {
      error_ += " while reading the handshake response; have: " + Printable(buf_.substr(0, 400));
      return false;
    }
  }
  response_.raw_head = buf_.substr(0, he);
  SplitHead(response_.raw_head, &response_.status_line, &response_.header_lines,
            &response_.headers);
  {
    std::istringstream ss(response_.status_line);
    ss >> response_.version >> response_.status;
  }
  size_t used = he + 4;
  if (response_.status != 101) {
    if (auto cl = response_.Header("Content-Length")) {
      size_t len = std::strtoull(cl->c_str(), nullptr, 10);
      while (buf_.size() < used + len) {
        if (!Fill(deadline)) {
          error_ += " while reading the body of a " + std::to_string(response_.status);
          return false;
        }
      }
      response_.body = buf_.substr(used, len);
      used += len;
    }
  }
  response_.ok = true;
  handshake_bytes_received_ = used;
  buf_.erase(0, used);
  if (response_.status != 101) {
    error_ = "handshake answered: " + Printable(response_.status_line);
    return false;
  }
  accept_ok_ = response_.Header("Sec-WebSocket-Accept").value_or("") == WsAcceptKey(key_);
  if (!HasToken(response_.Header("Upgrade"), "websocket") ||
      !HasToken(response_.Header("Connection"), "upgrade")) {
    error_ =
        "101 without Upgrade: websocket and Connection: Upgrade: " + Printable(response_.raw_head);
    return false;
  }
  if (!accept_ok_) {
    error_ = "wrong Sec-WebSocket-Accept for key " + key_ + ": " + Printable(response_.raw_head);
    return false;
  }
  return true;
}

bool WsClient::SendRaw(const std::string& bytes) {
  if (fd_ < 0) {
    error_ = "not connected";
    return false;
  }
  size_t sent = 0;
  bool ok = SendUntil(fd_, bytes, NowMs() + kSendTimeoutMs, nullptr, &sent);
  bytes_sent_ += sent;
  if (!ok) {
    error_ = "send failed after " + std::to_string(sent) + " of " + std::to_string(bytes.size()) +
             " bytes (peer gone or " + std::to_string(kSendTimeoutMs) + " ms passed)";
  }
  return ok;
}

bool WsClient::SendFrame(WsOpcode op, const std::string& payload, WsFin fin, WsMask mask) {
  std::optional<uint32_t> key;
  if (mask == WsMask::kMasked) key = static_cast<uint32_t>(rng_());
  return SendRaw(WsEncodeFrame(op, payload, fin, key));
}

bool WsClient::SendMessage(WsOpcode op, const std::string& payload, size_t fragment_size) {
  if (fragment_size == 0 || payload.size() <= fragment_size) {
    return SendFrame(op, payload);
  }
  for (size_t at = 0; at < payload.size(); at += fragment_size) {
    bool last = at + fragment_size >= payload.size();
    if (!SendFrame(at == 0 ? op : WsOpcode::kContinuation, payload.substr(at, fragment_size),
                   last ? WsFin::kFinal : WsFin::kMore)) {
      return false;
    }
  }
  return true;
}

bool WsClient::SendText(const std::string& payload, size_t fragment_size) {
  return SendMessage(WsOpcode::kText, payload, fragment_size);
}

bool WsClient::SendBinary(const std::string& payload, size_t fragment_size) {
  return SendMessage(WsOpcode::kBinary, payload, fragment_size);
}

bool WsClient::SendPing(const std::string& payload) { return SendFrame(WsOpcode::kPing, payload); }

bool WsClient::SendClose(uint16_t code, const std::string& reason) {
  return SendFrame(WsOpcode::kClose, ClosePayload(code, reason));
}

WsMessage WsClient::ReceiveMessage(int timeout_ms) {
  WsMessage m;
  int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    Frame f;
    size_t used = 0;
    Parse r;
    while ((r = ParseFrame(buf_, &f, &used)) == Parse::kNeedMore) {
      if (!Fill(deadline)) {
        m.error = error_ + " while reading a frame; have " + std::to_string(buf_.size()) +
                  " bytes: " + Printable(buf_.substr(0, 40));
        return m;
      }
    }
    if (r != Parse::kFrame) {
      m.error = r == Parse::kTooBig ? "frame over 64 MiB" : "malformed frame length";
      return m;
    }
    buf_.erase(0, used);
    if (f.masked) {
      m.error = "masked frame from the server";
      return m;
    }
    if (f.rsv != 0) {
      m.error = "RSV bits set: " + std::to_string(f.rsv);
      return m;
    }
    if (IsControl(f.opcode) && (!f.fin || f.payload.size() > 125)) {
      m.error = "fragmented or oversized control frame, opcode " + std::to_string(f.opcode);
      return m;
    }
    switch (static_cast<WsOpcode>(f.opcode)) {
      case WsOpcode::kPing:
        if (!SendFrame(WsOpcode::kPong, f.payload)) {
          m.error = error_ + " while answering a ping";
          return m;
        }
        ++pings_answered_;
        continue;
      case WsOpcode::kPong:
        m.ok = true;
        m.opcode = WsOpcode::kPong;
        m.payload = std::move(f.payload);
        m.frames = 1;
        return m;
      case WsOpcode::kClose:
        if (f.payload.size() == 1) {
          m.error = "close frame with a 1-byte payload";
          return m;
        }
        m.ok = true;
        m.opcode = WsOpcode::kClose;
        m.close_code = f.payload.empty() ? 1005 : Be16(f.payload, 0);
        m.payload = f.payload.size() > 2 ? f.payload.substr(2) : "";
        m.frames = 1;
        return m;
      case WsOpcode::kText:
      case WsOpcode::kBinary:
        if (partial_op_) {
          m.error = "a new message inside a fragmented one";
          return m;
        }
        if (f.fin) {
          m.ok = true;
          m.opcode = static_cast<WsOpcode>(f.opcode);
          m.payload = std::move(f.payload);
          m.frames = 1;
          return m;
        }
        partial_op_ = static_cast<WsOpcode>(f.opcode);
        partial_ = std::move(f.payload);
        partial_frames_ = 1;
        continue;
      case WsOpcode::kContinuation:
        if (!partial_op_) {
          m.error = "a continuation frame outside a message";
          return m;
        }
        partial_ += f.payload;
        ++partial_frames_;
        if (!f.fin) continue;
        m.ok = true;
        m.opcode = *partial_op_;
        m.payload = std::move(partial_);
        m.frames = partial_frames_;
        partial_op_.reset();
        partial_.clear();
        partial_frames_ = 0;
        return m;
      default:
        m.error = "reserved opcode " + std::to_string(f.opcode);
        return m;
    }
  }
}

WsMessage WsClient::ReadClose(int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  while (true) {
    int left = static_cast<int>(std::max<int64_t>(1, deadline - NowMs()));
    WsMessage m = ReceiveMessage(left);
    if (!m.ok || m.opcode == WsOpcode::kClose) return m;
  }
}

bool WsClient::WaitForClosed(int timeout_ms) {
  int64_t deadline = NowMs() + timeout_ms;
  while (Fill(deadline)) buf_.clear();
  if (error_ == "eof" || error_.rfind("recv:", 0) == 0) {
    Close();
    return true;
  }
  return false;
}

}  // namespace e2e
}  // namespace strangler
