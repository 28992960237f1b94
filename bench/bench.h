// Pieces of ddp_bench (bench/bench.cpp): the FMA peak, and running a
// training program as a child while watching its processes' memory.
#pragma once
#include <sys/types.h>

#include <string>
#include <vector>

namespace ddp::bench {

// One core's FP32 FMA throughput, measured: `seconds` of a loop of
// independent fused multiply-adds on as many accumulators as hide the FMA
// latency, with the widest vector ISA the CPU has (AVX-512, else AVX2+FMA).
struct Peak {
  double gflops = 0;            // per second of wall time (best of 5 runs)
  double gflops_per_cpu_s = 0;  // per second of CPU time the thread got: the
                                // hardware's figure even on a busy machine
  std::string isa;              // "avx512f", "avx2+fma" or "scalar"
};
Peak measure_fma_peak(double seconds);

// One core's bf16 dot-product throughput (FLOP: 2 per product, as oneDNN
// and the model count them): a loop of vdpbf16ps (AVX512_BF16, isa
// "avx512_bf16"), and of AMX's tdpbf16ps tile product (isa "amx_bf16").
// gflops 0 and isa "none" where the CPU (or, for AMX, the kernel) lacks it.
Peak measure_bf16_dot_peak(double seconds);
Peak measure_amx_bf16_peak(double seconds);

// A child program run to completion.
struct ChildRun {
  int exit_code = -1;          // 128 + signal when killed
  double wall_s = 0;
  double tree_max_rss_mb = 0;  // wait4: the largest process of the tree (launcher or a worker)
  // Peak RSS (VmHWM) of each direct child of the program (the ranks of
  // train_parallel), as last read while they ran; empty if it had none.
  std::vector<double> children_hwm_mb;
  double self_hwm_mb = 0;      // the program's own VmHWM (train_serial: the one rank)
  std::string output;          // stdout + stderr (tail)
};
// Runs argv (argv[0] a path) with stdout and stderr captured, polling the
// memory of the program and of its children every `poll_ms`.
ChildRun run_and_watch(const std::vector<std::string>& argv, int poll_ms = 20);

// Seconds of each of `steps` gradient all-reduce steps (GradSync over the
// model's gradient buffer, buckets as the trainer makes them, float or
// bf16) among `world` ranks forked from this process over Gloo, every step
// started together; rank 0's times. Empty if a rank failed. Call it before
// this process starts threads of its own (it forks).
std::vector<double> grad_allreduce_seconds(int world, const std::string& algorithm, bool bf16, int steps);

}  // namespace ddp::bench
