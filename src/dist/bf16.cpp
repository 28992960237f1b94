#include "dist/bf16.h"

#include <vector>

#include "dist/communicator.h"

namespace ddp::dist {

// The loops below are branch-free so that the compiler vectorises them; each
// is compiled for AVX-512, AVX2 and plain x86-64 and picked at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define DDP_BF16_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DDP_BF16_CLONES
#endif

namespace {

inline uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// float_to_bf16 without a branch.
inline uint16_t to_bf16(uint32_t u) {
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (u >> 16) | 0x0040u;
  return static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

}  // namespace

DDP_BF16_CLONES
void floats_to_bf16(const float* __restrict in, uint16_t* __restrict out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = to_bf16(bits(in[i]));
}

DDP_BF16_CLONES
void bf16_to_floats(const uint16_t* __restrict in, float* __restrict out, size_t n, float scale) {
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]) * scale;
}

namespace {

DDP_BF16_CLONES
void sum_distinct(uint16_t* __restrict c, const uint16_t* __restrict a, const uint16_t* __restrict b, size_t n) {
  for (size_t i = 0; i < n; ++i) c[i] = to_bf16(bits(bf16_to_float(a[i]) + bf16_to_float(b[i])));
}

DDP_BF16_CLONES
void sum_in_place(uint16_t* __restrict c, const uint16_t* __restrict b, size_t n) {
  for (size_t i = 0; i < n; ++i) c[i] = to_bf16(bits(bf16_to_float(c[i]) + bf16_to_float(b[i])));
}

}  // namespace

void bf16_sum(uint16_t* c, const uint16_t* a, const uint16_t* b, size_t n) {
  // Gloo reduces in place (c == a); addition is commutative, so c == b is
  // the same case. Element i reads a[i] and b[i] before it writes c[i].
  if (c == a) sum_in_place(c, b, n);
  else if (c == b) sum_in_place(c, a, n);
  else sum_distinct(c, a, b, n);
}

// The fallback of Communicator::allreduce_sum_bf16 for backends without a
// 16-bit reduction: widen to float, all-reduce floats, round back once. It
// sends float-sized data (no saving on the wire) but gives the same kind of
// result. The float scratch buffer is kept per thread, so in steady state
// (same or smaller sizes) it allocates nothing.
void Communicator::allreduce_sum_bf16(uint16_t* data, size_t count) {
  if (size() == 1 || count == 0) return;
  thread_local std::vector<float> wide;
  if (wide.size() < count) wide.resize(count);
  bf16_to_floats(data, wide.data(), count);
  allreduce_sum(wide.data(), count);
  floats_to_bf16(wide.data(), data, count);
}

}  // namespace ddp::dist
