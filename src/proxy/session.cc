#include "proxy/session.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <random>

#include "base/time.h"
#include "http/request_target.h"
#include "proxy/error_reply.h"
#include "proxy/fiber.h"
#include "proxy/net.h"
#include "proxy/tunnel.h"

namespace strangler {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kTickMs = 250;               // client reads wake this often to see shutdown
constexpr size_t kBufferBytes = 64 * 1024;
// After an error answer that closes the connection, what the client still
// sends is read and thrown away for at most this long, each read waiting at
// most kLingerIdleMs.
constexpr int kLingerMs = 2000;
constexpr int kLingerIdleMs = 500;

double MsSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
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

}  // namespace

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

Session::Session(Proxy* proxy, int fd)
    : proxy_(proxy),
      fd_(fd),
      req_(MessageType::kRequest, this),
      in_(kBufferBytes),
      up_(this, proxy->options().max_header_bytes),
      mirror_(&proxy->mirror()) {}

// --- The connection --------------------------------------------------------

void Session::Run() {
  SetNoDelay(fd_);
  client_ip_ = PeerAddress(fd_);
  header_views_.reserve(32);
  while (true) {
    int error_status = 0;
    if (!ReadHead(&error_status)) {
      if (error_status != 0) {
        // Nothing of this head can be trusted: the refusal is logged with
        // no method or path.
        StartClock();
        NewRequestId(&st_.request_id);
        Refuse(error_status, error_status == 400
                                 ? std::string("malformed request: ") +
                                       (req_.error() ? req_.error() : "parse error")
                                 : std::string(StatusText(error_status)));
      }
      break;
    }
    if (!HandleRequest() || proxy_->stopping()) break;
  }
  mirror_.Drop();
  up_.Close();
  if (linger_ && !proxy_->stopping()) LingeringClose(fd_);
  fio::Close(fd_);
}

