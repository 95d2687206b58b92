#include "proxy/proxy.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "http/header_fields.h"
#include "http/http_message.h"
#include "http/request_target.h"
#include "http/response_relay.h"
#include "proxy/fiber.h"
#include "proxy/net.h"

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
// A request is kept whole while it is at most this long, so that it can be
// sent again on a fresh connection when a reused one turns out closed.
constexpr size_t kReplayBytes = 64 * 1024;

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

// While the client was still sending its body, the backend answered
// (kAnswered: the body is not wanted any more) or closed the connection
// (kUpstreamGone).
// Sends FIN, then reads and drops what the client still sends (see
// kLingerMs). The caller closes fd.
void LingeringClose(int fd) {
  if (shutdown(fd, SHUT_WR) != 0) return;
  const Clock::time_point until = Clock::now() + std::chrono::milliseconds(kLingerMs);
  char sink[16 * 1024];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return;
    ssize_t n = fio::Recv(fd, sink, sizeof(sink),
                          static_cast<int>(std::min<int64_t>(left, kLingerIdleMs)));
    if (n <= 0) return;  // the client closed, went quiet or failed
  }
}

// A client over --max-connections: 503 and a lingering close, on a fiber
// (the client's request is usually in flight; closing at once would reset
// the connection before it reads the answer).
constexpr int kBusyFlag = 1 << 30;   // marks such an fd handed to the pool
constexpr int kMaxBusyAnswers = 256;  // beyond this many at once, just closed
void AnswerBusy(int fd) {
  static const std::string kBusy = [] {
    const std::string body = "{\"error\":\"Service Unavailable\",\"message\":\"too many clients\"}\n";
    return "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\nConnection: close\r\nRetry-After: 1\r\n\r\n" + body;
  }();
  if (fio::SendAll(fd, kBusy.data(), kBusy.size(), kLingerMs)) LingeringClose(fd);
  fio::Close(fd);
}

enum class ReadResult { kOk, kEof, kTimeout, kStop, kError, kAnswered, kUpstreamGone };

class Session : public MessageHandler, public RelayObserver {
 public:
  Session(Proxy* proxy, int fd) : proxy_(proxy), fd_(fd), req_(MessageType::kRequest, this) {}
  void Run();

  // Request parser events.
  int OnHead() override { return 0; }
  bool OnBody(const char* data, size_t len) override;

  // The answer relayed, for the mirror's capture (while mirroring_).
  void OnFinalHead(const MessageParser& parser, const char* base) override;
  void OnBodyPiece(const char* data, size_t len) override;

 private:
  enum class Upstream { kOk, kRefused, kTimeout, kFailed };

  // Reads more client bytes into in_. With watch_fd >= 0 (the backend of a
  // request whose body is still coming), also returns as soon as that
  // backend sends something (kAnswered) or closes (kUpstreamGone).
  ReadResult FillClient(bool idle, Clock::time_point deadline, int watch_fd = -1);
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
  // Sends what up_out_ holds beyond up_sent_, connecting first when needed,
  // and once more on a fresh connection when a reused one was found closed.
  // False when the request cannot go on (upstream_state_ says why); true
  // with early_answer_ set when the backend answered before taking it all.
  bool FlushUpstream();
  fio::SendResult SendUpstream();
  int upstream_timeout() const { return target_->backend->timeout_ms; }
  int SendTimeout() const { return proxy_->options().client_send_timeout_ms; }
  bool ConnectUpstream(bool fresh);
  bool Exchange();
  // Starts reading the backend's answer (ResponseRelay::Begin for this
  // request); up_in_ is emptied.
  void BeginAnswer();
  // While the request body is still going out: relays what the backend has
  // sent so far, without waiting. True once the answer has ended
  // (answer_ev_ says how).
  bool PumpAnswer();
  // Room in up_in_ for more bytes; false (upstream_state_ kFailed) when an
  // answer's head would pass the limit.
  bool UpstreamRoom();
  // After a 101: relays bytes both ways until either side closes, the
  // tunnel is idle for tunnel_idle_ms or the drain ends; logs it.
  void Tunnel();
  bool FlushClient();
  void SendError(int status, std::string_view message, bool close_after);
  void Linger();
  void LogRequest();
  void Finish502or504(Upstream why);
  // --fallback: may this failed request go to the route's else backend?
  bool CanFallback() const;
  // May the request be sent twice? Idempotent methods (RFC 9110 9.2.2), or
  // any request with an Idempotency-Key header.
  bool Idempotent() const;
  bool FallbackOn5xx() const;
  void FallBack(const std::string& why);
  void UseBackend(int index);
  // The backend's instance `pick` (the upstream head is built for it).
  void UseInstance(size_t pick);
  // Before anything was sent: the next instance of the backend instead of
  // this one. False when it has no other.
  bool NextInstance();

