#include "proxy/fiber.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
#include <queue>
#include <unordered_map>

#include "proxy/transport.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define STRANGLER_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define STRANGLER_TSAN 1
#endif

namespace strangler {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kStackBytes = 256 * 1024;
constexpr size_t kGuardBytes = 4096;
constexpr size_t kKeepStacks = 64;  // free stacks kept per worker for reuse

struct Fiber;

// Per registered socket: who waits on it and what is known to be ready.
struct FdState {
  Fiber* reader = nullptr;
  Fiber* writer = nullptr;
  bool in_ready = true;  // optimistic: try the syscall first
  bool out_ready = true;
};

struct Fiber {
  ucontext_t ctx;
  char* stack = nullptr;  // mmap'd, guard page at the low end
  int fd = -1;
  bool done = false;
  bool timed_out = false;
  int woke = -1;  // index of the wait that ended a WaitAny
  uint64_t wait_token = 0;
#ifdef STRANGLER_TSAN
  void* tsan = nullptr;
#endif
};

struct Timer {
  Clock::time_point deadline;
  uint64_t token;
  bool operator>(const Timer& o) const { return deadline > o.deadline; }
};

}  // namespace

class Worker {
 public:
  Worker(int index, std::function<void(int)>* handler, std::function<void(int)>* housekeeping)
      : index_(index), handler_(handler), housekeeping_(housekeeping) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = nullptr;  // null = the wake-up eventfd
    epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_, &ev);
  }
  ~Worker() {
    for (char* s : free_stacks_) munmap(s, kStackBytes);
    close(wake_);
    close(epoll_);
  }

  void Submit(int fd) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      inbox_.push_back(fd);
    }
    uint64_t one = 1;
    ssize_t n = write(wake_, &one, sizeof(one));
    (void)n;
  }

  // Ends a Park from any thread (see fio::Unpark).
  void Unpark(uint64_t token) {
    if (tl_worker_is(this)) {
      EndPark(token);
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      unparks_.push_back(token);
    }
    uint64_t one = 1;
    ssize_t n = write(wake_, &one, sizeof(one));
    (void)n;
  }

  void Stop() {
    stop_.store(true);
    uint64_t one = 1;
    ssize_t n = write(wake_, &one, sizeof(one));
    (void)n;
  }

  void Run();
  // --- used by fio:: from inside a fiber of this worker -------------------
  int index() const { return index_; }
  // The stack of the running fiber: its lowest usable byte.
  char* stack_floor() const { return current_ ? current_->stack + kGuardBytes : nullptr; }
  FdState* State(int fd) {
    if (static_cast<size_t>(fd) >= fds_.size()) fds_.resize(static_cast<size_t>(fd) + 64);
    return fds_[static_cast<size_t>(fd)].get();
  }
  void Adopt(int fd) {
    int flags = fcntl(fd, F_GETFL, 0);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    if (static_cast<size_t>(fd) >= fds_.size()) fds_.resize(static_cast<size_t>(fd) + 64);
    fds_[static_cast<size_t>(fd)] = std::make_unique<FdState>();
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
    ev.data.u64 = static_cast<uint64_t>(fd) + 1;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  }
  int poll_set() const { return epoll_; }
  void Close(int fd) {
    if (static_cast<size_t>(fd) < fds_.size()) fds_[static_cast<size_t>(fd)].reset();
    close(fd);  // also leaves the epoll set
  }
  // Parks the current fiber until one of `n` (fd, direction) pairs is ready
  // or the deadline passes. Returns the index of a ready pair, -1 on timeout.
  int WaitAny(const fio::WaitFor* items, int n, Clock::time_point deadline) {
    Fiber* f = current_;
    for (int i = 0; i < n; ++i) {
      FdState* st = State(items[i].fd);
      if (items[i].read ? st->in_ready : st->out_ready) return i;
    }
    f->timed_out = false;
    f->woke = -1;
    f->wait_token = ++next_token_;
    Waiting& w = waiting_[f->wait_token];
    w.fiber = f;
    w.n = n;
    for (int i = 0; i < n; ++i) {
      w.items[i] = items[i];
      FdState* st = State(items[i].fd);
      (items[i].read ? st->reader : st->writer) = f;
    }
    timers_.push({deadline, f->wait_token});
    SwitchToScheduler();
    return f->timed_out ? -1 : f->woke;
  }
  uint64_t NewToken() { return ++next_token_; }
  // Parks the current fiber until Unpark(token) or the deadline.
  bool Park(uint64_t token, Clock::time_point deadline) {
    Fiber* f = current_;
    f->timed_out = false;
    f->woke = -1;
    f->wait_token = token;
    Waiting& w = waiting_[token];
    w.fiber = f;
    w.n = 0;
    timers_.push({deadline, token});
    SwitchToScheduler();
    return !f->timed_out;
  }
  void Disown(int fd) {
    epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
    if (static_cast<size_t>(fd) < fds_.size()) fds_[static_cast<size_t>(fd)].reset();
  }
  bool Wait(int fd, bool read, Clock::time_point deadline) {
    fio::WaitFor one{fd, read};
    return WaitAny(&one, 1, deadline) == 0;
  }

 private:
  // epoll_wait until the first timer is due (at most 250 ms), to the
  // microsecond where the kernel can (epoll_pwait2, Linux 5.11): a
  // connection settling for 1 ms (Instance::settle) waits 1 ms, not 2.
  int WaitEvents(epoll_event* events, int max) {
    auto wait =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::milliseconds(250));
    if (!timers_.empty()) {
      auto until = timers_.top().deadline - Clock::now();
      if (until < wait)
        wait = until < Clock::duration::zero() ? std::chrono::nanoseconds(0) : until;
    }
    if (precise_timeout_) {
      timespec ts{static_cast<time_t>(wait.count() / 1000000000),
                  static_cast<long>(wait.count() % 1000000000)};
      int n = epoll_pwait2(epoll_, events, max, &ts, nullptr);
      if (n >= 0 || errno != ENOSYS) return n;
      precise_timeout_ = false;
    }
    // Whole milliseconds, rounded up so that the timer is due on waking.
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(wait).count();
    return epoll_wait(epoll_, events, max, static_cast<int>(ms));
  }

  struct Waiting {
    Fiber* fiber = nullptr;
    int n = 0;
    fio::WaitFor items[fio::kMaxWaitFor];
  };
  // Ends a wait: the fiber is no longer registered on any of its fds.
  void Unregister(const Waiting& w) {
    for (int i = 0; i < w.n; ++i) {
      FdState* st = static_cast<size_t>(w.items[i].fd) < fds_.size()
                        ? fds_[static_cast<size_t>(w.items[i].fd)].get()
                        : nullptr;
      if (!st) continue;
      Fiber*& slot = w.items[i].read ? st->reader : st->writer;
      if (slot == w.fiber) slot = nullptr;
    }
  }

  static bool tl_worker_is(const Worker* w);
  void EndPark(uint64_t token) {
    auto it = waiting_.find(token);
    if (it == waiting_.end()) return;  // timed out already
    Fiber* f = it->second.fiber;
    waiting_.erase(it);
    f->woke = 0;
    MakeRunnable(f);
  }

  static void Trampoline();
  void StartFiber(int fd);
  void Resume(Fiber* f);
  void SwitchToScheduler();
  void MakeRunnable(Fiber* f) { runnable_.push_back(f); }
  void Wake(int fd, FdState* st, bool read) {
    Fiber* f = read ? st->reader : st->writer;
    if (!f) return;
    auto it = waiting_.find(f->wait_token);
    if (it != waiting_.end()) {
      for (int i = 0; i < it->second.n; ++i) {
        if (it->second.items[i].fd == fd && it->second.items[i].read == read) f->woke = i;
      }
      Unregister(it->second);
      waiting_.erase(it);
    }
    (read ? st->reader : st->writer) = nullptr;
    MakeRunnable(f);
  }

  int index_;
  std::function<void(int)>* handler_;
  std::function<void(int)>* housekeeping_;  // may be null
  Clock::time_point next_housekeeping_ = Clock::now();
  int epoll_ = -1;
  bool precise_timeout_ = true;  // epoll_pwait2 is there
  int wake_ = -1;
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<int> inbox_;         // guarded by mu_
  std::vector<uint64_t> unparks_;  // guarded by mu_: Unpark from other threads
  std::vector<std::unique_ptr<FdState>> fds_;
  std::deque<Fiber*> runnable_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<Timer>> timers_;
  std::unordered_map<uint64_t, Waiting> waiting_;  // wait token -> who waits
  uint64_t next_token_ = 0;
  std::vector<char*> free_stacks_;
  size_t live_ = 0;
  ucontext_t sched_ctx_;
  Fiber* current_ = nullptr;
