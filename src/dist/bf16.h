// Bulk bfloat16 conversions and sums for compressed gradient all-reduce
// (the format and its rounding: common/bf16.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/bf16.h"

namespace ddp::dist {

using ddp::bf16_to_float;
using ddp::float_to_bf16;

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
