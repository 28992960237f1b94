#include "dist/bf16.h"

#include <atomic>
#include <string>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "dist/communicator.h"

namespace ddp::dist {

// Scalar loops, and AVX-512 / AVX2 versions of them picked at run time (the
// compiler's -O2 does not vectorise these loops). All give the same bits.

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

inline uint16_t add_bf16(uint16_t a, uint16_t b) { return to_bf16(bits(bf16_to_float(a) + bf16_to_float(b))); }

#if defined(__x86_64__) && defined(__GNUC__)
#define DDP_BF16_X86 1
// GCC 12's AVX-512 intrinsics pass _mm512_undefined_*() as the unused
// merge source, which -Wmaybe-uninitialized reports after inlining (GCC bug
// 105593): a false alarm.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

// 16 floats' bits -> 16 bf16 in the low halves of 32-bit lanes.
__attribute__((target("avx512f"))) inline __m512i round16(__m512i u) {
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), one);
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  return _mm512_mask_blend_epi32(nan, rounded, quiet);
}
__attribute__((target("avx512f"))) inline __m512 widen16(const uint16_t* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
__attribute__((target("avx512f"))) inline void store16(uint16_t* p, __m512i r) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtepi32_epi16(r));
}

__attribute__((target("avx512f"))) void to_bf16_avx512(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) store16(out + i, round16(_mm512_castps_si512(_mm512_loadu_ps(in + i))));
  for (; i < n; ++i) out[i] = to_bf16(bits(in[i]));
}
__attribute__((target("avx512f"))) void to_floats_avx512(const uint16_t* in, float* out, size_t n, float scale) {
  const __m512 s = _mm512_set1_ps(scale);
  size_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, _mm512_mul_ps(widen16(in + i), s));
  for (; i < n; ++i) out[i] = bf16_to_float(in[i]) * scale;
}
__attribute__((target("avx512f"))) void sum_avx512(uint16_t* c, const uint16_t* a, const uint16_t* b, size_t n) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16)  // both loads come before the store: c may be a or b
    store16(c + i, round16(_mm512_castps_si512(_mm512_add_ps(widen16(a + i), widen16(b + i)))));
  for (; i < n; ++i) c[i] = add_bf16(a[i], b[i]);
}

__attribute__((target("avx2"))) inline __m256i round8(__m256i u) {
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(u, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  // |u| as int32 is >= 0, so the signed compare is the unsigned one.
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  return _mm256_blendv_epi8(rounded, quiet, nan);
}
__attribute__((target("avx2"))) inline __m256 widen8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
__attribute__((target("avx2"))) inline void store8(uint16_t* p, __m256i r) {
  // Every lane is <= 0xffff, so the saturating pack is exact.
  const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), packed);
}

__attribute__((target("avx2"))) void to_bf16_avx2(const float* in, uint16_t* out, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) store8(out + i, round8(_mm256_castps_si256(_mm256_loadu_ps(in + i))));
  for (; i < n; ++i) out[i] = to_bf16(bits(in[i]));
}
__attribute__((target("avx2"))) void to_floats_avx2(const uint16_t* in, float* out, size_t n, float scale) {
  const __m256 s = _mm256_set1_ps(scale);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_mul_ps(widen8(in + i), s));
  for (; i < n; ++i) out[i] = bf16_to_float(in[i]) * scale;
}
__attribute__((target("avx2"))) void sum_avx2(uint16_t* c, const uint16_t* a, const uint16_t* b, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    store8(c + i, round8(_mm256_castps_si256(_mm256_add_ps(widen8(a + i), widen8(b + i)))));
  for (; i < n; ++i) c[i] = add_bf16(a[i], b[i]);
}

#pragma GCC diagnostic pop
#endif

enum class Isa { scalar, avx2, avx512 };
Isa best_isa() {
#ifdef DDP_BF16_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::avx512;
  if (__builtin_cpu_supports("avx2")) return Isa::avx2;
#endif
  return Isa::scalar;
}
std::atomic<Isa> g_isa{best_isa()};
inline Isa isa() { return g_isa.load(std::memory_order_relaxed); }

}  // namespace

bool use_bf16_kernels(const std::string& name) {
  const Isa best = best_isa();
  if (name == "best") g_isa = best;
  else if (name == "scalar") g_isa = Isa::scalar;
  else if (name == "avx2" && best != Isa::scalar) g_isa = Isa::avx2;
  else if (name == "avx512" && best == Isa::avx512) g_isa = Isa::avx512;
  else return false;
  return true;
}

void floats_to_bf16(const float* in, uint16_t* out, size_t n) {
#ifdef DDP_BF16_X86
  if (isa() == Isa::avx512) return to_bf16_avx512(in, out, n);
  if (isa() == Isa::avx2) return to_bf16_avx2(in, out, n);
#endif
  for (size_t i = 0; i < n; ++i) out[i] = to_bf16(bits(in[i]));
}

void bf16_to_floats(const uint16_t* in, float* out, size_t n, float scale) {
#ifdef DDP_BF16_X86
  if (isa() == Isa::avx512) return to_floats_avx512(in, out, n, scale);
  if (isa() == Isa::avx2) return to_floats_avx2(in, out, n, scale);
#endif
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]) * scale;
}

void bf16_sum(uint16_t* c, const uint16_t* a, const uint16_t* b, size_t n) {
  // Gloo reduces in place (c == a). Element i reads a[i] and b[i] before it
  // writes c[i], in every version.
#ifdef DDP_BF16_X86
  if (isa() == Isa::avx512) return sum_avx512(c, a, b, n);
  if (isa() == Isa::avx2) return sum_avx2(c, a, b, n);
#endif
  for (size_t i = 0; i < n; ++i) c[i] = add_bf16(a[i], b[i]);
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
