#include "proxy/upstream_attempt.h"

#include <sys/socket.h>

#include <cerrno>

namespace strangler {
namespace {

constexpr size_t kBufferBytes = BufferCache::kBlockBytes;
// A request is kept whole while it is at most this long, so that it can be
// sent again on a fresh connection when a reused one turns out closed.
constexpr size_t kReplayBytes = 64 * 1024;

}  // namespace

UpstreamAttempt::UpstreamAttempt(Client* client, size_t max_header_bytes, MetricShard* metrics)
    : client_(client), max_header_bytes_(max_header_bytes), metrics_(metrics), in_(kBufferBytes) {}

UpstreamAttempt::~UpstreamAttempt() { Close(); }

void UpstreamAttempt::Close() {
  if (fd_ < 0) return;
  instance_->Discard(fd_);
  fd_ = -1;
}

void UpstreamAttempt::Begin(const BackendTarget* target) {
  Close();
  target_ = target;
  s_ = State{};
  size_t n = target->instances.size();
  uint32_t turn = n == 1 ? 0 : target->next.fetch_add(1, std::memory_order_relaxed);
  UseInstance(target->Pick(turn, nullptr, &s_.all_down));
}

void UpstreamAttempt::UseInstance(size_t pick) {
  pick_ = pick;
  instance_ = target_->instances[pick];
  out_.clear();
  sent_ = 0;
  client_->WriteHead(*instance_, target_->base_paths[pick], &out_);
  head_len_ = out_.size();
}

void UpstreamAttempt::SwitchInstance(size_t pick) {
  // The head names the instance's base path: rebuilt; body bytes already
  // taken from the client stay behind it.
  std::string body = out_.substr(head_len_);
  UseInstance(pick);
  out_.append(body);
}

bool UpstreamAttempt::NextInstance() {
  size_t n = target_->instances.size();
  if (n < 2 || sent_ > 0) return false;
  bool all_down = false;
  size_t next = target_->Pick(static_cast<uint32_t>(pick_ + 1), instance_, &all_down);
  // Only this one in rotation: the next in turn all the same.
  SwitchInstance(next == pick_ ? (pick_ + 1) % n : next);
  return true;
}

bool UpstreamAttempt::Reconnect() {
  sent_ = 0;
  if (Connect(true)) return true;
  // The instance is gone (killed, restarting): nothing was sent on this
  // connection, so another instance takes the request.
  if (!NoConnection()) return false;
  s_.failed_instance = instance_;
  if (!NextInstance()) return false;
  s_.moved = true;
  s_.failure = Failure::kNone;
  return Connect(false);
}

bool UpstreamAttempt::ToAnotherInstance() {
  instance_->ReportFailure("connection reset or closed before an answer");
  CountError(UpstreamError::kReset);
  Close();
  sent_ = 0;
  s_.failed_instance = instance_;
  if (!NextInstance()) {
    s_.failure = Failure::kFailed;
    return false;
  }
  s_.moved = true;
  return Connect(false);
}

void UpstreamAttempt::Judge() {
  Instance* instance = instance_;
  if (instance == nullptr) return;
  switch (s_.failure) {
    case Failure::kNone:
      instance->health().Answered();
      break;
    case Failure::kTimeout:
      instance->ReportFailure("no answer in time");
      CountError(UpstreamError::kTimeout);
      break;
    case Failure::kFailed:
      // A 5xx refused for a fallback is an answer; a client that went away
      // says nothing of the backend.
      if (s_.refused_status != 0) {
        instance->health().Answered();
      } else if (s_.bad_answer) {
        instance->ReportFailure("an answer that is not HTTP");
        CountError(UpstreamError::kBadResponse);
      } else if (s_.connected) {
        instance->ReportFailure("connection reset or closed before an answer");
        CountError(UpstreamError::kReset);
      }
      break;
    case Failure::kRefused:         // counted by Instance::Connect
    case Failure::kConnectTimeout:  // likewise
    case Failure::kUnresolved:      // likewise
    case Failure::kTls:             // likewise
    case Failure::kQueue:
      break;
  }
}

bool UpstreamAttempt::Connect(bool fresh) {
  int fd = -1;
  Instance::Got got = Instance::Got::kSlot;
  if (fresh && fd_ >= 0) {
    // A pooled connection just failed: a new one takes its slot.
    fio::Close(fd_);
    fd_ = -1;
  } else {
    Close();
    got = TakeAny(&fd);
    if (got == Instance::Got::kFull) {
      s_.failure = Failure::kQueue;
      return false;
    }
  }
  s_.reused = got == Instance::Got::kPooled;
  if (got == Instance::Got::kSlot) {
    ConnectError err = ConnectError::kNone;
    // The answer's timeout bounds the connect too, when it is the shorter.
    fd = instance_->Connect(connect_timeout_ms(), &err, &s_.tls_error);
    if (fd < 0) {
      s_.failure = err == ConnectError::kTimeout      ? Failure::kConnectTimeout
                   : err == ConnectError::kUnresolved ? Failure::kUnresolved
                   : err == ConnectError::kTls        ? Failure::kTls
                                                      : Failure::kRefused;
      CountError(err == ConnectError::kTimeout ? UpstreamError::kTimeout
                 : err == ConnectError::kTls   ? UpstreamError::kTls
                                               : UpstreamError::kRefused);
      return false;
    }
  }
  fd_ = fd;
  s_.connected = true;
  return true;
}

Instance::Got UpstreamAttempt::TakeAny(int* fd) {
  const int worker = fio::WorkerIndex();
  Clock::time_point t0;  // when the first wait began
  bool waited = false;
  auto done = [&](Instance::Got got) {
    if (waited) {
      s_.started = Clock::now();  // upstream_ms leaves the wait out: queue_ms says it
      s_.queue_ms = std::chrono::duration<double, std::milli>(s_.started - t0).count();
    }
    return got;
  };
  while (true) {
    Instance::Got got = instance_->Take(worker, false, fd);
    if (got != Instance::Got::kFull) return done(got);
    const size_t n = target_->instances.size();
    size_t shortest = pick_;
    int64_t queued = 0;
    for (size_t k = 1; k <= n; ++k) {
      size_t i = (pick_ + k) % n;
      Instance* other = target_->instances[i];
      if (other == s_.failed_instance) continue;  // its connect just failed
      // Out of rotation: not even when it has room (unless all are out).
      if (!s_.all_down && !other->health().Usable()) continue;
      queued += other->queued();
      if (other->queued() < target_->instances[shortest]->queued()) shortest = i;
      if (i == pick_) continue;
      got = other->Take(worker, false, fd);
      if (got != Instance::Got::kFull) {
        SwitchInstance(i);
        return done(got);
      }
    }
    const int max_queue = backend().max_queue;
    if (max_queue > 0 && queued >= max_queue) {
      instance_->CountQueueFull();
      s_.queue_full = true;
      s_.queue_ms = 0;
      return Instance::Got::kFull;
    }
    if (shortest != pick_) SwitchInstance(shortest);
    // The whole wait, over instances, is bounded by --queue-timeout.
    if (!waited) {
      t0 = Clock::now();
      waited = true;
    }
    const int64_t left_ms =
        backend().queue_timeout_ms -
        std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    got = instance_->Queue(worker, static_cast<int>(std::max<int64_t>(left_ms, 1)), fd);
    if (got != Instance::Got::kEjected) return done(got);
    // The instance was ejected while the request waited: it picks again
    // among the instances still in rotation.
    bool all_down = false;
    size_t next = target_->Pick(static_cast<uint32_t>(pick_ + 1), instance_, &all_down);
    if (all_down) s_.all_down = true;
    if (next != pick_) SwitchInstance(next);
  }
}

fio::SendResult UpstreamAttempt::SendOnce() {
  size_t sent = 0;
  fio::SendResult r =
      fio::SendAllOrAnswer(fd_, out_.data() + sent_, out_.size() - sent_, timeout_ms(), &sent);
  sent_ += sent;
  if (r != fio::SendResult::kSent) return r;
  sent_ = out_.size();
  if (sent_ > kReplayBytes) {  // too long to keep for a retry
    s_.replayable = false;
    out_.clear();
    sent_ = 0;
  }
  return r;
}

bool UpstreamAttempt::Send() {
  if (fd_ < 0) {
    s_.started = Clock::now();
    if (!Connect(false)) {
      // Refused or not accepted in time: nothing was sent, so another
      // instance of the same backend takes the request, whatever its method
      // (as nginx's default proxy_next_upstream does).
      if (!NoConnection()) return false;
      // Not that one again, even when it has room and the others none.
      s_.failed_instance = instance_;
      if (!NextInstance()) return false;
      s_.failure = Failure::kNone;
      if (!Connect(false)) return false;
    }
  }
  while (true) {
    fio::SendResult r = SendOnce();
    if (r == fio::SendResult::kSent) return true;
    if (r == fio::SendResult::kAnswered) {
      // The backend has bytes for us while the request is still going out:
      // they are relayed. Once its answer is complete the rest of the body
      // is not wanted (an early 413 or 401); until then the body goes on (a
      // 100 or 103 first, or an answer streamed while the body is read).
      if (Pump()) return true;
      continue;  // sending resumes at sent_
    }
    bool timed_out = errno == ETIMEDOUT;
    if (!timed_out && s_.reused && s_.replayable && !s_.retried && !s_.relay_begun) {
      // The pooled connection was closed by the backend while idle: all of
      // the request so far goes again, on a fresh connection.
      s_.retried = true;
      if (!Reconnect()) return false;
      continue;
    }
    s_.failure = timed_out ? Failure::kTimeout : Failure::kFailed;
    Judge();
    return false;
  }
}

bool UpstreamAttempt::Resend() {
  if (!s_.reused || !s_.replayable || s_.retried) {
    s_.failure = Failure::kFailed;
    return false;
  }
  s_.retried = true;
  if (!Reconnect() || !Send()) {
    if (s_.failure == Failure::kNone) s_.failure = Failure::kFailed;
    return false;
  }
  return true;
}

void UpstreamAttempt::BeginAnswer() {
  RelayObserver* capture = nullptr;
  RelayRequest rr = client_->AnswerFor(&capture);
  relay_.Begin(rr, capture);
  in_.rpos = in_.wpos = 0;
  s_.relay_begun = true;
  s_.answer_ended = s_.any_answer_byte = false;
  s_.answer_ev = ResponseRelay::Event::kNeedMore;
}

bool UpstreamAttempt::Room() {
  if (in_.MakeRoom(relay_.in_head(), max_header_bytes_ * 4)) return true;
  s_.failure = Failure::kFailed;  // an absurd response head
  s_.bad_answer = true;
  return false;
}

bool UpstreamAttempt::Deliver() {
  std::string& out = relay_.out();
  if (out.empty()) return true;
  s_.delivered = true;
  bool ok = client_->Deliver(out);
  out.clear();
  return ok;
}

bool UpstreamAttempt::Pump() {
  using Event = ResponseRelay::Event;
  if (!s_.relay_begun) BeginAnswer();
  // Part of the request is still to come: whatever the answer, this
  // connection cannot carry another one.
  relay_.ForbidReuse();
  Event& ev = s_.answer_ev;
  while (true) {
    if (!Room()) {
      ev = Event::kError;
      break;
    }
    ssize_t n = fio::TryRecv(fd_, in_.tail(), in_.room());
    if (n > 0) {
      s_.any_answer_byte = true;
      in_.wpos += static_cast<size_t>(n);
      size_t used = 0;
      ev = relay_.Feed(in_.data(), in_.rpos, in_.wpos, &used);
      in_.rpos += used;
      if (ev == Event::kError) s_.bad_answer = true;
      if (ev != Event::kNeedMore) break;
      if (!Deliver()) {
        ev = Event::kError;
        break;
      }
      continue;
    }
    if (n == 0) {  // the backend closed: an answer delimited by it, or a cut one
      ev = s_.any_answer_byte ? relay_.Finish() : Event::kError;
      if (ev == Event::kNeedMore) ev = Event::kError;
      break;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!Deliver()) {
        ev = Event::kError;
        break;
      }
      return false;
    }
    ev = Event::kError;
    break;
  }
  s_.answer_ended = true;
  s_.early_answer = true;
  if (ev == Event::kError && s_.failure == Failure::kNone) s_.failure = Failure::kFailed;
  return true;
}

