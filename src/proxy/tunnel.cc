#include "proxy/tunnel.h"

#include <sys/socket.h>

#include <cerrno>

#include "proxy/fiber.h"
#include "proxy/transport.h"

namespace strangler {
namespace {

constexpr int kTickMs = 250;  // how often a quiet tunnel looks at its clock

// One direction: bytes read from `from` wait in the buffer until `to` takes them.
struct Pipe {
  int from, to;
  ReadBuffer* buf;
  uint64_t* count;
  bool eof = false;
  bool pending() const { return !buf->empty(); }
};

// Moves bytes one step along the pipe without waiting; true if anything moved.
bool Step(Pipe* p, bool* failed) {
  if (p->pending()) {
    ssize_t n = fio::TrySend(p->to, p->buf->data() + p->buf->rpos, p->buf->unread());
    if (n > 0) {
      p->buf->rpos += static_cast<size_t>(n);
      *p->count += static_cast<uint64_t>(n);
      return true;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      *failed = true;
    }
    return false;
  }
  if (p->eof) return false;
  if (!p->buf->Ensure()) {
    *failed = true;
    return false;
  }
  p->buf->rpos = p->buf->wpos = 0;
  ssize_t n = fio::TryRecv(p->from, p->buf->data(), p->buf->size());
  if (n > 0) {
    p->buf->wpos = static_cast<size_t>(n);
    return true;
  }
  if (n == 0) {
    p->eof = true;  // half-close: the other side sees it, the tunnel goes on
    fio::ShutdownWrite(p->to);
    return true;
  }
  if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    *failed = true;
  }
  return false;
}

}  // namespace

void RunTunnel(TunnelEnd client, TunnelEnd backend, std::chrono::milliseconds idle,
               const std::function<bool(std::chrono::steady_clock::time_point)>& must_end) {
  using Clock = std::chrono::steady_clock;
  Pipe up{client.fd, backend.fd, client.from, client.passed};
  Pipe down{backend.fd, client.fd, backend.from, backend.passed};
  Pipe* pipes[2] = {&up, &down};
  Clock::time_point last_byte = Clock::now();
  bool failed = false;
  while (!failed && !((up.eof || down.eof) && !up.pending() && !down.pending())) {
    bool progress = false;
    for (Pipe* p : pipes) progress = Step(p, &failed) || progress;
    if (progress) {
      last_byte = Clock::now();
      continue;
    }
    // A quiet tunnel waits without its buffers (see ReadBuffer).
    for (Pipe* p : pipes) {
      p->buf->Release();
      fio::TrimIdle(p->from);
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
    if (now - last_byte >= idle || must_end(now)) break;
  }
}

}  // namespace strangler