  Proxy* proxy_;
  int fd_;
  std::string client_ip_;
  MessageParser req_;
  ResponseRelay relay_;  // the answer in progress; its out() is what the client gets

  std::vector<char> in_ = std::vector<char>(kBufferBytes);  // client bytes
  size_t rpos_ = 0, wpos_ = 0;
  std::vector<char> up_in_ = std::vector<char>(kBufferBytes);  // upstream bytes
  size_t up_rpos_ = 0, up_wpos_ = 0;
  // To the backend. While the request fits in kReplayBytes it is kept whole
  // here for a retry (replayable_); up_sent_ bytes of it are sent.
  std::string up_out_;
  size_t up_sent_ = 0;
  size_t up_head_len_ = 0;  // the head's bytes at the front of up_out_
  size_t pick_ = 0;         // index of instance_ in target_->instances

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
  bool replayable_ = true, reused_ = false, retried_ = false;
  bool early_answer_ = false;  // the backend answered before the body was all sent
  bool relay_begun_ = false;   // BeginAnswer() ran for this exchange
  bool answer_ended_ = false;  // PumpAnswer() saw the answer end
  bool any_answer_byte_ = false;
  ResponseRelay::Event answer_ev_ = ResponseRelay::Event::kNeedMore;
  bool websocket_ = false;     // an HTTP/1.1 GET asking to upgrade to WebSocket
  bool absolute_host_ = false;  // absolute-form target: host_ is its authority, sent as Host
  std::string absolute_target_;  // origin-form of an absolute target with no path
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
  Upstream upstream_state_ = Upstream::kOk;
  int up_fd_ = -1;
  int status_ = 0;
  int64_t ts_ms_ = 0;
  Clock::time_point t0_, t_upstream_;
  double upstream_ms_ = 0;
  uint64_t bytes_in_ = 0, bytes_out_ = 0;
};

