// Fibers: the data plane's threading model. A few worker threads (one per
// core by default) each run an epoll loop and many fibers, one per client
// connection. A fiber runs ordinary blocking-style code; when a socket is not
// ready, the fiber-aware I/O below parks the fiber and the worker runs
// others, so waiting costs no kernel context switch. A fiber stays on the
// worker that started it, so thread_local data is safe inside it.
//
// The fio:: functions may only be called from inside a fiber. Sockets must be
// non-blocking and registered with the current worker (fio::Adopt) first.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "proxy/net.h"

namespace strangler {

class Worker;

class WorkerPool {
 public:
  // `handler` runs in a fiber for each submitted connection and owns its fd.
  // `housekeeping` (optional) runs about once a second on each worker's own
  // thread, outside any fiber (fio::Close may be called; nothing may park).
  WorkerPool(int workers, std::function<void(int fd)> handler,
             std::function<void(int worker)> housekeeping = nullptr);
  ~WorkerPool();  // joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()); }
  // Thread-safe: hands a connection to the next worker in turn.
  void Submit(int fd);
  // Workers finish when every fiber has returned, after Stop().
  void Stop();
  void Join();

 private:
  std::unique_ptr<std::function<void(int)>> handler_holder_;
  std::unique_ptr<std::function<void(int)>> housekeeping_holder_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::vector<std::thread> threads_;
  std::atomic<uint32_t> next_{0};
};

namespace fio {

// Index of the worker running the current fiber (0..workers-1).
int WorkerIndex();
// Makes fd non-blocking and registers it with the current worker.
void Adopt(int fd);
// Unregisters and closes (its TLS, if any, with it).
void Close(int fd);
// One thing a fiber can wait for: fd readable (read) or writable.
struct WaitFor {
  int fd = -1;
  bool read = true;
};
constexpr int kMaxWaitFor = 4;
// Parks until one of items[0..n) is ready (n <= kMaxWaitFor) or timeout_ms
// passes. The index of a ready item (a hint: try the syscall, it may still
// say EAGAIN), or -1 on timeout.
int WaitAny(const WaitFor* items, int n, int timeout_ms);
// Gives the pages of the current fiber's stack below the frames in use back
// to the system (one madvise): after something that ran deep (a TLS
// handshake), so that an idle connection does not keep them resident.
void TrimStack();
// WaitAny with a deadline instead of a timeout.
int WaitAnyUntil(const WaitFor* items, int n, std::chrono::steady_clock::time_point deadline);
// Records that a non-blocking call on fd said EAGAIN, so WaitAny parks.
void NotReady(int fd, bool read);
// (The reads and writes themselves, plain or TLS: proxy/transport.h.)

// A wait for something other than a socket (a place in a queue), which any
// thread may end. PrepareParking() readies one for the current fiber; Park()
// must follow before the fiber waits on anything else. The parking may be
// handed to another thread before Park() begins: an Unpark() that comes
// first takes effect when the fiber parks (the fiber's worker runs no other
// fiber until then).
struct Parking {
  Worker* worker = nullptr;
  uint64_t token = 0;
};
Parking PrepareParking();
// True when Unpark ended the wait, false when timeout_ms passed first.
bool Park(const Parking& p, int timeout_ms);
// Any thread. A parking whose wait already ended (timed out) is left alone.
void Unpark(const Parking& p);
// Unregisters fd from the current worker without closing it, so that a
// fiber of another worker can Adopt it. Nothing may be waiting on it.
void Disown(int fd);
// The current worker's poll set, to name where a socket is registered.
int PollSet();
// Registers with the current worker a socket registered with another
// worker's poll set (PollSet() there), without that worker's thread:
// nothing may be waiting on it there (an idle pooled connection).
void AdoptFrom(int poll_set, int fd);

// A new connection registered with the current worker, or -1 with *err.
int Connect(const ResolvedAddr& addr, int timeout_ms, ConnectError* err);

}  // namespace fio
}  // namespace strangler
