#include "proxy.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "fiber.h"
#include "http_message.h"
#include "net.h"

namespace strangler {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kTickMs = 250;              // client reads wake this often to see shutdown
constexpr size_t kFlushBytes = 64 * 1024;  // buffered output is sent at this size
constexpr size_t kBufferBytes = 64 * 1024;
// After an error answer that closes the connection, what the client still
// sends is read and thrown away for at most this long (each read waiting at
// most kLingerIdleMs), like nginx's lingering close: closing a socket with
// unread input sends a reset, which can destroy the answer before the client
// reads it (a 413 to a client still sending its body).
constexpr int kLingerMs = 2000;
constexpr int kLingerIdleMs = 500;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

int64_t NowUnixMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t NextRandom() {
  thread_local uint64_t state = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<uint64_t>(Clock::now().time_since_epoch().count());
  }();
  // splitmix64
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// 128 random bits as 32 hex digits.
void NewRequestId(std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  uint64_t a = NextRandom(), b = NextRandom();
  out->resize(32);
  for (int i = 0; i < 16; ++i) {
    (*out)[i] = kHex[(a >> (i * 4)) & 15];
    (*out)[16 + i] = kHex[(b >> (i * 4)) & 15];
  }
}

// RFC 9110 7.6.1 plus the legacy ones the contract names.
bool IsHopByHop(std::string_view name) {
  switch (name.size()) {
    case 2: return IEquals(name, "te");
    case 7: return IEquals(name, "trailer") || IEquals(name, "upgrade");
    case 10: return IEquals(name, "connection") || IEquals(name, "keep-alive");
    case 16: return IEquals(name, "proxy-connection");
    case 17: return IEquals(name, "transfer-encoding");
    default: return false;
  }
}

// Tokens of every Connection header, which name more hop-by-hop headers.
class ConnectionTokens {
 public:
  void Reset() { n_ = 0; }
  void Add(std::string_view value) {
    while (!value.empty()) {
      size_t comma = value.find(',');
      std::string_view tok = value.substr(0, comma);
      value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
      while (!tok.empty() && (tok.front() == ' ' || tok.front() == '\t')) tok.remove_prefix(1);
      while (!tok.empty() && (tok.back() == ' ' || tok.back() == '\t')) tok.remove_suffix(1);
      if (!tok.empty() && n_ < kMax) tokens_[n_++] = tok;
    }
  }
  bool Names(std::string_view header) const {
    for (size_t i = 0; i < n_; ++i) {
      if (IEquals(tokens_[i], header)) return true;
    }
    return false;
  }

