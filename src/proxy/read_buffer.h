// ReadBuffer: the bytes read from one side of a connection and not used yet.
// Reads append at the end (tail(), room()), the parser consumes from the
// front: [rpos, wpos) is read and unused. While a message head is being
// parsed its bytes must stay where they are (the parser's spans are offsets
// into the buffer), so the buffer then grows instead of moving them.
//
// The memory is taken only when bytes are to be read, and a connection that
// waits with nothing unread gives it back (Release()): an idle keep-alive
// connection holds no buffer. Blocks of the usual size come from a cache
// per thread (BufferCache), the memory of others straight from mmap, so
// what a burst of clients took goes back to the system after they leave.
// Not thread-safe: one per connection side.
#pragma once

#include <cstddef>
#include <cstring>
#include <vector>

namespace strangler {

// Blocks of kBlockBytes, mmap'd, kept per thread for reuse. Trim() (once a
// second, from the worker's housekeeping) unmaps the blocks that stayed in
// the cache unused since the last Trim(): under steady load the cache keeps
// what the load needs, after a burst it empties within two seconds.
class BufferCache {
 public:
  static constexpr size_t kBlockBytes = 64 * 1024;

  // This thread's cache.
  static BufferCache& Local();
  ~BufferCache();

  // `bytes` of memory (a block when bytes == kBlockBytes), nullptr when the
  // system has none.
  char* Take(size_t bytes);
  void Give(char* p, size_t bytes);
  void Trim();

  size_t cached() const { return free_.size(); }

 private:
  std::vector<char*> free_;
  size_t low_water_ = 0;  // the fewest blocks cached since the last Trim()
};

class ReadBuffer {
 public:
  explicit ReadBuffer(size_t size) : want_(size) {}
  ~ReadBuffer() { Free(); }
  ReadBuffer(const ReadBuffer&) = delete;
  ReadBuffer& operator=(const ReadBuffer&) = delete;

  // Until Ensure() or MakeRoom() no memory is held: data() is null and
  // size() 0.
  char* data() { return bytes_; }
  const char* data() const { return bytes_; }
  size_t size() const { return size_; }
  char* tail() { return bytes_ + wpos; }
  size_t room() const { return size_ - wpos; }
  size_t unread() const { return wpos - rpos; }
  bool empty() const { return rpos == wpos; }
  bool held() const { return bytes_ != nullptr; }

  // Takes the memory if it is not held. False when the system has none.
  bool Ensure();

  // Gives the memory back when nothing is unread (the next read takes it
  // again). False, changing nothing, when bytes are unread.
  bool Release();

  // Moves the unread bytes to the front.
  void Compact() {
    if (rpos == 0) return;
    std::memmove(bytes_, bytes_ + rpos, wpos - rpos);
    wpos -= rpos;
    rpos = 0;
  }

  // Room for at least one more byte: the used bytes go when no head is in
  // progress, otherwise the buffer doubles while it is under `max_size`.
  // False when it is full and may not grow (or no memory could be had).
  bool MakeRoom(bool in_head, size_t max_size);

  size_t rpos = 0, wpos = 0;

 private:
  void Free();

  char* bytes_ = nullptr;
  size_t size_ = 0;
  size_t want_;  // the size taken when no memory is held
};

}  // namespace strangler