ReadResult Session::FillClient(bool idle, Clock::time_point deadline, int watch_fd) {
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
    if (watch_fd >= 0) {
      // The backend first: a client that always has more body must not hide
      // an answer that is already there.
      fio::WaitFor both[2] = {{watch_fd, true}, {fd_, true}};
      int which = fio::WaitAny(both, 2, kTickMs);
      if (which == 0) {
        char probe;
        ssize_t p = recv(watch_fd, &probe, 1, MSG_PEEK | MSG_DONTWAIT);
        if (p > 0) return ReadResult::kAnswered;
        if (p == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return ReadResult::kUpstreamGone;
        fio::NotReady(watch_fd, true);
        continue;
      }
      if (which < 0) {
        if (Clock::now() >= deadline) return ReadResult::kTimeout;
        continue;
      }
      // The client side is (said to be) readable: take what is there without
      // parking on the client alone, or the backend would go unwatched.
      ssize_t n = recv(fd_, in_.data() + wpos_, in_.size() - wpos_, MSG_DONTWAIT);
      if (n > 0) {
        wpos_ += static_cast<size_t>(n);
        return ReadResult::kOk;
      }
      if (n == 0) return ReadResult::kEof;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        fio::NotReady(fd_, true);
        continue;
      }
      if (errno == EINTR) continue;
      return ReadResult::kError;
    }
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
  // Between requests: what was read of earlier ones goes, so pipelined
  // requests cannot make the buffer grow (it grows only for one long head).
  if (rpos_ > 0 && !req_.in_head()) {
    std::memmove(in_.data(), in_.data() + rpos_, wpos_ - rpos_);
    wpos_ -= rpos_;
    rpos_ = 0;
  }
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
    // A head trickled byte by byte never lets a read time out: the head's
    // deadline is checked on every read, not only on a quiet one.
    if (head_begun && Clock::now() >= deadline) {
      *error_status = 408;
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

void Session::Linger() { LingeringClose(fd_); }

bool Session::AnalyseHead(const char** why) {
  const char* base = in_.data();
  header_views_.clear();
  conn_tokens_.Reset();
  has_request_id_ = expect_continue_ = websocket_ = false;
  host_.clear();
  xff_.clear();
  int hosts = 0;
  bool empty_host = false, bad_host = false;
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
      empty_host = empty_host || value.empty();
      bad_host = bad_host || (!value.empty() && !ValidHost(value));
      ++hosts;
    } else if (IEquals(name, "upgrade")) {
      websocket_ = websocket_ || ListsToken(value, "websocket");
    } else if (IEquals(name, "x-forwarded-for")) {
      if (!xff_.empty()) xff_.append(", ");
      xff_.append(value);
    }
  }
  // An X-Request-Id that Connection names is hop-by-hop, so not forwarded:
  // the backend must get the router's own instead of none.
  if (has_request_id_ && conn_tokens_.Names("x-request-id")) has_request_id_ = false;
  if (!has_request_id_) NewRequestId(&request_id_);
  // RFC 9112 3.2: a 1.1 request needs exactly one Host; never two.
  if (hosts > 1) *why = "more than one Host header";
  if (hosts == 0 && !http10_) *why = "HTTP/1.1 request without a Host header";
  if (empty_host) *why = "empty Host header";
  if (bad_host) *why = "Host header is not host[:port]";
  // The framing and Host the backend sees are the ones the router parsed:
  // a Connection header may not take them away.
  if (const char* named = conn_tokens_.NamesFraming()) {
    scratch_ = std::string("Connection header names ") + named;
    *why = scratch_.c_str();
  }
  // WebSocket (RFC 6455 4.1): an HTTP/1.1 GET with Connection: upgrade.
  websocket_ = websocket_ && req_.upgrade() && !http10_ && req_.method().in(base) == "GET";
  if (const char* bad = BadTarget(req_.target().in(base))) *why = bad;
  return *why == nullptr;
}

