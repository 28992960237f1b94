// bfloat16 (the top 16 bits of an IEEE float: sign, 8-bit exponent, 7-bit
// mantissa): half the bytes of float, the same range, about 3 significant
// decimal digits. Used for compressed gradients (dist/bf16.h) and for
// mixed-precision activations (nn/).
//
// float -> bf16 rounds to nearest, ties to even (as PyTorch's
// tensor.to(torch.bfloat16) and the AVX512_BF16 instructions do); an
// infinity stays an infinity, a NaN stays a NaN (made quiet, sign kept), a
// finite value too large for bf16 becomes an infinity. bf16 -> float is exact.
#pragma once
#include <cstdint>
#include <cstring>

namespace ddp {

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

}  // namespace ddp