UpstreamAttempt::Outcome UpstreamAttempt::ReadAnswer(bool request_done, bool idempotent) {
  using Event = ResponseRelay::Event;
  if (!s_.relay_begun) BeginAnswer();
  bool any_byte = s_.any_answer_byte;
  // The backend's timeout bounds its whole answer, from the request sent to
  // the last byte (like Envoy's route timeout): a backend that trickles its
  // body cannot hold the client past it.
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms());
  Event ev = s_.answer_ended ? s_.answer_ev : Event::kNeedMore;
  while (!s_.answer_ended) {
    if (!Room()) break;
    int64_t left_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    ssize_t n = left_ms <= 0 ? (errno = ETIMEDOUT, -1)
                             : fio::Recv(fd_, in_.tail(), in_.room(), static_cast<int>(left_ms));
    if (n <= 0) {
      bool timed_out = n < 0 && errno == ETIMEDOUT;
      // (Each at most once: a pooled connection's retry, and a move to
      // another instance.)
      const bool again = s_.reused && !s_.retried;
      const bool elsewhere = !s_.reused && !s_.moved && target_->instances.size() > 1;
      if (!any_byte && !timed_out && (again || elsewhere) && s_.replayable && request_done &&
          idempotent) {
        // The connection was closed by the backend before any byte of an
        // answer, after the whole request was sent. A pooled one was most
        // likely closed while idle: sent again on a fresh connection. A
        // fresh one means this instance is failing: sent to another one (as
        // nginx's proxy_next_upstream error does). The backend may also have
        // acted on the request and died, so either only once, and only when
        // doing it twice is harmless (RFC 9110 9.2.2); a POST gets 502, as
        // from nginx and HAProxy. (A connection that failed while the
        // request was still being sent is retried whatever the method: the
        // backend never had the whole request.)
        if (again) s_.retried = true;
        if ((again ? Reconnect() : ToAnotherInstance()) && SendOnce() == fio::SendResult::kSent) {
          continue;
        }
        if (s_.failure == Failure::kNone) s_.failure = Failure::kFailed;
        break;
      }
      // A body delimited by the end of the connection.
      if (n == 0 && any_byte && (ev = relay_.Finish()) == Event::kDone) break;
      s_.failure = timed_out ? Failure::kTimeout : Failure::kFailed;
      break;
    }
    any_byte = true;
    in_.wpos += static_cast<size_t>(n);
    size_t used = 0;
    ev = relay_.Feed(in_.data(), in_.rpos, in_.wpos, &used);
    in_.rpos += used;
    if (ev == Event::kDone || ev == Event::kRefused) break;
    if (ev == Event::kError) {
      s_.bad_answer = true;
      if (!s_.delivered) s_.failure = Failure::kFailed;
      break;
    }
    if (!Deliver()) break;  // stream what we have before waiting for more
  }
  s_.upstream_ms = std::chrono::duration<double, std::milli>(Clock::now() - s_.started).count();
  if (ev == Event::kRefused) {  // (also when Pump saw it)
    s_.refused_status = relay_.status();
    s_.failure = Failure::kFailed;
  }
  if (ev != Event::kDone && !s_.delivered && s_.failure == Failure::kNone) {
    s_.failure = Failure::kFailed;
  }
  Judge();
  if (ev == Event::kDone) {
    Deliver();
    if (relay_.tunnel()) return Outcome::kTunnel;  // the tunnel takes the connection on
    // Reused only when nothing follows the answer: bytes after it (a late
    // body, a second answer nobody asked for) belong to no request.
    if (relay_.Reusable(in_.unread())) {
      instance_->Release(fio::WorkerIndex(), fd_);
      fd_ = -1;
    }
    Close();
    return Outcome::kAnswered;
  }
  Close();
  if (s_.delivered) return Outcome::kCut;  // the only honest signal left is a cut
  relay_.out().clear();
  if (s_.failure == Failure::kNone) s_.failure = Failure::kFailed;
  return Outcome::kFailed;
}

}  // namespace strangler
