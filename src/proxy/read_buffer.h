// ReadBuffer: the bytes read from one side of a connection and not used yet.
// Reads append at the end (tail(), room()), the parser consumes from the
// front: [rpos, wpos) is read and unused. While a message head is being
// parsed its bytes must stay where they are (the parser's spans are offsets
// into the buffer), so the buffer then grows instead of moving them.
// Not thread-safe: one per connection side.
#pragma once

#include <cstddef>
#include <cstring>
#include <vector>

namespace strangler {

class ReadBuffer {
 public:
  explicit ReadBuffer(size_t size) : bytes_(size) {}

  char* data() { return bytes_.data(); }
  const char* data() const { return bytes_.data(); }
  size_t size() const { return bytes_.size(); }
  char* tail() { return bytes_.data() + wpos; }
  size_t room() const { return bytes_.size() - wpos; }
  size_t unread() const { return wpos - rpos; }
  bool empty() const { return rpos == wpos; }

  // Moves the unread bytes to the front.
  void Compact() {
    if (rpos == 0) return;
    std::memmove(bytes_.data(), bytes_.data() + rpos, wpos - rpos);
    wpos -= rpos;
    rpos = 0;
  }

  // Room for at least one more byte: the used bytes go when no head is in
  // progress, otherwise the buffer doubles while it is under `max_size`.
  // False when it is full and may not grow.
  bool MakeRoom(bool in_head, size_t max_size) {
    if (rpos == wpos && !in_head) rpos = wpos = 0;
    if (wpos < bytes_.size()) return true;
    if (!in_head && rpos > 0) {
      Compact();
      return true;
    }
    if (bytes_.size() >= max_size) return false;
    bytes_.resize(bytes_.size() * 2);
    return true;
  }

  size_t rpos = 0, wpos = 0;

 private:
  std::vector<char> bytes_;
};

}  // namespace strangler