 private:
  static constexpr size_t kMax = 32;
  std::string_view tokens_[kMax];
  size_t n_ = 0;
};

void AppendHeader(std::string* out, std::string_view name, std::string_view value) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

void AppendChunk(std::string* out, const char* data, size_t len) {
  char hex[20];
  int n = std::snprintf(hex, sizeof(hex), "%zx\r\n", len);
  out->append(hex, static_cast<size_t>(n));
  out->append(data, len);
  out->append("\r\n");
}

const char* StatusText(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 405: return "Method Not Allowed";
    case 413: return "Content Too Large";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

enum class ReadResult { kOk, kEof, kTimeout, kStop, kError };

class Session;

// Receives the upstream response's parse events for a Session.
class ResponseSide : public MessageHandler {
 public:
  explicit ResponseSide(Session* s) : s_(s) {}
  int OnHead() override;
  bool OnBody(const char* data, size_t len) override;

 private:
  Session* s_;
};

class Session : public MessageHandler {
 public:
  Session(Proxy* proxy, int fd) : proxy_(proxy), fd_(fd), resp_side_(this),
        req_(MessageType::kRequest, this), resp_(MessageType::kResponse, &resp_side_) {}
  void Run();

  // Request parser events.
  int OnHead() override { return 0; }
  bool OnBody(const char* data, size_t len) override;

  // Response parser events.
  int OnResponseHead();
  bool OnResponseBody(const char* data, size_t len);

 private:
  enum class Upstream { kOk, kRefused, kTimeout, kFailed };

  ReadResult FillClient(bool idle, Clock::time_point deadline);
  bool ReadHead(int* error_status);
  bool HandleRequest();
  // Collects what the proxy needs from the head; false (with *why) for a
  // head that must be refused with 400.
  bool AnalyseHead(const char** why);
  void BuildUpstreamHead(std::string_view path_and_query);
  void AppendForwardedHeaders(std::string* out, const std::string& host, uint16_t port,
                              bool chunked, bool mirror_copy);
  // --mirror: start capturing a copy of this request, hand it over when the
  // client has its answer.
  void MaybeMirror(std::string_view method);
  void SubmitMirror();
  // A copy begun for a request that did not end in an answer from its
  // backend (a 413, a client gone, a cut response) is counted as dropped.
  void DropUnsentMirror() {
    if (!mirroring_) return;
    mirroring_ = false;
    proxy_->mirror().CountDropped(mirror_plan_->route);
    mirror_plan_.reset();
  }
  void CountRequest();
  bool FlushUpstream(bool final);
  bool SendUpstream() {
    return fio::SendAll(up_fd_, up_out_.data(), up_out_.size(), upstream_timeout());
  }
  int upstream_timeout() const { return target_->backend->timeout_ms; }
  int SendTimeout() const { return proxy_->options().client_send_timeout_ms; }
  bool ConnectUpstream(bool fresh);
  bool Exchange();
  bool FlushClient();
  void SendError(int status, std::string_view message, bool close_after);
  void Linger();
  void LogRequest();
  void Finish502or504(Upstream why);
  // --fallback: may this failed request go to the route's else backend?
  bool CanFallback() const;
  bool FallbackOn5xx() const;
  void FallBack(const std::string& why);
  void UseBackend(int index);

  Proxy* proxy_;
  int fd_;
  std::string client_ip_;
  ResponseSide resp_side_;
  MessageParser req_;
  MessageParser resp_;

  std::vector<char> in_ = std::vector<char>(kBufferBytes);  // client bytes
  size_t rpos_ = 0, wpos_ = 0;
  std::vector<char> up_in_ = std::vector<char>(kBufferBytes);  // upstream bytes
  size_t up_rpos_ = 0, up_wpos_ = 0;
  std::string up_out_;  // to the backend
  std::string out_;     // to the client

  // The request in progress.
  std::shared_ptr<const ProxySnapshot> snap_;
  uint64_t snap_gen_ = 0;
  const BackendTarget* target_ = nullptr;
  Instance* instance_ = nullptr;
  std::vector<HeaderView> header_views_;
  ConnectionTokens conn_tokens_;
  std::string scratch_;
  std::string method_, path_, request_id_, host_, xff_;
  std::string_view route_name_, backend_name_, reason_;
  Decision decision_;
  bool has_request_id_ = false, expect_continue_ = false, http10_ = false;
  bool client_keep_alive_ = true, is_head_ = false, rechunk_req_ = false;
  bool linger_ = false;  // an error answer closes the connection: linger first
  bool rechunk_resp_ = false, replayable_ = true, reused_ = false;
  bool response_started_ = false;  // a response byte reached the client
  bool request_done_ = false;      // the whole request was read from the client
  bool body_too_large_ = false;
  bool has_body_ = false;
  bool fell_back_ = false;
  int fallback_5xx_ = 0;       // the 5xx status that made us fall back
  std::string fallback_why_;
  std::string_view path_and_query_;  // into in_, valid while the request is handled
  // Mirror copy of the request in progress (mirroring_ only while one is made).
  bool mirroring_ = false;
  std::shared_ptr<const MirrorPlan> mirror_plan_;
  std::string mirror_target_, mirror_headers_, mirror_body_;  // copies: in_ is reused for the body
  CapturedResponse captured_;
  BodyHasher captured_hash_;
  uint64_t body_bytes_ = 0;
  bool upstream_has_rid_ = false;
  Upstream upstream_state_ = Upstream::kOk;
  int up_fd_ = -1;
  int status_ = 0;
  int64_t ts_ms_ = 0;
  Clock::time_point t0_, t_upstream_;
  double upstream_ms_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

int ResponseSide::OnHead() { return s_->OnResponseHead(); }
bool ResponseSide::OnBody(const char* data, size_t len) { return s_->OnResponseBody(data, len); }

ReadResult Session::FillClient(bool idle, Clock::time_point deadline) {
  if (rpos_ == wpos_ && !req_.in_head()) rpos_ = wpos_ = 0;
  if (wpos_ == in_.size()) {
    if (!req_.in_head() && rpos_ > 0) {
      std::memmove(in_.data(), in_.data() + rpos_, wpos_ - rpos_);
      wpos_ -= rpos_;
      rpos_ = 0;
    } else {
      in_.resize(in_.size() * 2);  // a head in progress; bounded by max_header_bytes
    }
  }
  while (true) {
    ssize_t n = fio::Recv(fd_, in_.data() + wpos_, in_.size() - wpos_, kTickMs);
    if (n > 0) {
      wpos_ += static_cast<size_t>(n);
      return ReadResult::kOk;
    }
    if (n == 0) return ReadResult::kEof;
    if (errno != ETIMEDOUT) return ReadResult::kError;
    if (idle && proxy_->stopping()) return ReadResult::kStop;
    if (Clock::now() >= deadline) return ReadResult::kTimeout;
  }
}

bool Session::ReadHead(int* error_status) {
  *error_status = 0;
  const ProxyOptions& o = proxy_->options();
  // Idle between requests: idle_timeout_ms. Once a head has begun, all of
  // it must arrive within header_timeout_ms (a slow client cannot hold a
  // connection by trickling a header).
  Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(o.idle_timeout_ms);
  bool head_begun = false;
  while (true) {
    if (rpos_ < wpos_) {
      size_t used = 0;
      auto ev = req_.Execute(in_.data(), rpos_, wpos_, &used);
      rpos_ += used;
      if (ev == MessageParser::Event::kHeadDone) {
        if (req_.target().len > o.max_uri_bytes) {
          *error_status = 414;
          return false;
        }
        if (rpos_ - req_.head_start() > o.max_header_bytes) {
          *error_status = 431;
          return false;
        }
        return true;
      }
      if (ev == MessageParser::Event::kError) {
        *error_status = 400;
        return false;
      }
    }
    if (req_.in_head()) {
      if (req_.target().len > o.max_uri_bytes ||
          (req_.headers().empty() && wpos_ - req_.head_start() > o.max_uri_bytes + 64)) {
        *error_status = 414;
        return false;
      }
      if (wpos_ - req_.head_start() > o.max_header_bytes) {
        *error_status = 431;
        return false;
      }
      if (!head_begun) {
        head_begun = true;
        deadline = Clock::now() + std::chrono::milliseconds(o.header_timeout_ms);
      }
    }
    bool idle = !req_.in_head() && rpos_ == wpos_;
    ReadResult r = FillClient(idle, deadline);
    if (r != ReadResult::kOk) {
      if (r == ReadResult::kTimeout && req_.in_head()) *error_status = 408;
      return false;
    }
  }
}

void Session::Run() {
  SetNoDelay(fd_);
  client_ip_ = PeerAddress(fd_);
  header_views_.reserve(32);
  while (true) {
    int error_status = 0;
    if (!ReadHead(&error_status)) {
      if (error_status != 0) {
        NewRequestId(&request_id_);
        backend_name_ = {};
        SendError(error_status,
                  error_status == 400 ? std::string("malformed request: ") +
                                            (req_.error() ? req_.error() : "parse error")
                                      : StatusText(error_status),
                  true);
      }
      break;
    }
    if (!HandleRequest() || proxy_->stopping()) break;
  }
  DropUnsentMirror();
  if (up_fd_ >= 0) fio::Close(up_fd_);
  if (linger_ && !proxy_->stopping()) Linger();
  fio::Close(fd_);
}

void Session::Linger() {
  if (shutdown(fd_, SHUT_WR) != 0) return;
  const Clock::time_point until = Clock::now() + std::chrono::milliseconds(kLingerMs);
  char sink[16 * 1024];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return;
    ssize_t n = fio::Recv(fd_, sink, sizeof(sink),
                          static_cast<int>(std::min<int64_t>(left, kLingerIdleMs)));
    if (n <= 0) return;  // the client closed, went quiet or failed
  }
}

bool Session::AnalyseHead(const char** why) {
  const char* base = in_.data();
  header_views_.clear();
  conn_tokens_.Reset();
  has_request_id_ = expect_continue_ = false;
  host_.clear();
  xff_.clear();
  int hosts = 0;
  *why = nullptr;
  for (const HeaderSpan& h : req_.headers()) {
    std::string_view name = h.name.in(base), value = h.value.in(base);
    header_views_.push_back({name, value});
    if (IEquals(name, "connection")) {
      conn_tokens_.Add(value);
    } else if (IEquals(name, "x-request-id")) {
      if (!has_request_id_ && !value.empty() && value.size() <= 200) {
        has_request_id_ = true;
        request_id_.assign(value);
      }
    } else if (IEquals(name, "expect")) {
      expect_continue_ = IEquals(value, "100-continue");
    } else if (IEquals(name, "host")) {
      host_.assign(value);
      ++hosts;
    } else if (IEquals(name, "x-forwarded-for")) {
      if (!xff_.empty()) xff_.append(", ");
      xff_.append(value);
    }
  }
  if (!has_request_id_) NewRequestId(&request_id_);
  // RFC 9112 3.2: a 1.1 request needs exactly one Host; never two.
  if (hosts > 1) *why = "more than one Host header";
  if (hosts == 0 && !http10_) *why = "HTTP/1.1 request without a Host header";
  return *why == nullptr;
}

void Session::BuildUpstreamHead(std::string_view path_and_query) {
  up_out_.clear();
  up_out_.append(method_);
  up_out_.push_back(' ');
  up_out_.append(path_and_query);
  up_out_.append(" HTTP/1.1\r\n");
  AppendForwardedHeaders(&up_out_, instance_->host(), instance_->port(), rechunk_req_, false);
  up_out_.append("\r\n");
}

// The client's header fields as a backend gets them, in order and byte for
// byte, less the hop-by-hop ones, plus X-Forwarded-* and X-Request-Id (and a
// Host naming `host`:`port` for an HTTP/1.0 client that sent none). A mirror
// copy also goes without Content-Length: its body is sent decoded, with a
// length of its own.
void Session::AppendForwardedHeaders(std::string* out, const std::string& host, uint16_t port,
                                     bool chunked, bool mirror_copy) {
  const char* base = in_.data();
  bool xff_done = false;
  for (const HeaderSpan& h : req_.headers()) {
    std::string_view name = h.name.in(base), value = h.value.in(base);
    if (IsHopByHop(name) || conn_tokens_.Names(name) || IEquals(name, "expect") ||
        IEquals(name, "x-forwarded-proto") || IEquals(name, "x-forwarded-host") ||
        (mirror_copy && (IEquals(name, "content-length") || IEquals(name, "x-strangler-mirror")))) {
      continue;
    }
    if (IEquals(name, "x-forwarded-for")) {
      if (xff_done) continue;
      xff_done = true;
      out->append(name);
      out->append(": ");
      out->append(xff_);
      out->append(", ");
      out->append(client_ip_);
      out->append("\r\n");
      continue;
    }
    AppendHeader(out, name, value);
  }
  if (chunked) out->append("Transfer-Encoding: chunked\r\n");
  if (!xff_done) AppendHeader(out, "X-Forwarded-For", client_ip_);
  out->append("X-Forwarded-Proto: http\r\n");
  if (!host_.empty()) {
    AppendHeader(out, "X-Forwarded-Host", host_);
  } else {
    // HTTP/1.0 clients may send no Host; HTTP/1.1 backends need one.
    bool v6 = host.find(':') != std::string::npos;
    out->append(v6 ? "Host: [" : "Host: ");
    out->append(host);
    out->append(v6 ? "]:" : ":");
    out->append(std::to_string(port));
    out->append("\r\n");
  }
  if (!has_request_id_) AppendHeader(out, "X-Request-Id", request_id_);
}

bool Session::HandleRequest() {
  t0_ = Clock::now();
  ts_ms_ = NowUnixMs();
  // The shared snapshot is read only when it changed: atomic_load of a
  // shared_ptr takes a lock, the generation is a plain atomic.
  uint64_t gen = proxy_->snapshot_generation();
  if (!snap_ || gen != snap_gen_) {
    snap_gen_ = gen;
    snap_ = proxy_->snapshot();
  }
  const char* base = in_.data();
  std::string_view method = req_.method().in(base);
  std::string_view target = req_.target().in(base);
  method_.assign(method);
  http10_ = req_.http_major() == 1 && req_.http_minor() == 0;
  is_head_ = method == "HEAD";
  client_keep_alive_ = req_.keep_alive() && !http10_ && !req_.upgrade();
  rechunk_req_ = req_.chunked();
  bytes_in_ = rpos_ - req_.head_start();
  bytes_out_ = 0;
  status_ = 0;
  upstream_ms_ = 0;
  response_started_ = false;
  upstream_state_ = Upstream::kOk;
  replayable_ = true;
  request_done_ = false;
  fell_back_ = false;
  fallback_5xx_ = 0;
  fallback_why_.clear();
  DropUnsentMirror();
  const char* bad_head = nullptr;
  if (!AnalyseHead(&bad_head)) {
    backend_name_ = {};
    SendError(400, std::string("malformed request: ") + bad_head, true);
    return false;
  }

  // origin-form "/p?q"; absolute-form "http://host/p?q" is routed on its path.
  std::string_view path_and_query = target;
  if (!target.empty() && target[0] != '/' && target != "*") {
    size_t scheme = target.find("://");
    size_t slash = scheme == std::string_view::npos ? std::string_view::npos
                                                    : target.find('/', scheme + 3);
    path_and_query = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  size_t q = path_and_query.find('?');
  std::string_view raw_path = path_and_query.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : path_and_query.substr(q + 1);
  path_.assign(raw_path);

  RequestView view;
  view.method = method;
  view.path = NormalizePath(raw_path, &scratch_);
  view.query = query;
  view.headers = header_views_.data();
  view.header_count = header_views_.size();
  view.client_ip = client_ip_;
  const RouteTable& table = *snap_->table;
  decision_ = table.Decide(view, NextRandom());
  route_name_ = decision_.route >= 0 ? std::string_view(table.routes()[decision_.route].name)
                                     : std::string_view();
  reason_ = ReasonName(decision_.reason);
  path_and_query_ = path_and_query;
  UseBackend(decision_.backend);

  if (method == "CONNECT") {
    SendError(405, "CONNECT is not supported by this proxy", true);
    return false;
  }
  if (decision_.route >= 0 && snap_->routes[static_cast<size_t>(decision_.route)].mirror) {
    MaybeMirror(method);
  }

  bool has_body = req_.chunked() || (req_.has_content_length() && req_.content_length() > 0);
  has_body_ = has_body;
  body_bytes_ = 0;
  body_too_large_ = false;
  const uint64_t max_body = proxy_->options().max_body_bytes;
  if (max_body > 0 && req_.has_content_length() && req_.content_length() > max_body) {
    SendError(413, "request body over the limit of " + std::to_string(max_body) + " bytes", true);
    return false;
  }
  if (expect_continue_ && has_body && !http10_) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!fio::SendAll(fd_, kContinue.data(), kContinue.size(), SendTimeout())) return false;
  }

  // Stream the body; small requests end up in up_out_ whole, sent once.
  while (true) {
    size_t used = 0;
    auto ev = req_.Execute(in_.data(), rpos_, wpos_, &used);
    rpos_ += used;
    bytes_in_ += used;
    if (ev == MessageParser::Event::kMessageDone) break;
    if (ev == MessageParser::Event::kError) {
      if (body_too_large_) {
        // Part of the body may have reached the backend: that exchange is
        // abandoned, the client is told why.
        SendError(413, "request body over the limit of " +
                           std::to_string(proxy_->options().max_body_bytes) + " bytes", true);
      } else if (upstream_state_ != Upstream::kOk) {
        Finish502or504(upstream_state_);
      } else {
        SendError(400, std::string("malformed request body: ") +
                           (req_.error() ? req_.error() : "parse error"), true);
      }
      return false;
    }
    if (ev == MessageParser::Event::kHeadDone) continue;
    // Need more body: send what we have before blocking on the client.
    if (!up_out_.empty() && !FlushUpstream(false)) {
      Finish502or504(upstream_state_);
      return false;
    }
    ReadResult r = FillClient(
        false, Clock::now() + std::chrono::milliseconds(proxy_->options().idle_timeout_ms));
    if (r != ReadResult::kOk) return false;  // the client went away or stalled mid-body
  }
  request_done_ = true;
  if (rechunk_req_) up_out_.append("0\r\n\r\n");
  if (!FlushUpstream(true)) {
    Finish502or504(upstream_state_);
    return client_keep_alive_;
  }
  bool ok = Exchange();
  up_out_.clear();
  return ok && client_keep_alive_;
}

bool Session::OnBody(const char* data, size_t len) {
  body_bytes_ += len;
  uint64_t max_body = proxy_->options().max_body_bytes;
  if (max_body > 0 && body_bytes_ > max_body) {
    body_too_large_ = true;
    return false;
  }
  if (mirroring_) {
    if (mirror_body_.size() + len > kMirrorBodyCap) {
      mirroring_ = false;  // too big to copy: counted as dropped
      proxy_->mirror().CountDropped(mirror_plan_->route);
      std::string().swap(mirror_body_);
    } else {
      mirror_body_.append(data, len);
    }
  }
  if (rechunk_req_) {
    AppendChunk(&up_out_, data, len);
  } else {
    up_out_.append(data, len);
  }
  if (up_out_.size() >= kFlushBytes) return FlushUpstream(false);
  return true;
}

bool Session::ConnectUpstream(bool fresh) {
  if (up_fd_ >= 0) {
    fio::Close(up_fd_);
    up_fd_ = -1;
  }
  ConnectError err = ConnectError::kNone;
  bool reused = false;
  // `fresh` skips the pool: a pooled socket just failed.
  up_fd_ = instance_->Acquire(fio::WorkerIndex(), upstream_timeout(), fresh, &reused, &err);
  reused_ = reused;
  if (up_fd_ < 0) {
    upstream_state_ = err == ConnectError::kTimeout ? Upstream::kTimeout : Upstream::kRefused;
    return false;
  }
  return true;
}

bool Session::FlushUpstream(bool final) {
  if (up_fd_ < 0) {
    t_upstream_ = Clock::now();
    if (!ConnectUpstream(false)) return false;
  }
  if (!final) replayable_ = false;
  if (!SendUpstream()) {
    bool timed_out = errno == ETIMEDOUT;
    if (reused_ && replayable_ && final && !timed_out) {
      if (!ConnectUpstream(true) || !SendUpstream()) {
        if (upstream_state_ == Upstream::kOk) upstream_state_ = Upstream::kFailed;
        return false;
      }
      return true;
    }
    upstream_state_ = timed_out ? Upstream::kTimeout : Upstream::kFailed;
    return false;
  }
  if (!final) up_out_.clear();
  return true;
}

bool Session::FlushClient() {
  if (out_.empty()) return true;
  response_started_ = true;
  bytes_out_ += out_.size();
  bool ok = fio::SendAll(fd_, out_.data(), out_.size(), SendTimeout());
  out_.clear();
  return ok;
}

int Session::OnResponseHead() {
  const char* base = up_in_.data();
  int status = resp_.status();
  if (status == 101) return -1;  // Upgrade is hop-by-hop and not forwarded
  size_t mark = out_.size();
  out_.append(http10_ ? "HTTP/1.0 " : "HTTP/1.1 ");
  char code[8];
  int n = std::snprintf(code, sizeof(code), "%03d ", status);
  out_.append(code, static_cast<size_t>(n));
  out_.append(resp_.reason().in(base));
  out_.append("\r\n");
  ConnectionTokens tokens;
  for (const HeaderSpan& h : resp_.headers()) {
    if (IEquals(h.name.in(base), "connection")) tokens.Add(h.value.in(base));
  }
  upstream_has_rid_ = false;
  for (const HeaderSpan& h : resp_.headers()) {
    std::string_view name = h.name.in(base);
    if (IsHopByHop(name) || tokens.Names(name)) continue;
    if (IEquals(name, "x-request-id")) upstream_has_rid_ = true;
    AppendHeader(&out_, name, h.value.in(base));
  }
  if (status < 200) {  // interim: pass on to HTTP/1.1 clients, then the real answer
    if (http10_) {
      out_.resize(mark);
    } else {
      out_.append("\r\n");
    }
    return 0;
  }
  if (status >= 500 && FallbackOn5xx()) {
    fallback_5xx_ = status;
    out_.resize(mark);
    return -1;  // not forwarded: the exchange fails and falls back
  }
  status_ = status;
  if (mirroring_) {
    captured_ = CapturedResponse{};
    captured_hash_ = BodyHasher{};
    captured_.status = status;
    for (const HeaderSpan& h : resp_.headers()) {
      std::string_view name = h.name.in(base);
      if (IEquals(name, "content-type")) captured_.content_type.assign(h.value.in(base));
      for (const std::string& want : mirror_plan_->compare.headers) {
        if (IEquals(name, want)) captured_.headers.emplace_back(name, h.value.in(base));
      }
    }
  }
  bool no_body = is_head_ || status == 204 || status == 304;
  rechunk_resp_ = false;
  if (!no_body && !resp_.has_content_length()) {
    if (http10_) {
      client_keep_alive_ = false;  // the end of the body is the end of the connection
    } else {
      out_.append("Transfer-Encoding: chunked\r\n");
      rechunk_resp_ = true;
    }
  }
  if (!upstream_has_rid_) AppendHeader(&out_, "X-Request-Id", request_id_);
  if (proxy_->stopping()) client_keep_alive_ = false;
  if (!client_keep_alive_) out_.append("Connection: close\r\n");
  out_.append("\r\n");
  return is_head_ ? 1 : 0;
}

bool Session::OnResponseBody(const char* data, size_t len) {
  if (mirroring_) {
    captured_hash_.Update(data, len);
    captured_.body_bytes += len;
    captured_.body_hash = captured_hash_.value();
    size_t room = kMirrorBodyCap - std::min(kMirrorBodyCap, captured_.body.size());
    if (len > room) captured_.truncated = true;
    captured_.body.append(data, std::min(len, room));
  }
  if (rechunk_resp_) {
    AppendChunk(&out_, data, len);
  } else {
    out_.append(data, len);
  }
  if (out_.size() >= kFlushBytes) return FlushClient();
  return true;
}

bool Session::Exchange() {
  resp_.Reset();
  up_rpos_ = up_wpos_ = 0;
  out_.clear();
  bool any_byte = false;
  bool retried = false;
  // The backend's timeout bounds its whole answer, from the request sent to
  // the last byte (like Envoy's route timeout): a backend that trickles its
  // body cannot hold the client past it.
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(upstream_timeout());
  while (true) {
    if (up_rpos_ == up_wpos_ && !resp_.in_head()) up_rpos_ = up_wpos_ = 0;
    if (up_wpos_ == up_in_.size()) {
      if (!resp_.in_head() && up_rpos_ > 0) {
        std::memmove(up_in_.data(), up_in_.data() + up_rpos_, up_wpos_ - up_rpos_);
        up_wpos_ -= up_rpos_;
        up_rpos_ = 0;
      } else if (up_in_.size() < proxy_->options().max_header_bytes * 4) {
        up_in_.resize(up_in_.size() * 2);
      } else {
        upstream_state_ = Upstream::kFailed;  // an absurd response head
        break;
      }
    }
    int64_t left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - Clock::now()).count();
    ssize_t n = left_ms <= 0 ? (errno = ETIMEDOUT, -1)
                             : fio::Recv(up_fd_, up_in_.data() + up_wpos_,
                                         up_in_.size() - up_wpos_, static_cast<int>(left_ms));
    if (n <= 0) {
      bool timed_out = n < 0 && errno == ETIMEDOUT;
      if (!any_byte && !timed_out && reused_ && replayable_ && !retried) {
        // The pooled connection was closed by the backend while idle.
        retried = true;
        if (ConnectUpstream(true) && SendUpstream()) continue;
        if (upstream_state_ == Upstream::kOk) upstream_state_ = Upstream::kFailed;
        break;
      }
      if (n == 0 && any_byte && resp_.Finish() == MessageParser::Event::kMessageDone) {
        // A body delimited by the end of the connection.
        if (rechunk_resp_) out_.append("0\r\n\r\n");
        bool ok = FlushClient();
        fio::Close(up_fd_);
        up_fd_ = -1;
        upstream_ms_ = MsSince(t_upstream_);
        LogRequest();
        if (mirroring_) SubmitMirror();
        return ok;
      }
      upstream_state_ = timed_out ? Upstream::kTimeout : Upstream::kFailed;
      break;
    }
    any_byte = true;
    up_wpos_ += static_cast<size_t>(n);
    size_t used = 0;
    auto ev = resp_.Execute(up_in_.data(), up_rpos_, up_wpos_, &used);
    up_rpos_ += used;
    if (ev == MessageParser::Event::kMessageDone) {
      if (rechunk_resp_) out_.append("0\r\n\r\n");
      bool ok = FlushClient();
      upstream_ms_ = MsSince(t_upstream_);
      if (resp_.keep_alive() && up_rpos_ == up_wpos_) {
        instance_->Release(fio::WorkerIndex(), up_fd_);
      } else {
        fio::Close(up_fd_);
      }
      up_fd_ = -1;
      LogRequest();
      if (mirroring_) SubmitMirror();
      return ok;
    }
    if (ev == MessageParser::Event::kError) {
      if (!response_started_) upstream_state_ = Upstream::kFailed;
      break;
    }
    if (!FlushClient()) break;  // stream what we have before waiting for more
  }
  // The exchange failed.
  fio::Close(up_fd_);
  up_fd_ = -1;
  upstream_ms_ = MsSince(t_upstream_);
  if (response_started_) {
    // Part of the answer is out: the only honest signal left is a cut.
    status_ = status_ ? status_ : 502;
    LogRequest();
    client_keep_alive_ = false;
    return false;
  }
  out_.clear();
  Finish502or504(upstream_state_ == Upstream::kOk ? Upstream::kFailed : upstream_state_);
  return client_keep_alive_;
}

