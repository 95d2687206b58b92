#include "proxy/read_buffer.h"

#include <sys/mman.h>

#include <algorithm>

namespace strangler {

namespace {

char* Map(size_t bytes) {
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<char*>(p);
}

}  // namespace

BufferCache& BufferCache::Local() {
  thread_local BufferCache cache;
  return cache;
}

BufferCache::~BufferCache() {
  for (char* p : free_) munmap(p, kBlockBytes);
}

char* BufferCache::Take(size_t bytes) {
  if (bytes != kBlockBytes || free_.empty()) return Map(bytes);
  char* p = free_.back();
  free_.pop_back();
  low_water_ = std::min(low_water_, free_.size());
  return p;
}

void BufferCache::Give(char* p, size_t bytes) {
  if (bytes != kBlockBytes) {
    munmap(p, bytes);
    return;
  }
  free_.push_back(p);
}

void BufferCache::Trim() {
  // The blocks below the low-water mark were not needed for a whole period.
  size_t unused = std::min(low_water_, free_.size());
  for (size_t i = 0; i < unused; ++i) {
    munmap(free_.back(), kBlockBytes);
    free_.pop_back();
  }
  low_water_ = free_.size();
}

bool ReadBuffer::Ensure() {
  if (bytes_ != nullptr) return true;
  bytes_ = BufferCache::Local().Take(want_);
  if (bytes_ == nullptr) return false;
  size_ = want_;
  rpos = wpos = 0;
  return true;
}

bool ReadBuffer::Release() {
  if (rpos != wpos) return false;
  Free();
  return true;
}

void ReadBuffer::Free() {
  if (bytes_ != nullptr) BufferCache::Local().Give(bytes_, size_);
  bytes_ = nullptr;
  size_ = 0;
  rpos = wpos = 0;
}

bool ReadBuffer::MakeRoom(bool in_head, size_t max_size) {
  if (!Ensure()) return false;
  if (rpos == wpos && !in_head) rpos = wpos = 0;
  if (wpos < size_) return true;
  if (!in_head && rpos > 0) {
    Compact();
    return true;
  }
  if (size_ >= max_size) return false;
  char* bigger = BufferCache::Local().Take(size_ * 2);
  if (bigger == nullptr) return false;
  std::memcpy(bigger, bytes_, wpos);
  BufferCache::Local().Give(bytes_, size_);
  bytes_ = bigger;
  size_ *= 2;
  return true;
}

}  // namespace strangler