void Session::BuildUpstreamHead(std::string_view path_and_query) {
  up_out_.clear();
  up_sent_ = 0;
  up_out_.append(method_);
  up_out_.push_back(' ');
  up_out_.append(path_and_query);
  up_out_.append(" HTTP/1.1\r\n");
  AppendForwardedHeaders(&up_out_, instance_->host(), instance_->port(), rechunk_req_, false);
  up_out_.append("\r\n");
  up_head_len_ = up_out_.size();
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
        (absolute_host_ && IEquals(name, "host")) ||
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
  if (websocket_ && !mirror_copy) out->append("Connection: upgrade\r\nUpgrade: websocket\r\n");
  if (!xff_done) AppendHeader(out, "X-Forwarded-For", client_ip_);
  out->append("X-Forwarded-Proto: http\r\n");
  if (absolute_host_) AppendHeader(out, "Host", host_);
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
  retried_ = early_answer_ = relay_begun_ = false;
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

  // origin-form "/p?q"; absolute-form "http://host/p?q" is routed on its
  // path and forwarded in origin-form, with the target's authority as Host.
  std::string_view path_and_query = target;
  absolute_host_ = false;
  if (method != "CONNECT") {
    TargetParts parts = SplitTarget(target, &absolute_target_);
    if (parts.error != nullptr) {
      backend_name_ = {};
      SendError(400, std::string("malformed request: ") + parts.error, true);
      return false;
    }
    path_and_query = parts.path_and_query;
    if (parts.absolute) {
      host_.assign(parts.authority);
      absolute_host_ = true;
    }
  }
  size_t q = path_and_query.find('?');
  std::string_view raw_path = path_and_query.substr(0, q);
  std::string_view query = q == std::string_view::npos ? std::string_view() : path_and_query.substr(q + 1);
  if (proxy_->options().reject_encoded_slash && HasEncodedSlash(raw_path)) {
    backend_name_ = {};
    SendError(400, "malformed request: an encoded '/' or '\\' in the path (--encoded-slash reject)",
              true);
    return false;
  }

  // Decided on the normalised path (so no spelling of a path skips its
  // route), logged with it; forwarded with the client's raw target.
  RequestView view;
  view.method = method;
  bool ambiguous = false;
  view.path = NormalizePath(raw_path, &scratch_, &ambiguous);
  if (ambiguous) {
    backend_name_ = {};
    SendError(400,
              "malformed request: a '.' or '..' segment beside ';' or '\\' in the path "
              "(backends disagree on what it names)",
              true);
    return false;
  }
  path_.assign(view.path);
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

  // Refusals the router makes itself after the decision (CONNECT, a body
  // over --max-body-mb) are not decisions: no backend answered, so none is
  // logged (an audit by backend would count answers it never gave).
  if (method == "CONNECT") {
    backend_name_ = {};
    SendError(405, "CONNECT is not supported by this proxy", true);
    return false;
  }
  if (decision_.route >= 0 && snap_->routes[static_cast<size_t>(decision_.route)].mirror &&
      !websocket_) {
    MaybeMirror(method);
  }

  bool has_body = req_.chunked() || (req_.has_content_length() && req_.content_length() > 0);
  has_body_ = has_body;
  body_bytes_ = 0;
  body_too_large_ = false;
  const uint64_t max_body = proxy_->options().max_body_bytes;
  if (max_body > 0 && req_.has_content_length() && req_.content_length() > max_body) {
    backend_name_ = {};
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
      if (early_answer_) break;
      // A refusal, not a decision: not logged (whatever of the body was
      // streamed ends in a cut, so the backend never has a whole request).
      if (upstream_state_ == Upstream::kOk) backend_name_ = {};
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
    if (up_out_.size() > up_sent_ && !FlushUpstream()) {
      Finish502or504(upstream_state_);
      return false;
    }
    if (early_answer_) break;
    ReadResult r = FillClient(
        false, Clock::now() + std::chrono::milliseconds(proxy_->options().idle_timeout_ms),
        up_fd_);
    if (r == ReadResult::kAnswered || (r == ReadResult::kUpstreamGone && relay_begun_)) {
      if (PumpAnswer()) {  // the whole answer is in: the rest of the body is not wanted
        early_answer_ = true;
        break;
      }
      continue;  // an interim or a streamed answer: the body goes on
    }
    if (r == ReadResult::kUpstreamGone) {
      // Closed before any answer: a reused connection the backend had
      // dropped; what was sent goes again on a fresh one (FlushUpstream).
      if (!reused_ || !replayable_ || retried_) {
        Finish502or504(Upstream::kFailed);
        return false;
      }
      retried_ = true;
      bool resent = ConnectUpstream(true);
      up_sent_ = 0;
      if (!resent || !FlushUpstream()) {
        Finish502or504(upstream_state_ == Upstream::kOk ? Upstream::kFailed : upstream_state_);
        return false;
      }
      continue;
    }
    if (r != ReadResult::kOk) return false;  // the client went away or stalled mid-body
  }
  if (!early_answer_) {
    request_done_ = true;
    if (rechunk_req_) up_out_.append("0\r\n\r\n");
    if (!FlushUpstream()) {
      Finish502or504(upstream_state_);
      return client_keep_alive_;
    }
  }
  if (early_answer_) {
    // The backend answered before it took the whole body (an early 413 or
    // 401): its answer is relayed, the rest of the body is not sent, and
    // both connections close after the answer (the client's unread body is
    // drained by the lingering close, so it reads the answer, not a reset).
    client_keep_alive_ = false;
    linger_ = true;
  }
  bool ok = Exchange();
  up_out_.clear();
  up_sent_ = 0;
  if (relay_.tunnel()) {
    Tunnel();
    return false;
  }
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
  if (up_out_.size() - up_sent_ >= kFlushBytes) {
    if (!FlushUpstream()) return false;
    if (early_answer_) return false;  // stops the parser; HandleRequest sees early_answer_
  }
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

fio::SendResult Session::SendUpstream() {
  size_t sent = 0;
  fio::SendResult r = fio::SendAllOrAnswer(up_fd_, up_out_.data() + up_sent_,
                                           up_out_.size() - up_sent_, upstream_timeout(), &sent);
  up_sent_ += sent;
  if (r != fio::SendResult::kSent) return r;
  up_sent_ = up_out_.size();
  if (up_sent_ > kReplayBytes) {  // too long to keep for a retry
    replayable_ = false;
    up_out_.clear();
    up_sent_ = 0;
  }
  return r;
}

bool Session::FlushUpstream() {
  if (up_fd_ < 0) {
    t_upstream_ = Clock::now();
    if (!ConnectUpstream(false)) {
      // Refused: nothing was sent, so another instance of the same backend
      // takes the request, whatever its method (as nginx's default
      // proxy_next_upstream does).
      if (upstream_state_ != Upstream::kRefused || !NextInstance()) return false;
      upstream_state_ = Upstream::kOk;
      if (!ConnectUpstream(false)) return false;
    }
  }
  while (true) {
    fio::SendResult r = SendUpstream();
    if (r == fio::SendResult::kSent) return true;
    if (r == fio::SendResult::kAnswered) {
      // The backend has bytes for us while the request is still going out:
      // they are relayed. Once its answer is complete the rest of the body
      // is not wanted (an early 413 or 401); until then the body goes on (a
      // 100 or 103 first, or an answer streamed while the body is read).
      if (PumpAnswer()) {
        early_answer_ = true;
        return true;
      }
      continue;  // sending resumes at up_sent_
    }
    bool timed_out = errno == ETIMEDOUT;
    if (!timed_out && reused_ && replayable_ && !retried_ && !relay_begun_) {
      // The pooled connection was closed by the backend while idle: all of
      // the request so far goes again, on a fresh connection.
      retried_ = true;
      if (!ConnectUpstream(true)) return false;
      up_sent_ = 0;
      continue;
    }
    upstream_state_ = timed_out ? Upstream::kTimeout : Upstream::kFailed;
    return false;
  }
}

bool Session::FlushClient() {
  std::string& out = relay_.out();
  if (out.empty()) return true;
  response_started_ = true;
  bytes_out_ += out.size();
  bool ok = fio::SendAll(fd_, out.data(), out.size(), SendTimeout());
  out.clear();
  return ok;
}

void Session::OnFinalHead(const MessageParser& parser, const char* base) {
  captured_ = CapturedResponse{};
  captured_hash_ = BodyHasher{};
  captured_.status = parser.status();
  for (const HeaderSpan& h : parser.headers()) {
    std::string_view name = h.name.in(base);
    if (IEquals(name, "content-type")) captured_.content_type.assign(h.value.in(base));
    for (const std::string& want : mirror_plan_->compare.headers) {
      if (IEquals(name, want)) captured_.headers.emplace_back(name, h.value.in(base));
    }
  }
}

void Session::OnBodyPiece(const char* data, size_t len) {
  captured_hash_.Update(data, len);
  captured_.body_bytes += len;
  captured_.body_hash = captured_hash_.value();
  size_t room = kMirrorBodyCap - std::min(kMirrorBodyCap, captured_.body.size());
  if (len > room) captured_.truncated = true;
  captured_.body.append(data, std::min(len, room));
}

void Session::BeginAnswer() {
  RelayRequest rr;
  rr.head = is_head_;
  rr.http10 = http10_;
  rr.websocket = websocket_ && !fell_back_;
  // An answer that begins before the whole request was read may end
  // before it too: the client connection then closes after it (its unread
  // body stands in the way of a next request), so the answer says so.
  rr.client_keep_alive = client_keep_alive_ && !proxy_->stopping() && request_done_;
  rr.refuse_5xx = FallbackOn5xx();
  rr.request_id = request_id_;
  relay_.Begin(rr, mirroring_ ? this : nullptr);
  up_rpos_ = up_wpos_ = 0;
  relay_begun_ = true;
  answer_ended_ = any_answer_byte_ = false;
  answer_ev_ = ResponseRelay::Event::kNeedMore;
}

bool Session::UpstreamRoom() {
  if (up_rpos_ == up_wpos_ && !relay_.in_head()) up_rpos_ = up_wpos_ = 0;
  if (up_wpos_ < up_in_.size()) return true;
  if (!relay_.in_head() && up_rpos_ > 0) {
    std::memmove(up_in_.data(), up_in_.data() + up_rpos_, up_wpos_ - up_rpos_);
    up_wpos_ -= up_rpos_;
    up_rpos_ = 0;
    return true;
  }
  if (up_in_.size() < proxy_->options().max_header_bytes * 4) {
    up_in_.resize(up_in_.size() * 2);
    return true;
  }
  upstream_state_ = Upstream::kFailed;  // an absurd response head
  return false;
}

bool Session::PumpAnswer() {
  if (!relay_begun_) BeginAnswer();
  // Part of the request is still to come: whatever the answer, this
  // connection cannot carry another one.
  relay_.ForbidReuse();
  while (true) {
    if (!UpstreamRoom()) {
      answer_ev_ = ResponseRelay::Event::kError;
      break;
    }
    ssize_t n = recv(up_fd_, up_in_.data() + up_wpos_, up_in_.size() - up_wpos_, MSG_DONTWAIT);
    if (n > 0) {
      any_answer_byte_ = true;
      up_wpos_ += static_cast<size_t>(n);
      size_t used = 0;
      answer_ev_ = relay_.Feed(up_in_.data(), up_rpos_, up_wpos_, &used);
      up_rpos_ += used;
      if (answer_ev_ != ResponseRelay::Event::kNeedMore) break;
      if (!FlushClient()) {
        answer_ev_ = ResponseRelay::Event::kError;
        break;
      }
      continue;
    }
    if (n == 0) {  // the backend closed: an answer delimited by it, or a cut one
      answer_ev_ = any_answer_byte_ ? relay_.Finish() : ResponseRelay::Event::kError;
      if (answer_ev_ == ResponseRelay::Event::kNeedMore) answer_ev_ = ResponseRelay::Event::kError;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      fio::NotReady(up_fd_, true);
      if (!FlushClient()) {
        answer_ev_ = ResponseRelay::Event::kError;
        break;
      }
      return false;
    }
    answer_ev_ = ResponseRelay::Event::kError;
    break;
  }
  answer_ended_ = true;
  if (answer_ev_ == ResponseRelay::Event::kError && upstream_state_ == Upstream::kOk) {
    upstream_state_ = Upstream::kFailed;
  }
  return true;
}

bool Session::Exchange() {
  if (!relay_begun_) BeginAnswer();
  bool any_byte = any_answer_byte_;
  // The backend's timeout bounds its whole answer, from the request sent to
  // the last byte (like Envoy's route timeout): a backend that trickles its
  // body cannot hold the client past it.
  const Clock::time_point deadline =
      Clock::now() + std::chrono::milliseconds(upstream_timeout());
  ResponseRelay::Event ev = answer_ended_ ? answer_ev_ : ResponseRelay::Event::kNeedMore;
  while (!answer_ended_) {
    if (!UpstreamRoom()) break;
    int64_t left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - Clock::now()).count();
    ssize_t n = left_ms <= 0 ? (errno = ETIMEDOUT, -1)
                             : fio::Recv(up_fd_, up_in_.data() + up_wpos_,
                                         up_in_.size() - up_wpos_, static_cast<int>(left_ms));
    if (n <= 0) {
      bool timed_out = n < 0 && errno == ETIMEDOUT;
      if (!any_byte && !timed_out && reused_ && replayable_ && request_done_ && !retried_ &&
          Idempotent()) {
        // The pooled connection was closed by the backend before any byte
        // of an answer, after the whole request was sent: most likely it was
        // closed while idle, but the backend may also have acted on the
        // request and died. Sent again, once, on a fresh connection only
        // when doing it twice is harmless (RFC 9110 9.2.2); a POST gets 502,
        // as from nginx and HAProxy. (A connection that failed while the
        // request was still being sent is retried whatever the method: the
        // backend never had the whole request.)
        retried_ = true;
        if (ConnectUpstream(true)) {
          up_sent_ = 0;
          if (SendUpstream() == fio::SendResult::kSent) continue;
        }
        if (upstream_state_ == Upstream::kOk) upstream_state_ = Upstream::kFailed;
        break;
      }
      // A body delimited by the end of the connection.
      if (n == 0 && any_byte && (ev = relay_.Finish()) == ResponseRelay::Event::kDone) break;
      upstream_state_ = timed_out ? Upstream::kTimeout : Upstream::kFailed;
      break;
    }
    any_byte = true;
    up_wpos_ += static_cast<size_t>(n);
    size_t used = 0;
    ev = relay_.Feed(up_in_.data(), up_rpos_, up_wpos_, &used);
    up_rpos_ += used;
    if (ev == ResponseRelay::Event::kDone || ev == ResponseRelay::Event::kRefused) break;
    if (ev == ResponseRelay::Event::kError) {
      if (!response_started_) upstream_state_ = Upstream::kFailed;
      break;
    }
    if (!FlushClient()) break;  // stream what we have before waiting for more
  }
  upstream_ms_ = MsSince(t_upstream_);
  status_ = relay_.status();
  if (ev == ResponseRelay::Event::kRefused) {  // (also when PumpAnswer saw it)
    fallback_5xx_ = relay_.status();
    upstream_state_ = Upstream::kFailed;
  }
  if (ev == ResponseRelay::Event::kDone) {
    client_keep_alive_ = relay_.client_keep_alive();
    if (relay_.tunnel()) return FlushClient();  // Tunnel() takes both connections on
    bool ok = FlushClient();
    // Reused only when nothing follows the answer: bytes after it (a late
    // body, a second answer nobody asked for) belong to no request.
    if (relay_.Reusable(up_wpos_ - up_rpos_)) {
      instance_->Release(fio::WorkerIndex(), up_fd_);
    } else {
      fio::Close(up_fd_);
    }
    up_fd_ = -1;
    LogRequest();
    if (mirroring_) SubmitMirror();
    return ok;
  }
  // The exchange failed.
  fio::Close(up_fd_);
  up_fd_ = -1;
  if (response_started_) {
    // Part of the answer is out: the only honest signal left is a cut.
    if (status_ == 0) status_ = 502;
    LogRequest();
    client_keep_alive_ = false;
    return false;
  }
  relay_.out().clear();
  status_ = 0;
  Finish502or504(upstream_state_ == Upstream::kOk ? Upstream::kFailed : upstream_state_);
  return client_keep_alive_;
}