void Session::Finish502or504(Upstream why) {
  if (up_fd_ >= 0) {
    fio::Close(up_fd_);
    up_fd_ = -1;
  }
  std::string msg = "backend '" + std::string(backend_name_) + "' ";
  switch (why) {
    case Upstream::kRefused: msg += "refused the connection"; break;
    case Upstream::kTimeout:
      msg += "did not answer within " + std::to_string(target_->backend->timeout_ms) + " ms";
      break;
    default:
      msg += fallback_5xx_ ? "answered " + std::to_string(fallback_5xx_)
                           : std::string("failed before answering");
      break;
  }
  if (CanFallback()) {
    FallBack(msg);
    return;
  }
  // If the request body was not read to its end, the connection cannot go on.
  bool close_after = !client_keep_alive_ || !request_done_;
  SendError(why == Upstream::kTimeout ? 504 : 502, msg, close_after);
}

// Points the request at backend `index`: its next instance in turn, and the
// upstream head for it (the instance's base path goes in front of the path).
void Session::UseBackend(int index) {
  target_ = snap_->targets[static_cast<size_t>(index)].get();
  backend_name_ = target_->backend->name;
  size_t n = target_->instances.size();
  size_t pick = n == 1 ? 0 : target_->next.fetch_add(1, std::memory_order_relaxed) % n;
  instance_ = target_->instances[pick];
  const std::string& base_path = target_->base_paths[pick];
  if (base_path.empty()) {
    BuildUpstreamHead(path_and_query_);
    return;
  }
  scratch_.assign(base_path);
  scratch_.append(path_and_query_);
  BuildUpstreamHead(scratch_);
}

