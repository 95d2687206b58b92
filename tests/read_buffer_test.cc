// Tests of the read buffers' memory: taken only to read, given back while a
// connection waits with nothing unread, and the per-thread cache of blocks
// that returns what a burst took once it is over.
#include "proxy/read_buffer.h"

#include <doctest/doctest.h>

#include <cstring>
#include <string>

namespace strangler {
namespace {

TEST_SUITE_BEGIN("proxy");

constexpr size_t kBlock = BufferCache::kBlockBytes;

void Put(ReadBuffer* b, const std::string& s) {
  REQUIRE(b->MakeRoom(false, SIZE_MAX));
  REQUIRE(b->room() >= s.size());
  std::memcpy(b->tail(), s.data(), s.size());
  b->wpos += s.size();
}

TEST_CASE("a read buffer holds memory only from its first read until it is released empty") {
  ReadBuffer b(kBlock);
  CHECK_FALSE(b.held());
  CHECK(b.size() == 0);
  CHECK(b.empty());

  Put(&b, "GET / HTTP/1.1\r\n");
  CHECK(b.held());
  CHECK(b.size() == kBlock);
  CHECK(b.unread() == 16);

  // Unread bytes are never dropped.
  CHECK_FALSE(b.Release());
  CHECK(b.held());
  CHECK(std::string(b.data() + b.rpos, b.unread()) == "GET / HTTP/1.1\r\n");

  b.rpos = b.wpos;  // all used
  CHECK(b.Release());
  CHECK_FALSE(b.held());
  CHECK(b.size() == 0);
  CHECK(b.rpos == 0);
  CHECK(b.wpos == 0);

  // And taken again for the next read.
  Put(&b, "x");
  CHECK(b.held());
  CHECK(std::string(b.data(), 1) == "x");
}

TEST_CASE("a head that outgrows the block keeps its bytes in place; the bigger memory is not cached") {
  ReadBuffer b(kBlock);
  std::string head(kBlock, 'h');
  Put(&b, head);
  b.rpos = 10;  // the parser's spans are offsets: a head in progress must not move
  CHECK(b.room() == 0);
  REQUIRE(b.MakeRoom(true, 4 * kBlock));
  CHECK(b.size() == 2 * kBlock);
  CHECK(b.rpos == 10);
  CHECK(std::string(b.data(), kBlock) == head);
  // At the limit it may not grow.
  b.wpos = b.size();
  REQUIRE(b.MakeRoom(true, 4 * kBlock));
  CHECK(b.size() == 4 * kBlock);
  b.wpos = b.size();
  CHECK_FALSE(b.MakeRoom(true, 4 * kBlock));

  size_t cached = BufferCache::Local().cached();
  b.rpos = b.wpos;
  CHECK(b.Release());
  CHECK(BufferCache::Local().cached() == cached);  // unmapped, not kept
}

TEST_CASE("outside a head, used bytes make room without growing") {
  ReadBuffer b(kBlock);
  Put(&b, std::string(kBlock, 'a'));
  b.rpos = kBlock - 3;  // three unread bytes at the end
  REQUIRE(b.MakeRoom(false, kBlock));
  CHECK(b.size() == kBlock);
  CHECK(b.rpos == 0);
  CHECK(b.wpos == 3);
  CHECK(std::string(b.data(), 3) == "aaa");
}

TEST_CASE("the block cache reuses blocks and gives back those unused for a whole period") {
  BufferCache& cache = BufferCache::Local();
  cache.Trim();
  cache.Trim();  // whatever earlier tests left
  REQUIRE(cache.cached() == 0);

  char* a = cache.Take(kBlock);
  char* b = cache.Take(kBlock);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  a[0] = 'a';
  b[kBlock - 1] = 'b';
  cache.Give(a, kBlock);
  cache.Give(b, kBlock);
  CHECK(cache.cached() == 2);
  // Taken again: the same memory, no new mapping.
  char* again = cache.Take(kBlock);
  CHECK((again == a || again == b));
  cache.Give(again, kBlock);

  // The period so far began with an empty cache: nothing in it went unused.
  cache.Trim();
  CHECK(cache.cached() == 2);
  // A period in which one block was needed at a time: one of the two was
  // never taken and goes; ...
  cache.Give(cache.Take(kBlock), kBlock);
  cache.Trim();
  CHECK(cache.cached() == 1);
  // ... a period with no use gives back the rest.
  cache.Trim();
  CHECK(cache.cached() == 0);

  // Under steady use the cache keeps what the load needs.
  char* x = cache.Take(kBlock);
  char* y = cache.Take(kBlock);
  cache.Give(x, kBlock);
  cache.Give(y, kBlock);
  cache.Trim();  // low water 0 since the last Trim: nothing unused
  CHECK(cache.cached() == 2);
  for (int period = 0; period < 3; ++period) {
    char* p = cache.Take(kBlock);
    char* q = cache.Take(kBlock);
    cache.Give(p, kBlock);
    cache.Give(q, kBlock);
    cache.Trim();
    CHECK(cache.cached() == 2);
  }
  cache.Trim();
  CHECK(cache.cached() == 0);

  // Other sizes are not cached.
  char* big = cache.Take(3 * kBlock);
  REQUIRE(big != nullptr);
  big[3 * kBlock - 1] = 'z';
  cache.Give(big, 3 * kBlock);
  CHECK(cache.cached() == 0);
}

TEST_SUITE_END();

}  // namespace
}  // namespace strangler
