// NextRandom: fast per-thread random numbers for the data plane (split
// buckets without a sticky key, --mirror-percent draws, request ids). Not
// for secrets. Each thread seeds its own state once.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace strangler {

inline uint64_t NextRandom() {
  thread_local uint64_t state = [] {
    std::random_device rd;
    return (static_cast<uint64_t>(rd()) << 32) ^ rd() ^
           static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  }();
  // splitmix64
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace strangler