void Session::Tunnel() {
  // One direction of the tunnel: bytes read from `from` wait in buf[*pos,
  // *end) until `to` takes them.
  struct Pipe {
    int from, to;
    std::vector<char>* buf;
    size_t* pos;
    size_t* end;
    uint64_t* count;
    bool eof = false;
    bool pending() const { return *pos < *end; }
  };
  Pipe up{fd_, up_fd_, &in_, &rpos_, &wpos_, &bytes_in_};
  Pipe down{up_fd_, fd_, &up_in_, &up_rpos_, &up_wpos_, &bytes_out_};
  Pipe* pipes[2] = {&up, &down};
  const auto idle = std::chrono::milliseconds(proxy_->options().tunnel_idle_ms);
  Clock::time_point last_byte = Clock::now();
  bool failed = false;
  // Ends once either side has closed and what it sent before is delivered:
  // a WebSocket has no use for a half-open connection (and a client gone
  // must not hold a tunnel until --tunnel-idle-s).
  while (!failed && !((up.eof || down.eof) && !up.pending() && !down.pending())) {
    bool progress = false;
    for (Pipe* p : pipes) {
      if (p->pending()) {
        ssize_t n = send(p->to, p->buf->data() + *p->pos, *p->end - *p->pos,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
          *p->pos += static_cast<size_t>(n);
          *p->count += static_cast<uint64_t>(n);
          progress = true;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
          fio::NotReady(p->to, false);
        } else if (n < 0 && errno != EINTR) {
          failed = true;
        }
      } else if (!p->eof) {
        *p->pos = *p->end = 0;
        ssize_t n = recv(p->from, p->buf->data(), p->buf->size(), MSG_DONTWAIT);
        if (n > 0) {
          *p->end = static_cast<size_t>(n);
          progress = true;
        } else if (n == 0) {
          p->eof = true;  // half-close: the other side sees it, the tunnel goes on
          shutdown(p->to, SHUT_WR);
          progress = true;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
          fio::NotReady(p->from, true);
        } else if (errno != EINTR) {
          failed = true;
        }
      }
    }
    if (progress) {
      last_byte = Clock::now();
      continue;
    }
    fio::WaitFor waits[2];
    int n = 0;
    for (Pipe* p : pipes) {
      if (p->pending()) {
        waits[n++] = {p->to, false};
      } else if (!p->eof) {
        waits[n++] = {p->from, true};
      }
    }
    if (n > 0 && fio::WaitAny(waits, n, kTickMs) >= 0) continue;
    Clock::time_point now = Clock::now();
    if (now - last_byte >= idle) break;
    if (proxy_->stopping() && now >= proxy_->tunnels_end_at()) break;
  }
  fio::Close(up_fd_);
  up_fd_ = -1;
  client_keep_alive_ = false;
  LogRequest();
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
  UseInstance(n == 1 ? 0 : target_->next.fetch_add(1, std::memory_order_relaxed) % n);
}

