// Session, continued: its dealings with the backend side. The head it
// sends, how an answer is relayed, what happens when an attempt fails (a
// fallback or a 502/504), and the record of the request.
#include <chrono>
#include <string>

#include "proxy/error_reply.h"
#include "proxy/random.h"
#include "proxy/session.h"
#include "proxy/transport.h"

namespace strangler {

// --- What goes upstream ----------------------------------------------------

void Session::WriteHead(const Instance& instance, const std::string& base_path, std::string* out) {
  out->append(st_.method);
  out->push_back(' ');
  // "OPTIONS *" asks the server itself: no base path in front of it.
  if (st_.path_and_query != "*") out->append(base_path);
  if (!base_path.empty() && st_.dot_segments) {
    // "/v2" + "/../admin" would climb out of the base path at a backend
    // that resolves dot segments: it gets the path as it was routed
    // instead, under its base path (as nginx's proxy_pass with a URI does).
    AppendRoutedTarget(out);
  } else {
    out->append(st_.path_and_query);
  }
  out->append(" HTTP/1.1\r\n");
  AppendForwardedHeaders(out, instance.host(), instance.port(), st_.rechunk, false);
  out->append("\r\n");
}

void Session::AppendRoutedTarget(std::string* out) const {
  out->append(st_.path);
  size_t q = st_.path_and_query.find('?');
  if (q != std::string_view::npos) out->append(st_.path_and_query.substr(q));
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
  out->append(proxy_->tls() ? "X-Forwarded-Proto: https\r\n" : "X-Forwarded-Proto: http\r\n");
  if (st_.absolute_host) AppendHeader(out, "Host", st_.host);
  if (!st_.host.empty()) {
    AppendHeader(out, "X-Forwarded-Host", st_.host);
  } else {
    // HTTP/1.0 clients may send no Host; HTTP/1.1 backends need one.
    AppendHeader(out, "Host", HostPortText(host, port));
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
  // With dot segments, a mirror with a base path gets the path as routed,
  // as the primary would (see WriteHead); without one, the raw target.
  bool base_path = false;
  for (const MirrorPlan::Target& t : plan->targets) base_path = base_path || !t.base_path.empty();
  std::string routed;
  if (st_.dot_segments && base_path) AppendRoutedTarget(&routed);
  mirror_.Begin(plan, routed.empty() ? st_.path_and_query : std::string_view(routed),
                std::move(headers));
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
  return !up_.delivered() && st_.request_done && FallbackAllowed();
}

bool Session::FallbackAllowed() const {
  const int route = st_.decision.route;
  if (st_.fell_back || route < 0 || st_.has_body) return false;
  if (!snap_->table->routes()[static_cast<size_t>(route)].fallback) return false;
  if (!st_.method_is("GET") && !st_.method_is("HEAD") && !st_.method_is("OPTIONS")) return false;
  int other = snap_->table->ElseBackend(route);
  return other >= 0 && other != st_.decision.backend;
}

bool Session::FallbackOn5xx() const {
  return CanFallback() &&
         snap_->table->routes()[static_cast<size_t>(st_.decision.route)].fallback_on_5xx;
}

bool Session::Idempotent() const {
  const std::string_view m = st_.method;
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
  NoteQueueWait();
  st_.fell_back = true;
  st_.fallback_why = std::move(why);
  metrics_->CountFallback(snap_->routes[static_cast<size_t>(st_.decision.route)].metric_id);
  st_.decision.backend = snap_->table->ElseBackend(st_.decision.route);
  st_.decision.reason = Reason::kFallback;
  st_.reason = ReasonName(st_.decision.reason);
  st_.status = 0;
  UseBackend(st_.decision.backend);
}

std::string Session::FailureText() const {
  std::string msg = "backend '" + std::string(st_.backend_name) + "' ";
  const Backend& b = up_.backend();
  switch (up_.failure()) {
    case Failure::kRefused:
      return msg + "refused the connection";
    case Failure::kUnresolved:
      return msg + "has no address: " + up_.resolve_error();
    case Failure::kTls:
      return msg + "at " + up_.instance_text() + ": " + up_.tls_error();
    case Failure::kConnectTimeout:
      return msg + "did not accept a connection within " +
             std::to_string(up_.connect_timeout_ms()) + " ms";
    case Failure::kQueue:
      return msg + "is saturated: every instance has its " + std::to_string(b.max_conns) +
             " connections (--max-conns) busy and " +
             (up_.queue_full()
                  ? "its queue is full (--max-queue " + std::to_string(b.max_queue) + ")"
                  : "the request waited " + std::to_string(b.queue_timeout_ms) +
                        " ms in its queue");
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
  int status = 502;
  switch (up_.failure()) {
    case Failure::kTimeout:
    case Failure::kConnectTimeout:
      status = 504;
      break;
    case Failure::kQueue:
      status = 503;
      st_.reason = "queue";
      break;
    default:
      break;
  }
  SendError(status, why, close_after);
  return false;
}

void Session::NoteQueueWait() {
  if (up_.queue_ms() >= 0) st_.queue_ms = up_.queue_ms();
}

bool Session::Refuse(int status, const std::string& message) {
  if (st_.path.empty() && !st_.method.empty()) {
    // Not decided yet: the log names the path as sent.
    std::string_view target = req_.target().in(in_.data());
    st_.path.assign(target.substr(0, target.find('?')));
  }
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
  Deliver(bytes);  // counted in bytes_out like a relayed answer
  if (!st_.backend_name.empty()) Conclude();
}

// --- The record ------------------------------------------------------------

void Session::Conclude() {
  NoteQueueWait();
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
  const auto now = std::chrono::steady_clock::now();
  r.total_ms = std::chrono::duration<double, std::milli>(now - st_.t0).count();
  r.bytes_in = st_.bytes_in;
  r.bytes_out = st_.bytes_out;
  r.client = client_ip_;
  r.ruleset = snap_ ? snap_->table->version() : 0;
  r.fallback = st_.fallback_why;
  r.queue_ms = st_.queue_ms;
  if (up_.target() != nullptr && up_.all_down()) r.instances = "all_down";
  proxy_->log()->Write(r);
  // The same request in the metrics, by the same names.
  uint32_t route = 0, backend = 0;
  if (snap_ && !st_.route_name.empty() && st_.decision.route >= 0) {
    route = snap_->routes[static_cast<size_t>(st_.decision.route)].metric_id;
  }
  if (snap_ && !st_.backend_name.empty() && st_.decision.backend >= 0) {
    backend = snap_->targets[static_cast<size_t>(st_.decision.backend)]->metric_id;
  }
  // Not timed: an answer no backend gave, and a WebSocket tunnel (101), whose
  // total_ms is how long it stayed open, not how long an answer took.
  const double seconds = backend != 0 && r.status != 101 ? r.total_ms / 1000 : -1;
  metrics_->CountRequest(route, backend, r.reason, r.status, seconds);
  if (route != 0 && r.status > 0) {
    // The route's last minute, split as ramps judge it (Session::CountRequest).
    const RouteExtras& x = snap_->routes[static_cast<size_t>(st_.decision.route)];
    LiveSample live;
    live.error = st_.status >= 500 || st_.fell_back;
    live.fell_back = st_.fell_back;
    live.seconds = seconds;
    // The side is the decision's backend (also when the router answered for
    // it: a 503 at its cap), --to for a request that fell back from it.
    const int chosen = st_.fell_back ? x.to_backend : st_.decision.backend;
    const uint32_t side =
        chosen >= 0 ? snap_->targets[static_cast<size_t>(chosen)]->metric_id : backend;
    metrics_->CountLive(route, side, live, LivePeriod(now));
  }
}

}  // namespace strangler