#ifdef STRANGLER_TSAN
  void* sched_tsan_ = nullptr;
#endif
#ifdef STRANGLER_ASAN
  const void* sched_stack_bottom_ = nullptr;
  size_t sched_stack_size_ = 0;
#endif
};

namespace {
thread_local Worker* tl_worker = nullptr;
}  // namespace

bool Worker::tl_worker_is(const Worker* w) { return tl_worker == w; }

void Worker::Trampoline() {
  Worker* w = tl_worker;
  Fiber* f = w->current_;
#ifdef STRANGLER_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &w->sched_stack_bottom_, &w->sched_stack_size_);
#endif
  (*w->handler_)(f->fd);
  f->done = true;
  w->SwitchToScheduler();  // never returns
}

void Worker::StartFiber(int fd) {
  auto* f = new Fiber();
  f->fd = fd;
  if (!free_stacks_.empty()) {
    f->stack = free_stacks_.back();
    free_stacks_.pop_back();
  } else {
    void* mem = mmap(nullptr, kStackBytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (mem == MAP_FAILED) {
      delete f;
      close(fd);
      return;
    }
    mprotect(mem, kGuardBytes, PROT_NONE);
    f->stack = static_cast<char*>(mem);
  }
  getcontext(&f->ctx);
  f->ctx.uc_stack.ss_sp = f->stack + kGuardBytes;
  f->ctx.uc_stack.ss_size = kStackBytes - kGuardBytes;
  f->ctx.uc_link = nullptr;
  makecontext(&f->ctx, &Worker::Trampoline, 0);
#ifdef STRANGLER_TSAN
  f->tsan = __tsan_create_fiber(0);
#endif
  ++live_;
  MakeRunnable(f);
}

void Worker::Resume(Fiber* f) {
  current_ = f;
#ifdef STRANGLER_TSAN
  __tsan_switch_to_fiber(f->tsan, 0);
#endif
#ifdef STRANGLER_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f->stack + kGuardBytes, kStackBytes - kGuardBytes);
#endif
  swapcontext(&sched_ctx_, &f->ctx);
#ifdef STRANGLER_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  current_ = nullptr;
  if (f->done) {
#ifdef STRANGLER_TSAN
    __tsan_destroy_fiber(f->tsan);
#endif
    if (free_stacks_.size() < kKeepStacks) {
      free_stacks_.push_back(f->stack);
    } else {
      munmap(f->stack, kStackBytes);
    }
    delete f;
    --live_;
  }
}

void Worker::SwitchToScheduler() {
  Fiber* f = current_;
#ifdef STRANGLER_TSAN
  __tsan_switch_to_fiber(sched_tsan_, 0);
#endif
#ifdef STRANGLER_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(f->done ? nullptr : &fake, sched_stack_bottom_, sched_stack_size_);
#endif
  swapcontext(&f->ctx, &sched_ctx_);
#ifdef STRANGLER_ASAN
  __sanitizer_finish_switch_fiber(fake, &sched_stack_bottom_, &sched_stack_size_);
#endif
}

void Worker::Run() {
  tl_worker = this;
#ifdef STRANGLER_TSAN
  sched_tsan_ = __tsan_get_current_fiber();
#endif
  epoll_event events[256];
  std::vector<int> incoming;
  std::vector<uint64_t> unparked;
  while (true) {
    while (!runnable_.empty()) {
      Fiber* f = runnable_.front();
      runnable_.pop_front();
      Resume(f);
    }
    if (stop_.load() && live_ == 0) break;
    if (housekeeping_ && Clock::now() >= next_housekeeping_) {
      next_housekeeping_ = Clock::now() + std::chrono::seconds(1);
      (*housekeeping_)(index_);
    }
    int n = WaitEvents(events, 256);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.u64 == 0) {
        uint64_t v;
        while (read(wake_, &v, sizeof(v)) > 0) {
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          incoming.swap(inbox_);
          unparked.swap(unparks_);
        }
        for (int fd : incoming) StartFiber(fd);
        incoming.clear();
        for (uint64_t token : unparked) EndPark(token);
        unparked.clear();
        continue;
      }
      int fd = static_cast<int>(events[i].data.u64 - 1);
      if (static_cast<size_t>(fd) >= fds_.size() || !fds_[static_cast<size_t>(fd)]) continue;
      FdState* st = fds_[static_cast<size_t>(fd)].get();
      uint32_t e = events[i].events;
      if (e & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) {
        st->in_ready = true;
        Wake(fd, st, true);
      }
      if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        st->out_ready = true;
        Wake(fd, st, false);
      }
    }
    auto now = Clock::now();
    while (!timers_.empty() && timers_.top().deadline <= now) {
      uint64_t token = timers_.top().token;
      timers_.pop();
      auto it = waiting_.find(token);
      if (it == waiting_.end()) continue;  // the wait ended by I/O
      Waiting w = it->second;
      waiting_.erase(it);
      w.fiber->timed_out = true;
      Unregister(w);
      MakeRunnable(w.fiber);
    }
  }
  tl_worker = nullptr;
}