bool Session::CanFallback() const {
  if (fell_back_ || decision_.route < 0 || response_started_ || !request_done_ || has_body_) {
    return false;
  }
  if (!snap_->table->routes()[static_cast<size_t>(decision_.route)].fallback) return false;
  if (method_ != "GET" && method_ != "HEAD" && method_ != "OPTIONS") return false;
  int other = snap_->table->ElseBackend(decision_.route);
  return other >= 0 && other != decision_.backend;
}

bool Session::FallbackOn5xx() const {
  return CanFallback() &&
         snap_->table->routes()[static_cast<size_t>(decision_.route)].fallback_on_5xx;
}

// Sends the same request to the route's else backend. Nothing of the first
// answer reached the client, and the request is idempotent and bodiless, so
// the client sees one answer; the log says reason "fallback" and why.
void Session::FallBack(const std::string& why) {
  fell_back_ = true;
  fallback_why_ = why;
  fallback_5xx_ = 0;
  decision_.backend = snap_->table->ElseBackend(decision_.route);
  decision_.reason = Reason::kFallback;
  reason_ = ReasonName(decision_.reason);
  UseBackend(decision_.backend);
  upstream_state_ = Upstream::kOk;
  replayable_ = true;
  status_ = 0;
  if (!FlushUpstream(true)) {
    Finish502or504(upstream_state_);
    return;
  }
  Exchange();
}

