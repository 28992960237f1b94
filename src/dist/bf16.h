// bfloat16 (the top 16 bits of an IEEE float: sign, 8-bit exponent, 7-bit
// mantissa) for compressed gradient all-reduce: half the bytes of float, the
// same range, about 3 significant decimal digits.
//
// float -> bf16 rounds to nearest, ties to even (as PyTorch's
// tensor.to(torch.bfloat16) and the AVX512_BF16 instructions do); an
// infinity stays an infinity, a NaN stays a NaN (made quiet, sign kept), a
// finite value too large for bf16 becomes an infinity. bf16 -> float is exact.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace ddp::dist {

inline uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // NaN: quiet
  u += 0x7fffu + ((u >> 16) & 1u);  // round half to even on bit 16
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_to_float(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// out[i] = float_to_bf16(in[i]).
void floats_to_bf16(const float* in, uint16_t* out, size_t n);
// out[i] = bf16_to_float(in[i]) * scale.
void bf16_to_floats(const uint16_t* in, float* out, size_t n, float scale = 1.0f);
// c[i] = float_to_bf16(bf16_to_float(a[i]) + bf16_to_float(b[i])): the sum
// in float, rounded once. c may alias a or b. This is the reduction of the
// compressed all-reduce: a sum over p ranks is p-1 of these, so it carries
// up to p-1 roundings of partial sums besides the rounding of each input.
void bf16_sum(uint16_t* c, const uint16_t* a, const uint16_t* b, size_t n);

// The bulk functions use AVX-512 or AVX2 when the CPU has them, chosen at
// start-up. For tests: use the kernels of `isa` ("avx512", "avx2",
// "scalar", or "best"); false (and no change) when this CPU lacks it.
bool use_bf16_kernels(const std::string& isa);

}  // namespace ddp::dist