WorkerPool::WorkerPool(int workers, std::function<void(int fd)> handler,
                       std::function<void(int worker)> housekeeping) {
  handler_holder_ = std::make_unique<std::function<void(int)>>(std::move(handler));
  if (housekeeping) {
    housekeeping_holder_ = std::make_unique<std::function<void(int)>>(std::move(housekeeping));
  }
  for (int i = 0; i < workers; ++i) {
    workers_.push_back(
        std::make_unique<Worker>(i, handler_holder_.get(), housekeeping_holder_.get()));
  }
  for (auto& w : workers_) {
    Worker* wp = w.get();
    threads_.emplace_back([wp] { wp->Run(); });
  }
}

WorkerPool::~WorkerPool() {
  Stop();
  Join();
}

void WorkerPool::Submit(int fd) {
  uint32_t i = next_.fetch_add(1, std::memory_order_relaxed) % workers_.size();
  workers_[i]->Submit(fd);
}

void WorkerPool::Stop() {
  for (auto& w : workers_) w->Stop();
}

void WorkerPool::Join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

namespace fio {

int WorkerIndex() { return tl_worker ? tl_worker->index() : 0; }

void Adopt(int fd) { tl_worker->Adopt(fd); }

void Close(int fd) {
  DropTls(fd);
  tl_worker->Close(fd);
}

void Disown(int fd) { tl_worker->Disown(fd); }

int PollSet() { return tl_worker->poll_set(); }

void AdoptFrom(int poll_set, int fd) {
  // The other worker's table entry for fd stays, stale, until it registers
  // that number again: an event it had already taken for fd wakes nobody.
  if (poll_set != tl_worker->poll_set()) epoll_ctl(poll_set, EPOLL_CTL_DEL, fd, nullptr);
  tl_worker->Adopt(fd);
}

Parking PrepareParking() { return {tl_worker, tl_worker->NewToken()}; }

bool Park(const Parking& p, int timeout_ms) {
  return p.worker->Park(p.token, Clock::now() + std::chrono::milliseconds(timeout_ms));
}

void Unpark(const Parking& p) {
  if (p.worker) p.worker->Unpark(p.token);
}

namespace {
Clock::time_point Deadline(int timeout_ms) {
  return Clock::now() + std::chrono::milliseconds(timeout_ms);
}
}  // namespace

int WaitAny(const WaitFor* items, int n, int timeout_ms) {
  return tl_worker->WaitAny(items, n, Deadline(timeout_ms));
}

int WaitAnyUntil(const WaitFor* items, int n, Clock::time_point deadline) {
  return tl_worker->WaitAny(items, n, deadline);
}

void TrimStack() {
  char* floor = tl_worker ? tl_worker->stack_floor() : nullptr;
  if (!floor) return;
  char here;
  // A page of margin below this frame for the calls madvise itself makes.
  uintptr_t top = (reinterpret_cast<uintptr_t>(&here) - 4096) & ~uintptr_t{4095};
  uintptr_t low = reinterpret_cast<uintptr_t>(floor);
  if (top > low) madvise(floor, top - low, MADV_DONTNEED);
}

void NotReady(int fd, bool read) {
  FdState* st = tl_worker->State(fd);
  (read ? st->in_ready : st->out_ready) = false;
}

int Connect(const ResolvedAddr& a, int timeout_ms, ConnectError* err) {
  Worker* w = tl_worker;
  *err = ConnectError::kNone;
  int fd = socket(a.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    *err = ConnectError::kOther;
    return -1;
  }
  SetNoDelay(fd);
  w->Adopt(fd);
  int rc = connect(fd, reinterpret_cast<const sockaddr*>(&a.addr), a.len);
  if (rc != 0 && errno != EINPROGRESS) {
    *err = errno == ECONNREFUSED ? ConnectError::kRefused : ConnectError::kOther;
    w->Close(fd);
    return -1;
  }
  if (rc != 0) {
    w->State(fd)->out_ready = false;
    if (!w->Wait(fd, false, Deadline(timeout_ms))) {
      *err = ConnectError::kTimeout;
      w->Close(fd);
      return -1;
    }
    int so_error = 0;
    socklen_t len = sizeof(so_error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len);
    if (so_error != 0) {
      *err = so_error == ECONNREFUSED ? ConnectError::kRefused
             : so_error == ETIMEDOUT  ? ConnectError::kTimeout
                                      : ConnectError::kOther;
      w->Close(fd);
      return -1;
    }
  }
  return fd;
}

}  // namespace fio
}  // namespace strangler
