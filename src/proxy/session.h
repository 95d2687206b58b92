// Session: one client connection, as Envoy has a connection apart from its
// streams. It reads request heads one after another (keep-alive, pipelined),
// and takes each request through its steps: the head analysed, the decision,
// the router's own refusals, the body streamed to an UpstreamAttempt, the
// answer relayed (from the route's --else when --fallback allows), the
// decision logged and counted for ramps, a mirror copy handed over. What one
// request knows lives in a RequestState that the next request starts afresh.
// Runs in one fiber; not thread-safe.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "http/header_fields.h"
#include "http/http_message.h"
#include "proxy/mirror_copy.h"
#include "proxy/proxy.h"
#include "proxy/read_buffer.h"
#include "proxy/request_state.h"
#include "proxy/upstream_attempt.h"

namespace strangler {

// Sends FIN, then reads and drops what the client still sends for a while
// (as nginx's lingering close): closing a socket with unread input sends a
// reset, which can destroy the answer before the client reads it (a 413 to
// a client still sending its body). The caller closes fd.
void LingeringClose(int fd);

class Session : private MessageHandler, private UpstreamAttempt::Client {
 public:
  // `accepted`: when the connection was taken (before a TLS handshake): its
  // first request head must be in by accepted + the head timeout.
  Session(Proxy* proxy, int fd,
          std::chrono::steady_clock::time_point accepted = std::chrono::steady_clock::now());
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // Serves the connection until it closes; closes fd.
  void Run();

 private:
  using Clock = std::chrono::steady_clock;
  using Failure = UpstreamAttempt::Failure;
  using Outcome = UpstreamAttempt::Outcome;
  enum class ReadResult { kOk, kEof, kTimeout, kStop, kError, kAnswered, kUpstreamGone };

  // Request parser events.
  int OnHead() override { return 0; }
  bool OnBody(const char* data, size_t len) override;
  // The upstream attempt's view of the client.
  void WriteHead(const Instance& instance, const std::string& base_path, std::string* out) override;
  RelayRequest AnswerFor(RelayObserver** capture) override;
  bool Deliver(const std::string& bytes) override;

  // Reads more client bytes. With watch_fd >= 0 (the backend of a request
  // whose body is still coming), also returns as soon as that backend sends
  // something (kAnswered) or closes (kUpstreamGone).
  ReadResult FillClient(bool idle, Clock::time_point deadline, int watch_fd = -1);
  // FillClient between requests: the wait holds no buffer (see session.cc).
  ReadResult AwaitClient(Clock::time_point deadline);
  // The next request's head; false at the end of the connection, with
  // *error_status set when the client gets an error answer (400, 408, 414, 431).
  bool ReadHead(int* error_status);

  // The steps of one request, in order; each false when the request ends
  // there (its answer sent, or the client gone).
  bool HandleRequest();
  // A fresh RequestState, its clock started.
  void StartClock();
  void BeginRequest();
  // Collects what the proxy needs from the head; false (with *why, and
  // *status when it is not 400) for a head that must be refused.
  bool AnalyseHead(int* status, const char** why);
  // The target split and its path normalised (400 when that is not safe),
  // then the rules' decision, and the attempt aimed at its backend.
  bool Decide();
  // What the router settles itself before forwarding: CONNECT and a body
  // over --max-body-mb are refused, the mirror copy begins, a client that
  // expects 100-continue gets it.
  bool Admit();
  // Streams the body to the backend as it arrives; true once it is all
  // read, or once the backend answered before it was.
  bool ReadBody();
  // Sends the rest, reads and relays the answer, falls back when the first
  // backend fails and --fallback allows; the request's last step.
  bool Forward();
  bool EndAnswer(Outcome outcome);
  void Tunnel();

  // The normalised path (as routed) and the client's query.
  void AppendRoutedTarget(std::string* out) const;
  void AppendForwardedHeaders(std::string* out, const std::string& host, uint16_t port,
                              bool chunked, bool mirror_copy);
  void MaybeMirror();
  void UseBackend(int index);
  // --fallback: may this failed request go to the route's else backend?
  bool CanFallback() const;
  // The route falls back and this request may go to --else (an idempotent
  // bodiless method, not fallen back yet), whatever the attempt did.
  bool FallbackAllowed() const;
  bool FallbackOn5xx() const;
  // May the request be sent twice? Idempotent methods (RFC 9110 9.2.2), or
  // any request with an Idempotency-Key header.
  bool Idempotent() const;
  // Aims the request at the route's --else backend after `why`.
  void FallBack(std::string why);
  // Why the attempt failed, as the 502/504 and the log say it.
  std::string FailureText() const;
  // The client gets the attempt's failure as 502 or 504; false.
  // Keeps the time the attempt waited in a backend's queue for the log.
  void NoteQueueWait();
  bool AnswerFailure(const std::string& why);
  // An answer the router makes itself, before any backend had the request:
  // logged with reason "refused", no route and no backend; the connection
  // closes after it. False.
  bool Refuse(int status, const std::string& message);
  // The client went away or stalled in the middle of its body. False.
  bool ClientLeft(ReadResult why);
  // The body could not be read or sent: 413, 400 or the backend's failure.
  bool RefuseBody();
  void SendError(int status, std::string_view message, bool close_after);
  // The request is over: it counts for its route's ramp, and its decision
  // is logged.
  void Conclude();
  void CountRequest();
  void LogRequest();
  int SendTimeout() const { return proxy_->options().client_send_timeout_ms; }

  Proxy* proxy_;
  int fd_;
  std::string client_ip_;
  MessageParser req_;
  ReadBuffer in_;         // client bytes
  MetricShard* metrics_;  // this worker's
  UpstreamAttempt up_;
  MirrorCopy mirror_;
  bool linger_ = false;              // an error answer closes the connection: linger first
  bool served_any_ = false;          // a request head was read on this connection
  Clock::time_point first_head_by_;  // the first head's deadline (see the constructor)

  std::shared_ptr<const ProxySnapshot> snap_;
  uint64_t snap_gen_ = 0;
  // Views of the head in progress (into in_), and a buffer for the path.
  std::vector<HeaderView> header_views_;
  ConnectionTokens conn_tokens_;
  std::string scratch_;
  RequestState st_;
};

}  // namespace strangler
