// FNV-1a, 64 bit: the checksum of data sets and of parameters that ranks
// compare to prove they hold the same bytes.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ddp {

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

// Continues the hash `h` over `bytes` bytes at `data`.
inline uint64_t fnv1a(const void* data, size_t bytes, uint64_t h = kFnvOffset) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * kFnvPrime;
  return h;
}

}  // namespace ddp
