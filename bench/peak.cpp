#include <cpuid.h>
#include <immintrin.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
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

// 16 zmm accumulators of vdpbf16ps (AVX512_BF16): each instruction does
// 16 lanes x 2 bf16 products, added into f32: 64 FLOP.
__attribute__((target("avx512f,avx512bf16"))) float dpbf16_avx512(long iters) {
  __m512 a[16];
  for (int k = 0; k < 16; ++k) a[k] = _mm512_set1_ps(0.001f * static_cast<float>(k));
  const __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3380);  // 1, ~6e-8
  for (long i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int k = 0; k < 16; ++k) a[k] = _mm512_dpbf16_ps(a[k], x, y);
  }
  __m512 s = a[0];
  for (int k = 1; k < 16; ++k) s = _mm512_add_ps(s, a[k]);
  float out[16];
  _mm512_storeu_ps(out, s);
  float sum = 0;
  for (float v : out) sum += v;
  return sum;
}

// AMX: tdpbf16ps multiplies a 16x32 bf16 tile by a 32x16 one into a 16x16
// f32 tile, 16 x 16 x 32 x 2 = 16,384 FLOP. Four independent accumulators
// from two A and two B tiles (as oneDNN's kernels block them).
struct TileConfig {
  uint8_t palette = 1, start_row = 0;
  uint8_t reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};
__attribute__((target("amx-tile,amx-bf16"))) float dpbf16_amx(long iters) {
  alignas(64) TileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  alignas(64) static uint16_t ab[16 * 32];
  alignas(64) static float c[16 * 16];
  for (auto& v : ab) v = 0x3380;
  _tile_loadconfig(&cfg);
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  _tile_loadd(4, ab, 64);
  _tile_loadd(5, ab, 64);
  _tile_loadd(6, ab, 64);
  _tile_loadd(7, ab, 64);
  for (long i = 0; i < iters; ++i) {
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, c, 64);
  _tile_release();
  return c[0];
}

bool cpu_has_avx512_bf16() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __builtin_cpu_supports("avx512f") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && (a & (1u << 5));
}

// AMX needs the CPU (CPUID.7.0:EDX bits 22 and 24) and the kernel's
// permission for the tile data state (Linux 5.16+, arch_prctl).
bool amx_usable() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 22)) || !(d & (1u << 24))) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

volatile float g_sink;

double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

template <typename F>
Peak gflops_of(F kernel, double flops_per_iter, double seconds, const char* isa) {
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
  Peak p;
  p.isa = isa;
  for (int r = 0; r < 5; ++r) {
    const double c0 = thread_cpu_seconds();
    const auto t0 = Clock::now();
    g_sink = kernel(iters);
    const double t = std::chrono::duration<double>(Clock::now() - t0).count();
    const double c = thread_cpu_seconds() - c0;
    const double gflop = flops_per_iter * static_cast<double>(iters) / 1e9;
    p.gflops = std::max(p.gflops, gflop / t);
    p.gflops_per_cpu_s = std::max(p.gflops_per_cpu_s, gflop / c);
  }
  return p;
}

}  // namespace

Peak measure_fma_peak(double seconds) {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return gflops_of(fma_avx512, 16.0 * 16 * 2, seconds, "avx512f");
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return gflops_of(fma_avx2, 12.0 * 8 * 2, seconds, "avx2+fma");
  return {0, 0, "scalar"};
}

Peak measure_bf16_dot_peak(double seconds) {
  if (!cpu_has_avx512_bf16()) return {0, 0, "none"};
  return gflops_of(dpbf16_avx512, 16.0 * 64, seconds, "avx512_bf16");
}

Peak measure_amx_bf16_peak(double seconds) {
  if (!amx_usable()) return {0, 0, "none"};
  return gflops_of(dpbf16_amx, 4.0 * 16384, seconds, "amx_bf16");
}

}  // namespace ddp::bench
