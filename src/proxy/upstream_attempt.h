// UpstreamAttempt: one try of a request at one backend. It connects (a
// pooled connection of the backend's next instance, or a new one), sends the
// request as the session hands it over (the head, then the body as it
// arrives), relays the answer to the client through a ResponseRelay, and
// ends in an Outcome. Retries that are safe stay inside it: another instance
// when a connect is refused (nothing was sent), and the request once more on
// a fresh connection when a pooled one turns out closed (see Send and
// ReadAnswer for when). A fallback to another backend is the session's: it
// begins the attempt again at the other backend.
// Lives in a session's fiber; not thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>

#include "http/response_relay.h"
#include "metrics/request_metrics.h"
#include "proxy/fiber.h"
#include "proxy/transport.h"
#include "proxy/read_buffer.h"
#include "proxy/upstream.h"

namespace strangler {

class UpstreamAttempt {
 public:
  // What the attempt needs from the client side of the session.
  class Client {
   public:
    virtual ~Client() = default;
    // Writes the request head for `instance`; the instance URL's
    // `base_path` goes in front of the client's target.
    virtual void WriteHead(const Instance& instance, const std::string& base_path,
                           std::string* out) = 0;
    // How the answer about to begin is relayed; *capture (null for none)
    // sees the final answer go by.
    virtual RelayRequest AnswerFor(RelayObserver** capture) = 0;
    // Sends relayed bytes to the client; false when that failed.
    virtual bool Deliver(const std::string& bytes) = 0;
  };

  // Why an attempt got no answer.
  enum class Failure {
    kNone,
    kRefused,         // no connection: refused or unreachable
    kConnectTimeout,  // no connection within the backend's connect timeout
    kUnresolved,      // no address for the instance's host name
    kTls,             // connected, but the TLS handshake failed (tls_error() says why)
    kQueue,           // every instance at its cap: the wait ended or the queue was full
    kTimeout,         // no (whole) answer within the backend's timeout
    kFailed,
  };

  // How an attempt ended, once its answer was read.
  enum class Outcome {
    kAnswered,  // the whole answer was relayed (Deliver may have failed)
    kTunnel,    // a 101: the connection (fd(), in()) is the tunnel's now
    kCut,       // part of the answer reached the client, then the backend failed
    kFailed,    // nothing reached the client: failure() says why
  };

  // Request bytes buffered beyond this are sent before more are taken.
  static constexpr size_t kFlushBytes = 64 * 1024;

  // Upstream errors are counted in `metrics` (the worker's shard; it must
  // outlive the attempt).
  UpstreamAttempt(Client* client, size_t max_header_bytes, MetricShard* metrics);
  ~UpstreamAttempt();
  UpstreamAttempt(const UpstreamAttempt&) = delete;
  UpstreamAttempt& operator=(const UpstreamAttempt&) = delete;

  // Aims a new attempt at `target`'s next instance in turn, with the head
  // written for it. A connection still held is closed.
  void Begin(const BackendTarget* target);
  // The request bytes not yet sent: the session appends the body here.
  std::string& out() { return out_; }
  bool HasUnsent() const { return out_.size() > sent_; }
  bool ShouldSend() const { return out_.size() - sent_ >= kFlushBytes; }

  // Sends what out() holds beyond what was sent, connecting first when
  // needed (another instance when the connect is refused), and once more
  // on a fresh connection when a reused one turns out closed before any
  // answer. False when the request cannot go on (failure() says why); true
  // with early_answer() when the backend answered before taking it all.
  bool Send();
  // While the body is still coming: relays what the backend sent so far,
  // without waiting. True once the answer has ended (early_answer(): the
  // rest of the body is not wanted).
  bool Pump();
  // The backend closed before any answer while the body was still coming:
  // on a reused connection, everything so far goes again on a fresh one,
  // once. False (failure() set) when that is not possible or fails.
  bool Resend();
  // Reads and relays the answer to its end. A reused connection closed
  // before any answer byte, after the whole request (`request_done`) was
  // sent, is tried once more on a fresh one when sending the request twice
  // is harmless (`idempotent`). The connection goes back to the pool only
  // when nothing follows the answer.
  Outcome ReadAnswer(bool request_done, bool idempotent);
  void Close();