void Session::SendError(int status, std::string_view message, bool close_after) {
  status_ = status;
  std::string body = "{\"error\":";
  AppendJsonString(StatusText(status), &body);
  body += ",\"status\":" + std::to_string(status) + ",\"message\":";
  AppendJsonString(message, &body);
  body += ",\"backend\":";
  if (backend_name_.empty() || status < 500 || status == 503) {
    body += "null";
  } else {
    AppendJsonString(backend_name_, &body);
  }
  body += ",\"request_id\":";
  AppendJsonString(request_id_, &body);
  body += "}\n";
  std::string head = std::string(http10_ ? "HTTP/1.0 " : "HTTP/1.1 ") + std::to_string(status) +
                     " " + StatusText(status) +
                     "\r\nContent-Type: application/json\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n";
  if (!request_id_.empty()) head += "X-Request-Id: " + request_id_ + "\r\n";
  if (close_after || !client_keep_alive_) {
    head += "Connection: close\r\n";
    client_keep_alive_ = false;
    linger_ = true;
  }
  head += "\r\n";
  if (!is_head_) head += body;
  bytes_out_ += head.size();
  fio::SendAll(fd_, head.data(), head.size(), SendTimeout());
  if (!backend_name_.empty()) LogRequest();
}

// Decides whether this request is copied to the route's mirror: reads only
// (GET, HEAD, OPTIONS) unless --mirror-writes, and --mirror-percent of them.
void Session::MaybeMirror(std::string_view method) {
  const auto& plan = snap_->routes[static_cast<size_t>(decision_.route)].mirror;
  if (!plan->writes && method != "GET" && method != "HEAD" && method != "OPTIONS") return;
  if (plan->percent_bp < kFullPercentBp &&
      static_cast<int>(NextRandom() % kFullPercentBp) >= plan->percent_bp) {
    return;
  }
  if (plan->targets.empty()) return;
  if (req_.has_content_length() && req_.content_length() > kMirrorBodyCap) {
    proxy_->mirror().CountDropped(plan->route);  // too big to copy
    return;
  }
  mirroring_ = true;
  mirror_plan_ = plan;
  mirror_target_.assign(path_and_query_);
  mirror_headers_.clear();
  mirror_body_.clear();
  captured_ = CapturedResponse{};
  const MirrorPlan::Target& t = plan->targets.front();
  AppendForwardedHeaders(&mirror_headers_, t.host, t.port, false, true);
}