void Session::UseInstance(size_t pick) {
  pick_ = pick;
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

bool Session::NextInstance() {
  size_t n = target_->instances.size();
  if (n < 2 || up_sent_ > 0) return false;
  // The head names the instance's base path: rebuilt; body bytes already
  // taken from the client stay behind it.
  std::string body = up_out_.substr(up_head_len_);
  UseInstance((pick_ + 1) % n);
  up_out_.append(body);
  return true;
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

bool Session::Idempotent() const {
  if (method_ == "GET" || method_ == "HEAD" || method_ == "OPTIONS" || method_ == "TRACE" ||
      method_ == "PUT" || method_ == "DELETE") {
    return true;
  }
  for (const HeaderView& h : header_views_) {
    if (IEquals(h.name, "idempotency-key") && !h.value.empty()) return true;
  }
  return false;
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
  retried_ = relay_begun_ = false;
  status_ = 0;
  if (!FlushUpstream()) {
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
    if (fd & kBusyFlag) {
      fd &= ~kBusyFlag;
      fio::Adopt(fd);
      AnswerBusy(fd);
      busy_answers_.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    fio::Adopt(fd);
    {
      Session session(this, fd);
      session.Run();
    }
    SessionEnded();
  }, [this](int worker) { upstreams_.ExpireIdle(worker); });
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
        if (busy_answers_.fetch_add(1, std::memory_order_relaxed) < kMaxBusyAnswers &&
            fd < kBusyFlag) {
          pool_->Submit(fd | kBusyFlag);
        } else {
          busy_answers_.fetch_sub(1, std::memory_order_relaxed);
          close(fd);
        }
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
  // Tunnels have no request to finish: they are ended a little before the
  // drain time is up, so that their sessions can still log and close. Set
  // before stopping_, which the tunnels read first.
  if (!stopping()) {
    auto tunnels_end = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(std::max(0, drain_ms - 2 * kTickMs));
    tunnels_end_at_.store(tunnels_end.time_since_epoch().count(), std::memory_order_relaxed);
  }
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