  int fd() const { return fd_; }
  ReadBuffer& in() { return in_; }
  // Between requests: the buffer's memory goes back (what is left in it
  // belongs to no request; the next answer starts afresh).
  void ReleaseBuffer() {
    in_.rpos = in_.wpos = 0;
    in_.Release();
  }
  const BackendTarget* target() const { return target_; }
  int timeout_ms() const { return target_->backend->timeout_ms; }
  const Backend& backend() const { return *target_->backend; }
  int connect_timeout_ms() const { return std::min(backend().connect_timeout_ms, timeout_ms()); }
  bool early_answer() const { return s_.early_answer; }
  bool answer_begun() const { return s_.relay_begun; }
  bool delivered() const { return s_.delivered; }  // a byte of the answer reached the client
  bool connected() const { return s_.connected; }  // the backend was reached (it may have bytes)
  Failure failure() const { return s_.failure; }
  // The 5xx not relayed because the request may fall back (0 if none).
  int refused_status() const { return s_.refused_status; }
  int status() const { return relay_.status(); }
  bool client_keep_alive() const { return relay_.client_keep_alive(); }
  double upstream_ms() const { return s_.upstream_ms; }
  // Time this attempt waited for a connection under the cap (< 0: none).
  double queue_ms() const { return s_.queue_ms; }
  bool queue_full() const { return s_.queue_full; }  // kQueue without a wait
  // Why the instance tried last has no address (kUnresolved).
  std::string resolve_error() const { return instance_->ResolveError(); }
  // Why the last TLS handshake failed (kTls).
  const std::string& tls_error() const { return s_.tls_error; }
  // host:port of the instance tried last.
  std::string instance_text() const {
    return instance_ ? HostPortText(instance_->host(), instance_->port()) : "";
  }
  // Every instance of the backend was out of rotation when the attempt
  // began: it went to one anyway (panic mode).
  bool all_down() const { return s_.all_down; }

 private:
  using Clock = std::chrono::steady_clock;

  void UseInstance(size_t pick);
  // Before anything was sent: instance `pick` instead, its head rebuilt.
  void SwitchInstance(size_t pick);
  // Before anything was sent: the backend's next instance instead of this
  // one. False when it has no other.
  bool NextInstance();
  bool Connect(bool fresh);
  // A pooled connection failed before any answer: all of the request goes
  // again (from its first byte) on a fresh connection, of another instance
  // when this one refuses. False (failure() set) when there is none.
  bool Reconnect();
  // A fresh connection closed before any answer: all of the (idempotent,
  // whole) request goes to another instance; the failure is counted
  // against this one. False (failure() set) when there is none.
  bool ToAnotherInstance();
  // Before anything was sent: a connection of the instance in turn, else
  // of another instance with room, else a place in the queue of the one
  // with the fewest waiting. Switches instance_ as needed.
  Instance::Got TakeAny(int* fd);
  fio::SendResult SendOnce();
  // Starts reading the answer (ResponseRelay::Begin); in() is emptied.
  void BeginAnswer();
  // Room in in() for more bytes; false (kFailed) when an answer's head
  // would pass the limit.
  bool Room();
  bool Deliver();

  void CountError(UpstreamError kind) {
    metrics_->CountUpstreamError(target_->metric_id, kind);
  }

  Client* client_;
  const size_t max_header_bytes_;
  MetricShard* metrics_;
  const BackendTarget* target_ = nullptr;
  Instance* instance_ = nullptr;
  size_t pick_ = 0;  // index of instance_ in target_->instances
  int fd_ = -1;
  ReadBuffer in_;
  ResponseRelay relay_;
  // To the backend. While the request fits in kReplayBytes it is kept whole
  // here for a retry (replayable_); sent_ bytes of it are sent.
  std::string out_;
  size_t sent_ = 0;
  size_t head_len_ = 0;  // the head's bytes at the front of out_
  // What one attempt found out; a new attempt starts from State{}.
  struct State {
    Failure failure = Failure::kNone;
    bool connected = false, reused = false, retried = false;
    bool moved = false;  // sent again to another instance after a connection dropped
    bool replayable = true;      // the whole request so far is in out_
    bool early_answer = false;   // the backend answered before the body was all sent
    bool relay_begun = false;    // BeginAnswer() ran
    bool answer_ended = false;   // Pump() saw the answer end (answer_ev says how)
    bool any_answer_byte = false;
    bool delivered = false;
    ResponseRelay::Event answer_ev = ResponseRelay::Event::kNeedMore;
    int refused_status = 0;
    Clock::time_point started;
    double upstream_ms = 0;
    double queue_ms = -1;
    bool queue_full = false;
    const Instance* failed_instance = nullptr;  // whose connect failed (not tried again)
    bool all_down = false;
    bool bad_answer = false;  // the answer was no HTTP (strangler_upstream_errors_total)
    std::string tls_error;    // kTls: why
  };
  // No connection was made (refused, not in time, no address, no TLS):
  // nothing was sent, so another instance may take the request.
  bool NoConnection() const {
    return s_.failure == Failure::kRefused || s_.failure == Failure::kConnectTimeout ||
           s_.failure == Failure::kUnresolved || s_.failure == Failure::kTls;
  }
  // Tells the instance how the attempt went (passive ejection).
  void Judge();
  State s_;
};

}  // namespace strangler