// The client has its answer: the copy goes to the mirror's queue (or is
// dropped and counted when the queue is full).
void Session::SubmitMirror() {
  mirroring_ = false;
  MirrorJob job;
  job.plan = std::move(mirror_plan_);
  job.method = method_;
  job.target = std::move(mirror_target_);
  job.headers = std::move(mirror_headers_);
  job.body = std::move(mirror_body_);
  job.request_id = request_id_;
  job.primary_backend.assign(backend_name_);
  job.ts_ms = ts_ms_;
  job.primary = std::move(captured_);
  proxy_->mirror().Submit(std::move(job));
  mirror_headers_.clear();
  mirror_body_.clear();
}

// Ramps judge a route by the 5xx rate of what went to --to against what went
// to --else. A request that fell back counts as a failure of --to.
void Session::CountRequest() {
  const RouteExtras& x = snap_->routes[static_cast<size_t>(decision_.route)];
  RouteCounters* c = x.counters;
  if (fell_back_ || decision_.backend == x.to_backend) {
    c->to_n.fetch_add(1, std::memory_order_relaxed);
    if (fell_back_ || status_ >= 500) c->to_5xx.fetch_add(1, std::memory_order_release);
  } else {
    c->else_n.fetch_add(1, std::memory_order_relaxed);
    if (status_ >= 500) c->else_5xx.fetch_add(1, std::memory_order_release);
  }
}

