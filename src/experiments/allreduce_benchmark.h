// The all-reduce micro-benchmark that calibrates the scaling model's latency
// (alpha) and bandwidth (beta) on this machine: 2 ranks, Gloo's ring over
// loopback TCP, before the training runs.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

namespace ddp::experiments {

// The hidden flag that makes run_experiments a benchmark worker:
// run_experiments --internal-allreduce-benchmark OUT.json
constexpr const char* kBenchWorkerFlag = "--internal-allreduce-benchmark";

// One rank of the benchmark (started by run_allreduce_benchmark through
// dist::launch_local): times all-reduces of growing size back to back, as a
// step's buckets go; rank 0 writes {ranks, samples: [{bytes, seconds,
// median_seconds}]} to `out`. Returns the exit status.
int allreduce_benchmark_worker(const std::string& out);

// Runs the benchmark with 2 ranks in `dir` and fits alpha and beta. Returns
// the "allreduce_benchmark" block of the model's calibration: {"status": "ok",
// "alpha_s", "beta_bytes_per_s", "samples", ...} or {"status": "failed",
// "error"}. A signal that stopped it is recorded (signals.h).
nlohmann::json run_allreduce_benchmark(const std::string& dir);

}  // namespace ddp::experiments