Session::ReadResult Session::FillClient(bool idle, Clock::time_point deadline, int watch_fd) {
  in_.MakeRoom(req_.in_head(), SIZE_MAX);  // a head in progress is bounded by ReadHead
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
      ssize_t n = recv(fd_, in_.tail(), in_.room(), MSG_DONTWAIT);
      if (n > 0) {
        in_.wpos += static_cast<size_t>(n);
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
    ssize_t n = fio::Recv(fd_, in_.tail(), in_.room(), kTickMs);
    if (n > 0) {
      in_.wpos += static_cast<size_t>(n);
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
  if (!req_.in_head()) in_.Compact();
  const ProxyOptions& o = proxy_->options();
  // Idle between requests: idle_timeout_ms. Once a head has begun, all of
  // it must arrive within header_timeout_ms (a slow client cannot hold a
  // connection by trickling a header). A new connection has that long for
  // its first head from the start, as nginx's client_header_timeout: one
  // that sends nothing must not hold a place under --max-connections for
  // the whole idle timeout.
  Clock::time_point deadline =
      Clock::now() +
      std::chrono::milliseconds(served_any_ ? o.idle_timeout_ms : o.header_timeout_ms);
  bool head_begun = false;
  while (true) {
    if (!in_.empty()) {
      size_t used = 0;
      auto ev = req_.Execute(in_.data(), in_.rpos, in_.wpos, &used);
      in_.rpos += used;
      if (ev == MessageParser::Event::kHeadDone) {
        if (req_.target().len > o.max_uri_bytes) {
          *error_status = 414;
          return false;
        }
        if (in_.rpos - req_.head_start() > o.max_header_bytes) {
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
          (req_.headers().empty() && in_.wpos - req_.head_start() > o.max_uri_bytes + 64)) {
        *error_status = 414;
        return false;
      }
      if (in_.wpos - req_.head_start() > o.max_header_bytes) {
        *error_status = 431;
        return false;
      }
      if (!head_begun) {
        head_begun = true;
        deadline = Clock::now() + std::chrono::milliseconds(o.header_timeout_ms);
      }
    }
    bool idle = !req_.in_head() && in_.empty();
    ReadResult r = FillClient(idle, deadline);
    if (r != ReadResult::kOk) {
      if (r == ReadResult::kTimeout && req_.in_head()) *error_status = 408;
      return false;
    }
    // Any byte starts the head's clock, even the empty lines a client may
    // send before a request (RFC 9112 2.2): a trickle of them must not hold
    // the connection past header_timeout_ms.
    if (!head_begun) {
      head_begun = true;
      deadline = Clock::now() + std::chrono::milliseconds(o.header_timeout_ms);
    }
    // A head trickled byte by byte never lets a read time out: the head's
    // deadline is checked on every read, not only on a quiet one.
    if (Clock::now() >= deadline) {
      if (req_.in_head()) *error_status = 408;
      return false;
    }
  }
}

// --- One request -----------------------------------------------------------

bool Session::HandleRequest() {
  served_any_ = true;
  BeginRequest();
  const char* bad_head = nullptr;
  if (!AnalyseHead(&bad_head)) return Refuse(400, std::string("malformed request: ") + bad_head);
  return Decide() && Admit() && ReadBody() && Forward();
}

void Session::StartClock() {
  st_ = RequestState{};
  st_.t0 = Clock::now();
  st_.ts_ms = NowUnixMs();
}

void Session::BeginRequest() {
  mirror_.Drop();  // a copy left by the request before, which got no answer
  StartClock();
  // The shared snapshot is read only when it changed: atomic_load of a
  // shared_ptr takes a lock, the generation is a plain atomic.
  uint64_t gen = proxy_->snapshot_generation();
  if (!snap_ || gen != snap_gen_) {
    snap_gen_ = gen;
    snap_ = proxy_->snapshot();
  }
  std::string_view method = req_.method().in(in_.data());
  st_.method.assign(method);
  // Until the decision normalises it, the log names the path as sent.
  std::string_view target = req_.target().in(in_.data());
  st_.path.assign(target.substr(0, target.find('?')));
  st_.http10 = req_.http_major() == 1 && req_.http_minor() == 0;
  st_.is_head = method == "HEAD";
  st_.client_keep_alive = req_.keep_alive() && !st_.http10 && !req_.upgrade();
  st_.rechunk = req_.chunked();
  st_.bytes_in = in_.rpos - req_.head_start();
}

bool Session::AnalyseHead(const char** why) {
  const char* base = in_.data();
  header_views_.clear();
  conn_tokens_.Reset();
  int hosts = 0;
  bool empty_host = false, bad_host = false, upgrade_websocket = false;
  *why = nullptr;
  for (const HeaderSpan& h : req_.headers()) {
    std::string_view name = h.name.in(base), value = h.value.in(base);
    header_views_.push_back({name, value});
    if (IEquals(name, "connection")) {
      conn_tokens_.Add(value);
    } else if (IEquals(name, "x-request-id")) {
      if (!st_.has_request_id && !value.empty() && value.size() <= 200) {
        st_.has_request_id = true;
        st_.request_id_field = static_cast<int>(header_views_.size()) - 1;
        st_.request_id.assign(value);
      }
    } else if (IEquals(name, "expect")) {
      st_.expect_continue = IEquals(value, "100-continue");
    } else if (IEquals(name, "host")) {
      st_.host.assign(value);
      empty_host = empty_host || value.empty();
      bad_host = bad_host || (!value.empty() && !ValidHost(value));
      ++hosts;
    } else if (IEquals(name, "upgrade")) {
      upgrade_websocket = upgrade_websocket || ListsToken(value, "websocket");
    } else if (IEquals(name, "x-forwarded-for")) {
      if (!st_.xff.empty()) st_.xff.append(", ");
      st_.xff.append(value);
    }
  }
  // An X-Request-Id that Connection names is hop-by-hop, so not forwarded:
  // the backend must get the router's own instead of none.
  if (st_.has_request_id && conn_tokens_.Names("x-request-id")) {
    st_.has_request_id = false;
    st_.request_id_field = -1;
  }
  if (!st_.has_request_id) NewRequestId(&st_.request_id);
  // RFC 9112 3.2: a 1.1 request needs exactly one Host; never two.
  if (hosts > 1) *why = "more than one Host header";
  if (hosts == 0 && !st_.http10) *why = "HTTP/1.1 request without a Host header";
  if (empty_host) *why = "empty Host header";
  if (bad_host) *why = "Host header is not host[:port]";
  // The framing and Host the backend sees are the ones the router parsed:
  // a Connection header may not take them away.
  if (const char* named = conn_tokens_.NamesFraming()) {
    scratch_ = std::string("Connection header names ") + named;
    *why = scratch_.c_str();
  }
  // WebSocket (RFC 6455 4.1): an HTTP/1.1 GET with Connection: upgrade.
  st_.websocket = upgrade_websocket && req_.upgrade() && !st_.http10 && st_.method == "GET";
  if (const char* bad = BadTarget(req_.target().in(base))) *why = bad;
  return *why == nullptr;
}

bool Session::Decide() {
  const char* base = in_.data();
  std::string_view target = req_.target().in(base);
  // origin-form "/p?q"; absolute-form "http://host/p?q" is routed on its
  // path and forwarded in origin-form, with the target's authority as Host.
  std::string_view path_and_query = target;
  if (st_.method != "CONNECT") {
    TargetParts parts = SplitTarget(target, &st_.absolute_target);
    if (parts.error != nullptr) return Refuse(400, std::string("malformed request: ") + parts.error);
    path_and_query = parts.path_and_query;
    if (parts.absolute) {
      st_.host.assign(parts.authority);
      st_.absolute_host = true;
    }
  }
  size_t q = path_and_query.find('?');
  std::string_view raw_path = path_and_query.substr(0, q);
  std::string_view query =
      q == std::string_view::npos ? std::string_view() : path_and_query.substr(q + 1);
  if (proxy_->options().reject_encoded_slash && HasEncodedSlash(raw_path)) {
    return Refuse(400,
                  "malformed request: an encoded '/' or '\\' in the path (--encoded-slash reject)");
  }

  // Decided on the normalised path (so no spelling of a path skips its
  // route), logged with it; forwarded with the client's raw target.
  RequestView view;
  view.method = st_.method;
  bool ambiguous = false;
  view.path = NormalizePath(raw_path, &scratch_, &ambiguous);
  if (ambiguous) {
    return Refuse(400,
                  "malformed request: a '.' or '..' segment beside ';' or '\\' in the path "
                  "(backends disagree on what it names)");
  }
  st_.path.assign(view.path);
  view.query = query;
  view.headers = header_views_.data();
  view.header_count = header_views_.size();
  view.client_ip = client_ip_;
  const RouteTable& table = *snap_->table;
  st_.decision = table.Decide(view, NextRandom());
  if (st_.decision.route >= 0) st_.route_name = table.routes()[st_.decision.route].name;
  st_.reason = ReasonName(st_.decision.reason);
  st_.path_and_query = path_and_query;
  UseBackend(st_.decision.backend);
  return true;
}

bool Session::Admit() {
  // Refusals the router makes itself after the decision (CONNECT, a body
  // over --max-body-mb) are not decisions: no backend answered, so none is
  // logged (an audit by backend would count answers it never gave).
  if (st_.method == "CONNECT") return Refuse(405, "CONNECT is not supported by this proxy");
  if (st_.decision.route >= 0 && snap_->routes[static_cast<size_t>(st_.decision.route)].mirror &&
      !st_.websocket) {
    MaybeMirror();
  }
  st_.has_body = req_.chunked() || (req_.has_content_length() && req_.content_length() > 0);
  const uint64_t max_body = proxy_->options().max_body_bytes;
  if (max_body > 0 && req_.has_content_length() && req_.content_length() > max_body) {
    return Refuse(413, "request body over the limit of " + std::to_string(max_body) + " bytes");
  }
  if (st_.expect_continue && st_.has_body && !st_.http10) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    if (!fio::SendAll(fd_, kContinue.data(), kContinue.size(), SendTimeout())) return false;
  }
  return true;
}

bool Session::ReadBody() {
  // Small requests end up in the attempt's buffer whole, sent once.
  while (true) {
    size_t used = 0;
    auto ev = req_.Execute(in_.data(), in_.rpos, in_.wpos, &used);
    in_.rpos += used;
    st_.bytes_in += used;
    if (ev == MessageParser::Event::kMessageDone) return true;
    if (ev == MessageParser::Event::kError) return up_.early_answer() || RefuseBody();
    if (ev == MessageParser::Event::kHeadDone) continue;
    // Need more body: send what we have before waiting for the client.
    if (up_.HasUnsent() && !up_.Send()) return AnswerFailure(FailureText());
    if (up_.early_answer()) return true;
    ReadResult r = FillClient(
        false, Clock::now() + std::chrono::milliseconds(proxy_->options().idle_timeout_ms),
        up_.fd());
    if (r == ReadResult::kAnswered || (r == ReadResult::kUpstreamGone && up_.answer_begun())) {
      // The whole answer is in: the rest of the body is not wanted. Else an
      // interim or a streamed answer: the body goes on.
      if (up_.Pump()) return true;
      continue;
    }
    if (r == ReadResult::kUpstreamGone) {
      // Closed before any answer: a reused connection the backend had
      // dropped; what was sent goes again on a fresh one.
      if (!up_.Resend()) return AnswerFailure(FailureText());
      continue;
    }
    if (r != ReadResult::kOk) return ClientLeft(r);
  }
}

bool Session::ClientLeft(ReadResult why) {
  // The backend has the head and part of the body, so a backend may have
  // acted on it: the decision is logged, with 408 for a stalled body (as
  // nginx's client_body_timeout) or 499 for a client that went away.
  if (up_.connected()) {
    st_.status = why == ReadResult::kTimeout ? 408 : 499;
    up_.Close();
    LogRequest();
  }
  return false;
}

bool Session::OnBody(const char* data, size_t len) {
  st_.body_bytes += len;
  uint64_t max_body = proxy_->options().max_body_bytes;
  if (max_body > 0 && st_.body_bytes > max_body) {
    st_.body_too_large = true;
    return false;
  }
  mirror_.AddBody(data, len);
  if (st_.rechunk) {
    AppendChunk(&up_.out(), data, len);
  } else {
    up_.out().append(data, len);
  }
  if (up_.ShouldSend()) {
    if (!up_.Send()) return false;
    if (up_.early_answer()) return false;  // stops the parser; ReadBody sees early_answer()
  }
  return true;
}

bool Session::RefuseBody() {
  if (up_.failure() != Failure::kNone && !st_.body_too_large) {
    return AnswerFailure(FailureText());
  }
  const std::string why =
      st_.body_too_large
          ? "request body over the limit of " +
                std::to_string(proxy_->options().max_body_bytes) + " bytes"
          : std::string("malformed request body: ") + (req_.error() ? req_.error() : "parse error");
  const int status = st_.body_too_large ? 413 : 400;
  // Nothing reached a backend: the router's own refusal. Otherwise the
  // backend has the head and part of the body, and that exchange is cut:
  // the decision is logged with the answer the client got.
  if (!up_.connected()) return Refuse(status, why);
  up_.Close();
  SendError(status, why, true);
  return false;
}

bool Session::Forward() {
  bool sent = true;
  if (!up_.early_answer()) {
    st_.request_done = true;
    if (st_.rechunk) up_.out().append("0\r\n\r\n");
    sent = up_.Send();
  }
  if (up_.early_answer()) {
    // The backend answered before it took the whole body (an early 413 or
    // 401): its answer is relayed, the rest of the body is not sent, and
    // both connections close after the answer (the client's unread body is
    // drained by the lingering close, so it reads the answer, not a reset).
    st_.client_keep_alive = false;
    linger_ = true;
  }
  while (true) {
    if (sent) {
      Outcome outcome = up_.ReadAnswer(st_.request_done, Idempotent());
      st_.upstream_ms = up_.upstream_ms();
      if (outcome != Outcome::kFailed) return EndAnswer(outcome);
    }
    std::string why = FailureText();
    if (!CanFallback()) {
      AnswerFailure(why);
      return st_.client_keep_alive;
    }
    FallBack(std::move(why));
    sent = up_.Send();
  }
}

bool Session::EndAnswer(Outcome outcome) {
  st_.status = up_.status();
  switch (outcome) {
    case Outcome::kTunnel:
      Tunnel();
      return false;
    case Outcome::kCut:
      // Part of the answer is out: the only honest signal left is a cut.
      if (st_.status == 0) st_.status = 502;
      Conclude();
      st_.client_keep_alive = false;
      return false;
    case Outcome::kAnswered:
      st_.client_keep_alive = up_.client_keep_alive();
      Conclude();
      mirror_.Submit(st_.method, st_.request_id, st_.backend_name, st_.ts_ms);
      return !st_.client_failed && st_.client_keep_alive;
    case Outcome::kFailed:
      break;  // Forward answers failures
  }
  return false;
}

void Session::Tunnel() {
  Proxy* proxy = proxy_;
  RunTunnel({fd_, &in_, &st_.bytes_in}, {up_.fd(), &up_.in(), &st_.bytes_out},
            std::chrono::milliseconds(proxy_->options().tunnel_idle_ms),
            [proxy](Clock::time_point now) {
              return proxy->stopping() && now >= proxy->tunnels_end_at();
            });
  up_.Close();
  st_.client_keep_alive = false;
  Conclude();
}

// --- What goes upstream ----------------------------------------------------

void Session::WriteHead(const Instance& instance, const std::string& base_path,
                        std::string* out) {
  out->append(st_.method);
  out->push_back(' ');
  out->append(base_path);
  out->append(st_.path_and_query);
  out->append(" HTTP/1.1\r\n");
  AppendForwardedHeaders(out, instance.host(), instance.port(), st_.rechunk, false);
  out->append("\r\n");
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
  int field = -1;
  for (const HeaderSpan& h : req_.headers()) {
    ++field;
    std::string_view name = h.name.in(base), value = h.value.in(base);
    // X-Request-Id: only the one the log names (an empty, over-long or
    // second one is not forwarded beside it). X-Strangler-Mirror marks the
    // router's copies: a client's own is never passed on.
    if (IsHopByHop(name) || conn_tokens_.Names(name) || IEquals(name, "expect") ||
        IEquals(name, "x-forwarded-proto") || IEquals(name, "x-forwarded-host") ||
        IEquals(name, "x-strangler-mirror") ||
        (IEquals(name, "x-request-id") && field != st_.request_id_field) ||
        (st_.absolute_host && IEquals(name, "host")) ||
        (mirror_copy && IEquals(name, "content-length"))) {
      continue;
    }
    if (IEquals(name, "x-forwarded-for")) {
      if (xff_done) continue;
      xff_done = true;
      out->append(name);
      out->append(": ");
      out->append(st_.xff);
      out->append(", ");
      out->append(client_ip_);
      out->append("\r\n");
      continue;
    }
    AppendHeader(out, name, value);
  }
  if (chunked) out->append("Transfer-Encoding: chunked\r\n");
  if (st_.websocket && !mirror_copy) out->append("Connection: upgrade\r\nUpgrade: websocket\r\n");
  if (!xff_done) AppendHeader(out, "X-Forwarded-For", client_ip_);
  out->append("X-Forwarded-Proto: http\r\n");
  if (st_.absolute_host) AppendHeader(out, "Host", st_.host);
  if (!st_.host.empty()) {
    AppendHeader(out, "X-Forwarded-Host", st_.host);
  } else {
    // HTTP/1.0 clients may send no Host; HTTP/1.1 backends need one.
    bool v6 = host.find(':') != std::string::npos;
    out->append(v6 ? "Host: [" : "Host: ");
    out->append(host);
    out->append(v6 ? "]:" : ":");
    out->append(std::to_string(port));
    out->append("\r\n");
  }
  if (!st_.has_request_id) AppendHeader(out, "X-Request-Id", st_.request_id);
}

void Session::MaybeMirror() {
  const auto& plan = snap_->routes[static_cast<size_t>(st_.decision.route)].mirror;
  if (!mirror_.Wanted(*plan, st_.method, req_.has_content_length(), req_.content_length(),
                      NextRandom())) {
    return;
  }
  std::string headers;
  const Instance& first = *plan->targets.front().instance;
  AppendForwardedHeaders(&headers, first.host(), first.port(), false, true);
  mirror_.Begin(plan, st_.path_and_query, std::move(headers));
}

// Points the request at backend `index`: its next instance in turn, with the
// upstream head for it.
void Session::UseBackend(int index) {
  const BackendTarget* target = snap_->targets[static_cast<size_t>(index)].get();
  st_.backend_name = target->backend->name;
  up_.Begin(target);
}

RelayRequest Session::AnswerFor(RelayObserver** capture) {
  RelayRequest rr;
  rr.head = st_.is_head;
  rr.http10 = st_.http10;
  rr.websocket = st_.websocket && !st_.fell_back;
  // An answer that begins before the whole request was read may end
  // before it too: the client connection then closes after it (its unread
  // body stands in the way of a next request), so the answer says so.
  rr.client_keep_alive = st_.client_keep_alive && !proxy_->stopping() && st_.request_done;
  rr.refuse_5xx = FallbackOn5xx();
  rr.request_id = st_.request_id;
  *capture = mirror_.capture();
  return rr;
}

bool Session::Deliver(const std::string& bytes) {
  st_.bytes_out += bytes.size();
  if (fio::SendAll(fd_, bytes.data(), bytes.size(), SendTimeout())) return true;
  st_.client_failed = true;
  return false;
}

// --- Failures and fallback -------------------------------------------------

bool Session::CanFallback() const {
  const int route = st_.decision.route;
  if (st_.fell_back || route < 0 || up_.delivered() || !st_.request_done || st_.has_body) {
    return false;
  }
  if (!snap_->table->routes()[static_cast<size_t>(route)].fallback) return false;
  if (st_.method != "GET" && st_.method != "HEAD" && st_.method != "OPTIONS") return false;
  int other = snap_->table->ElseBackend(route);
  return other >= 0 && other != st_.decision.backend;
}

bool Session::FallbackOn5xx() const {
  return CanFallback() &&
         snap_->table->routes()[static_cast<size_t>(st_.decision.route)].fallback_on_5xx;
}

bool Session::Idempotent() const {
  const std::string& m = st_.method;
  if (m == "GET" || m == "HEAD" || m == "OPTIONS" || m == "TRACE" || m == "PUT" || m == "DELETE") {
    return true;
  }
  for (const HeaderView& h : header_views_) {
    if (IEquals(h.name, "idempotency-key") && !h.value.empty()) return true;
  }
  return false;
}

// Sends the same request to the route's else backend. Nothing of the first
// answer reached the client, and the request is idempotent and bodiless, so
// the client sees one answer; the log says reason "fallback" and why.
void Session::FallBack(std::string why) {
  st_.fell_back = true;
  st_.fallback_why = std::move(why);
  st_.decision.backend = snap_->table->ElseBackend(st_.decision.route);
  st_.decision.reason = Reason::kFallback;
  st_.reason = ReasonName(st_.decision.reason);
  st_.status = 0;
  UseBackend(st_.decision.backend);
}

std::string Session::FailureText() const {
  std::string msg = "backend '" + std::string(st_.backend_name) + "' ";
  switch (up_.failure()) {
    case Failure::kRefused: return msg + "refused the connection";
    case Failure::kTimeout:
      return msg + "did not answer within " + std::to_string(up_.timeout_ms()) + " ms";
    case Failure::kNone:
    case Failure::kFailed:
      break;
  }
  return msg + (up_.refused_status() ? "answered " + std::to_string(up_.refused_status())
                                     : std::string("failed before answering"));
}

bool Session::AnswerFailure(const std::string& why) {
  up_.Close();
  // If the request body was not read to its end, the connection cannot go on.
  bool close_after = !st_.client_keep_alive || !st_.request_done;
  SendError(up_.failure() == Failure::kTimeout ? 504 : 502, why, close_after);
  return false;
}

bool Session::Refuse(int status, const std::string& message) {
  st_.route_name = st_.backend_name = {};
  st_.reason = "refused";
  st_.decision.bucket = -1;
  SendError(status, message, true);
  LogRequest();
  return false;
}

void Session::SendError(int status, std::string_view message, bool close_after) {
  st_.status = status;
  ErrorReply reply;
  reply.status = status;
  reply.message = message;
  reply.backend = st_.backend_name;
  reply.request_id = st_.request_id;
  reply.http10 = st_.http10;
  reply.head_only = st_.is_head;
  if (close_after || !st_.client_keep_alive) {
    reply.close = true;
    st_.client_keep_alive = false;
    linger_ = true;
  }
  std::string bytes = RenderErrorReply(reply);
  st_.bytes_out += bytes.size();
  fio::SendAll(fd_, bytes.data(), bytes.size(), SendTimeout());
  if (!st_.backend_name.empty()) Conclude();
}

// --- The record ------------------------------------------------------------

void Session::Conclude() {
  if (st_.decision.route >= 0 && st_.status > 0) CountRequest();
  LogRequest();
}

// Ramps judge a route by the 5xx rate of what went to --to against what went
// to --else. A request that fell back counts as a failure of --to.
void Session::CountRequest() {
  const RouteExtras& x = snap_->routes[static_cast<size_t>(st_.decision.route)];
  RouteCounters* c = x.counters;
  if (st_.fell_back || st_.decision.backend == x.to_backend) {
    c->to_n.fetch_add(1, std::memory_order_relaxed);
    if (st_.fell_back || st_.status >= 500) c->to_5xx.fetch_add(1, std::memory_order_release);
  } else {
    c->else_n.fetch_add(1, std::memory_order_relaxed);
    if (st_.status >= 500) c->else_5xx.fetch_add(1, std::memory_order_release);
  }
}

void Session::LogRequest() {
  DecisionRecord r;
  r.ts_ms = st_.ts_ms;
  r.request_id = st_.request_id;
  r.method = st_.method;
  r.path = st_.path;
  r.route = st_.route_name;
  r.backend = st_.backend_name;
  r.reason = st_.reason;
  r.bucket = st_.decision.bucket;
  r.status = st_.status;
  r.upstream_ms = st_.upstream_ms;
  r.total_ms = MsSince(st_.t0);
  r.bytes_in = st_.bytes_in;
  r.bytes_out = st_.bytes_out;
  r.client = client_ip_;
  r.ruleset = snap_ ? snap_->table->version() : 0;
  r.fallback = st_.fallback_why;
  proxy_->log()->Write(r);
}

}  // namespace strangler