void Session::LogRequest() {
  if (decision_.route >= 0 && status_ > 0) CountRequest();
  DecisionRecord r;
  r.ts_ms = ts_ms_;
  r.request_id = request_id_;
  r.method = method_;
  r.path = path_;
  r.route = route_name_;
  r.backend = backend_name_;
  r.reason = reason_;
  r.bucket = decision_.bucket;
  r.status = status_;
  r.upstream_ms = upstream_ms_;
  r.total_ms = MsSince(t0_);
  r.bytes_in = bytes_in_;
  r.bytes_out = bytes_out_;
  r.client = client_ip_;
  r.ruleset = snap_ ? snap_->table->version() : 0;
  r.fallback = fallback_why_;
  proxy_->log()->Write(r);
}

}  // namespace

Proxy::Proxy(ProxyOptions opts, DecisionLog* log) : opts_(opts), log_(log) {
  if (opts_.workers <= 0) {
    opts_.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  }
  upstreams_.set_workers(opts_.workers);
}

Proxy::~Proxy() { Shutdown(0); }

void Proxy::SetSnapshot(std::shared_ptr<const ProxySnapshot> snap) {
  std::atomic_store(&snapshot_, std::move(snap));
  snapshot_gen_.fetch_add(1, std::memory_order_release);
}

