#include <immintrin.h>

#include <chrono>

#include "bench.h"

namespace ddp::bench {
namespace {

using Clock = std::chrono::steady_clock;

// 16 independent zmm accumulators: with a 4-cycle FMA latency and up to two
// FMA issues a cycle, 8 would do; 16 leaves margin. Each iteration is 16
// FMAs x 16 lanes x 2 FLOP.
__attribute__((target("avx512f"))) float fma_avx512(long iters) {
  __m512 a[16];
  for (int k = 0; k < 16; ++k) a[k] = _mm512_set1_ps(1.0f + 0.001f * static_cast<float>(k));
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < 16; ++k) a[k] = _mm512_fmadd_ps(a[k], m, c);
  }
  __m512 s = a[0];
  for (int k = 1; k < 16; ++k) s = _mm512_add_ps(s, a[k]);
  float out[16];
  _mm512_storeu_ps(out, s);
  float sum = 0;
  for (float x : out) sum += x;
  return sum;
}

// 12 ymm accumulators (of 16 registers): 2 FMA pipes x 4 cycles = 8 in flight.
__attribute__((target("avx2,fma"))) float fma_avx2(long iters) {
  __m256 a[12];
  for (int k = 0; k < 12; ++k) a[k] = _mm256_set1_ps(1.0f + 0.001f * static_cast<float>(k));
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int k = 0; k < 12; ++k) a[k] = _mm256_fmadd_ps(a[k], m, c);
  }
  __m256 s = a[0];
  for (int k = 1; k < 12; ++k) s = _mm256_add_ps(s, a[k]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

volatile float g_sink;

template <typename F>
double gflops_of(F kernel, double flops_per_iter, double seconds) {
  // Calibrate to ~seconds/5 a run, then keep the best of 5 runs (the
  // hardware's figure: interference only ever lowers it).
  long iters = 1000;
  for (;;) {
    const auto t0 = Clock::now();
    g_sink = kernel(iters);
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    if (t > 0.02) {
      iters = static_cast<long>(static_cast<double>(iters) * (seconds / 5) / t) + 1;
      break;
    }
    iters *= 4;
  }
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = Clock::now();
    g_sink = kernel(iters);
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    best = std::max(best, flops_per_iter * static_cast<double>(iters) / t / 1e9);
  }
  return best;
}

}  // namespace

Peak measure_fma_peak(double seconds) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {gflops_of(fma_avx512, 16.0 * 16 * 2, seconds), "avx512f"};
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return {gflops_of(fma_avx2, 12.0 * 8 * 2, seconds), "avx2+fma"};
  return {0, "scalar"};
}

}  // namespace ddp::bench
