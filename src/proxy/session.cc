#include "proxy/session.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

#include "base/time.h"
#include "http/request_target.h"
#include "proxy/error_reply.h"
#include "proxy/fiber.h"
#include "proxy/net.h"
#include "proxy/random.h"
#include "proxy/transport.h"
#include "proxy/tunnel.h"

namespace strangler {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kTickMs = 250;  // client reads wake this often to see shutdown
constexpr size_t kBufferBytes = BufferCache::kBlockBytes;
// After an error answer that closes the connection, what the client still
// sends is read and thrown away for at most this long, each read waiting at
// most kLingerIdleMs.
constexpr int kLingerMs = 2000;
constexpr int kLingerIdleMs = 500;

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
  fio::ShutdownWrite(fd);
  const Clock::time_point until = Clock::now() + std::chrono::milliseconds(kLingerMs);
  char sink[16 * 1024];
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    if (left <= 0) return;
    ssize_t n =
        fio::Recv(fd, sink, sizeof(sink), static_cast<int>(std::min<int64_t>(left, kLingerIdleMs)));
    if (n <= 0) return;  // the client closed, went quiet or failed
  }
}

Session::Session(Proxy* proxy, int fd, Clock::time_point accepted)
    : proxy_(proxy),
      fd_(fd),
      req_(MessageType::kRequest, this),
      in_(kBufferBytes),
      metrics_(&proxy->metrics().shard(fio::WorkerIndex())),
      up_(this, proxy->options().max_header_bytes, metrics_),
      mirror_(&proxy->mirror()),
      first_head_by_(accepted + std::chrono::milliseconds(proxy->options().header_timeout_ms)) {}

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
        Refuse(error_status, error_status == 400 ? std::string("malformed request: ") +
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
  if (idle && watch_fd < 0 && in_.empty() && !req_.in_head()) return AwaitClient(deadline);
  // A head in progress is bounded by ReadHead.
  if (!in_.MakeRoom(req_.in_head(), SIZE_MAX)) return ReadResult::kError;
  while (true) {
    if (watch_fd >= 0) {
      // The backend first: a client that always has more body must not hide
      // an answer that is already there.
      fio::WaitFor both[2] = {{watch_fd, true}, {fd_, true}};
      int which = fio::WaitAny(both, 2, kTickMs);
      if (which == 0) {
        int p = fio::Peek(watch_fd);
        if (p > 0) return ReadResult::kAnswered;
        if (p == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return ReadResult::kUpstreamGone;
        continue;  // nothing (or a TLS record with no data)
      }
      if (which < 0) {
        if (Clock::now() >= deadline) return ReadResult::kTimeout;
        continue;
      }
      // The client side is (said to be) readable: take what is there without
      // parking on the client alone, or the backend would go unwatched.
      ssize_t n = fio::TryRecv(fd_, in_.tail(), in_.room());
      if (n > 0) {
        in_.wpos += static_cast<size_t>(n);
        return ReadResult::kOk;
      }
      if (n == 0) return ReadResult::kEof;
      if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
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

// Between requests, with nothing unread: a read that finds nothing leaves
// the connection waiting without its buffers (an idle keep-alive connection
// holds none; they are taken again when bytes come). The same syscalls as a
// plain parked read: one recv that says EAGAIN, the wait, then the read.
Session::ReadResult Session::AwaitClient(Clock::time_point deadline) {
  while (true) {
    if (!in_.MakeRoom(false, SIZE_MAX)) return ReadResult::kError;
    ssize_t n = fio::TryRecv(fd_, in_.tail(), in_.room());
    if (n > 0) {
      in_.wpos += static_cast<size_t>(n);
      return ReadResult::kOk;
    }
    if (n == 0) return ReadResult::kEof;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) return ReadResult::kError;
    in_.Release();
    fio::TrimIdle(fd_);
    up_.ReleaseBuffer();
    const fio::WaitFor client{fd_, true};
    while (fio::WaitAny(&client, 1, kTickMs) < 0) {
      if (proxy_->stopping()) return ReadResult::kStop;
      if (Clock::now() >= deadline) return ReadResult::kTimeout;
      // Kept alive with nothing sent: closed when new clients need the room.
      if (served_any_ && proxy_->TakeIdleReclaim()) return ReadResult::kStop;
    }
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
  // The first head's clock started at accept, before any TLS handshake, and
  // does not start again when its first byte comes: a client that trickles
  // the handshake and then the head holds its place for one timeout, not two.
  const auto head_deadline = [&] {
    Clock::time_point d = Clock::now() + std::chrono::milliseconds(o.header_timeout_ms);
    return served_any_ ? d : std::min(d, first_head_by_);
  };
  Clock::time_point deadline =
      served_any_ ? Clock::now() + std::chrono::milliseconds(o.idle_timeout_ms) : head_deadline();
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
        deadline = head_deadline();
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
      deadline = head_deadline();
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
  int bad_status = 400;
  if (!AnalyseHead(&bad_status, &bad_head)) {
    return Refuse(bad_status,
                  std::string(bad_status == 400 ? "malformed request: " : "") + bad_head);
  }
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
  st_.http10 = req_.http_major() == 1 && req_.http_minor() == 0;
  st_.is_head = method == "HEAD";
  st_.client_keep_alive = req_.keep_alive() && !st_.http10 && !req_.upgrade();
  st_.rechunk = req_.chunked();
  st_.bytes_in = in_.rpos - req_.head_start();
}

bool Session::AnalyseHead(int* status, const char** why) {
  const char* base = in_.data();
  header_views_.clear();
  conn_tokens_.Reset();
  int hosts = 0, codings = 0;
  bool only_chunked = true, last_chunked = false;
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
    } else if (IEquals(name, "transfer-encoding")) {
      ++codings;
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t'))
        value.remove_suffix(1);
      only_chunked = only_chunked && IEquals(value, "chunked");
      std::string_view last = value.substr(value.rfind(',') + 1);  // npos + 1: all of it
      while (!last.empty() && (last.front() == ' ' || last.front() == '\t')) last.remove_prefix(1);
      last_chunked = IEquals(last, "chunked");
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
  // The body is forwarded re-chunked under the router's own
  // Transfer-Encoding: any other coding ("gzip, chunked", "identity,
  // chunked") would be lost on the way, so it is refused as nginx does (RFC
  // 9112 6.1: 501 for a coding the server does not understand). One that
  // does not end in chunked leaves the body's length unknowable, and an
  // HTTP/1.0 request has no Transfer-Encoding: 400 (RFC 9112 6.1, 6.3).
  if (codings > 0 && st_.http10) {
    *why = "HTTP/1.0 request with Transfer-Encoding";
  } else if (codings > 0 && !last_chunked) {
    *why = "Transfer-Encoding does not end in chunked: the body's length is unknowable";
  } else if (codings > 1 || !only_chunked) {
    *status = 501;
    *why = "Transfer-Encoding other than a single 'chunked' is not supported";
  }
  // WebSocket (RFC 6455 4.1): an HTTP/1.1 GET with Connection: upgrade.
  st_.websocket = upgrade_websocket && req_.upgrade() && !st_.http10 && st_.method_is("GET");
  if (const char* bad = BadTarget(req_.target().in(base))) *why = bad;
  return *why == nullptr;
}

bool Session::Decide() {
  const char* base = in_.data();
  std::string_view target = req_.target().in(base);
  // origin-form "/p?q"; absolute-form "http://host/p?q" is routed on its
  // path and forwarded in origin-form, with the target's authority as Host.
  std::string_view path_and_query = target;
  if (!st_.method_is("CONNECT")) {
    TargetParts parts = SplitTarget(target, &st_.absolute_target);
    if (parts.error != nullptr)
      return Refuse(400, std::string("malformed request: ") + parts.error);
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
  // A backend that decodes the path may cut it at a NUL or trim a control
  // byte: "/admin%00/x" or "/admin%0a" would be "/admin" there while they
  // are routed as other paths here. No real path holds one.
  if (HasEncodedControl(raw_path)) {
    return Refuse(400, "malformed request: an encoded control byte (%00-%1F, %7F) in the path");
  }
  if (proxy_->options().reject_encoded_slash && HasEncodedSlash(raw_path)) {
    return Refuse(400,
                  "malformed request: an encoded '/' or '\\' in the path (--encoded-slash reject)");
  }

  // Decided on the normalised path (so no spelling of a path skips its
  // route), logged with it; forwarded with the client's raw target.
  RequestView view;
  view.method = st_.method;
  bool ambiguous = false;
  view.path = NormalizePath(raw_path, &scratch_, &ambiguous, &st_.dot_segments);
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
  // over --max-body-mb): no backend answered, so the line names none (an
  // audit by backend would count answers it never gave).
  if (st_.method_is("CONNECT")) return Refuse(405, "CONNECT is not supported by this proxy");
  if (st_.decision.route >= 0 && snap_->routes[static_cast<size_t>(st_.decision.route)].mirror &&
      !st_.websocket) {
    MaybeMirror();
  }
  st_.has_body = req_.chunked() || (req_.has_content_length() && req_.content_length() > 0);
  const uint64_t max_body = proxy_->options().max_body_bytes;
  if (max_body > 0 && req_.has_content_length() && req_.content_length() > max_body) {
    return Refuse(413, "request body over the limit of " + std::to_string(max_body) + " bytes");
  }
  // A --fallback route whose --to backend has every instance out of
  // rotation goes to --else at once, rather than wait on instances known
  // to fail.
  if (up_.all_down() && FallbackAllowed()) {
    FallBack("all instances down");
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
    NoteQueueWait();
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
          ? "request body over the limit of " + std::to_string(proxy_->options().max_body_bytes) +
                " bytes"
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

}  // namespace strangler