std::shared_ptr<const ProxySnapshot> Proxy::snapshot() const { return std::atomic_load(&snapshot_); }

void Proxy::Start(int listen_fd) {
  listen_fd_ = listen_fd;
  pool_ = std::make_unique<WorkerPool>(opts_.workers, [this](int fd) {
    fio::Adopt(fd);
    {
      Session session(this, fd);
      session.Run();
    }
    SessionEnded();
  });
  acceptor_ = std::thread([this] { AcceptLoop(); });
}

void Proxy::AcceptLoop() {
  while (!stopping()) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (stopping()) break;
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        continue;
      }
      break;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (sessions_ >= opts_.max_connections) {
        static constexpr std::string_view kBusy =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            "Content-Length: 61\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
            "{\"error\":\"Service Unavailable\",\"message\":\"too many clients\"}";
        send(fd, kBusy.data(), kBusy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        close(fd);
        continue;
      }
      ++sessions_;
    }
    pool_->Submit(fd);
  }
}

void Proxy::SessionEnded() {
  std::lock_guard<std::mutex> lock(mu_);
  --sessions_;
  cv_.notify_all();
}

bool Proxy::Shutdown(int drain_ms) {
  if (stopping_.exchange(true)) {
    if (acceptor_.joinable()) acceptor_.join();
    std::lock_guard<std::mutex> lock(mu_);
    return sessions_ == 0;
  }
  if (listen_fd_ >= 0) shutdown(listen_fd_, SHUT_RDWR);  // wakes accept()
  if (acceptor_.joinable()) acceptor_.join();
  if (listen_fd_ >= 0) close(listen_fd_);
  listen_fd_ = -1;
  std::unique_lock<std::mutex> lock(mu_);
  bool drained =
      cv_.wait_for(lock, std::chrono::milliseconds(drain_ms), [this] { return sessions_ == 0; });
  lock.unlock();
  if (drained && pool_) {
    pool_->Stop();
    pool_->Join();
  }
  if (drained) mirror_.Stop();
  return drained;
}

}  // namespace strangler
