// A performance model of this program's data-parallel training, to predict
// what it would do on more ranks than this machine has: the alpha-beta model
// of a ring all-reduce, overlapped with backward bucket by bucket, on top of
// the compute time measured in the serial run.
//
// The program scales WEAKLY per step: the batch per process B stays fixed, so
// a step's compute is constant while an epoch of M samples has 1/p of the
// steps. For p ranks:
//
//   shard(p)  = ceil(M / p)                samples per rank per epoch (padded)
//   S(p)      = ceil(shard(p) / B)         steps per epoch
//   b(p)      = shard(p) / S(p)            samples per step and rank (= B unless p is huge)
//
//   T_ring(n, p) = 2 (p-1) alpha  +  2 (p-1)/p * n / beta
//       (reduce-scatter + all-gather: 2(p-1) messages of n/p bytes each, in sequence)
//
//   exposed(p): the all-reduce time backward does not hide. Bucket i (n_i
//       bytes, in all-reduce order) is final when a fraction r_i of backward
//       has run; one communication thread all-reduces the buckets in turn:
//         f_0 = r_0 T_bwd + T_ring(n_0, p),  f_i = max(f_{i-1}, r_i T_bwd) + T_ring(n_i, p)
//         exposed = max(0, f_last - T_bwd),  T_bwd = b(p) t_bwd
//       (with one bucket: exposed = max(0, T_ring(n, p) - (1 - r_0) T_bwd), the
//       familiar "all-reduce minus the overlapped part of backward")
//
//   T_epoch(p) = S(p) * (b(p) t_step + exposed(p))  +  ceil(E / p) t_eval
//   speedup(p) = T_epoch(1) / T_epoch(p),  efficiency(p) = speedup(p) / p
//
// with t_step (training time per sample: data, forward, backward, optimizer),
// t_bwd (backward per sample) and t_eval (evaluation per test sample, E test
// samples, split over the ranks) measured in the serial run, and r_i from the
// per-layer backward times of the serial run. On this machine, p processes of
// T threads share C cores: compute is slowed by max(1, p T / C).
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "results/run_result.h"

namespace ddp::report {

struct Network {
  std::string name;     // "10 Gbit/s Ethernet"
  double alpha_s = 0;   // latency per message
  double beta_Bps = 0;  // bandwidth, bytes per second
};

// The networks the model predicts for: 10, 25 and 100 Gbit/s Ethernet over
// TCP (Gloo's transport), each at 90% of its line rate, with a per-message
// latency of 30, 20 and 10 us (kernel TCP stack + one switch hop).
std::vector<Network> default_networks();

struct Bucket {
  double bytes = 0;
  double ready_fraction = 1;  // fraction of the backward pass done when the bucket is final
};

struct ModelParams {
  double train_samples = 0;  // M: training samples per epoch
  double test_samples = 0;   // E
  int batch = 64;            // B: per process
  double t_step = 0;         // training-phase seconds per sample, one process
  double t_bwd = 0;          // backward seconds per sample
  double t_eval = 0;         // evaluation seconds per test sample
  std::vector<Bucket> buckets;  // in all-reduce order
  double gradient_bytes() const;
};

double ring_allreduce_s(double bytes, int p, double alpha_s, double beta_Bps);

// The exposed all-reduce of one step whose backward pass takes t_bwd_step seconds.
double exposed_allreduce_s(const std::vector<Bucket>& buckets, double t_bwd_step, int p, double alpha_s,
                           double beta_Bps);

struct Prediction {
  int p = 1;
  double steps = 0;             // S(p)
  double samples_per_step = 0;  // b(p)
  double compute_step_s = 0;    // b(p) t_step (x slowdown)
  double allreduce_step_s = 0;  // sum of T_ring over the buckets
  double exposed_step_s = 0;
  double train_epoch_s = 0, eval_epoch_s = 0, epoch_s = 0;
  double speedup = 1, efficiency = 1;
};

// What a step's all-reduce costs besides the alpha-beta ring, for the model
// of a measured network (all default to nothing, as for the default networks):
//  - burst_bytes: a token-bucket shaper (tbf) passes up to this many bytes at
//    once after the link was idle. Forward leaves the link idle, so the first
//    bucket of a step gets min(burst, its bytes per direction) free.
//  - cpu_s + cpu_s_per_byte * n: the CPU one all-reduce of n bytes takes on a
//    rank (its threads and its kernel time; measured by the benchmark).
//  - cpu_shared: the compute threads fill the rank's cores, so that CPU is
//    taken from compute: backward (where the buckets go) and the step grow by
//    it. One core per node with one compute thread is such a case.
struct CommCost {
  double alpha_s = 0, beta_Bps = 0;
  double burst_bytes = 0;
  double cpu_s = 0, cpu_s_per_byte = 0;
  bool cpu_shared = false;
};

// The all-reduce time of one step (the buckets' T_ring, less the burst).
double step_allreduce_s(const std::vector<Bucket>& buckets, int p, const CommCost& c);

// compute_slowdown(p): 1 on a cluster (every rank has its own cores);
// max(1, p T / C) for p processes of T threads sharing C cores.
Prediction predict(const ModelParams& m, int p, double alpha_s, double beta_Bps, double compute_slowdown = 1);
// The same with the costs of a measured network: with cpu_shared, the
// communication CPU C of a step is added to backward (T_bwd' = T_bwd + C) and
// to the step's compute; the exposed time is then f_last - T_bwd'.
Prediction predict(const ModelParams& m, int p, const CommCost& c, double compute_slowdown = 1);
double shared_cores_slowdown(int p, int threads_per_process, int cores);

// Least-squares fit (relative error) of t = 2(p-1) alpha + 2(p-1)/p n / beta
// to measured (bytes, seconds) all-reduce times of a p-rank ring. alpha is
// clamped at >= 0. Throws std::invalid_argument with fewer than two sizes or
// a non-positive slope.
std::pair<double, double> fit_alpha_beta(const std::vector<std::pair<double, double>>& samples, int p);

// Ordinary least squares of y = a + b x; {a, b}. Throws
// std::invalid_argument with fewer than two different x.
std::pair<double, double> fit_line(const std::vector<std::pair<double, double>>& xy);

// beta such that the buckets' ring all-reduces take busy_per_step_s in total, given alpha
// (NaN when the latency alone exceeds it).
double effective_beta(double busy_per_step_s, const std::vector<Bucket>& buckets, int p, double alpha_s);

// Where the gradient of a layer lies in the flat buffer (in floats).
struct ParamBlock {
  std::string layer;
  size_t offset = 0, count = 0;
};

// Calibrates the model from a serial results file. layers: every layer's name
// in forward order (backward runs in reverse); layout: the parameter blocks;
// buckets: the gradient buckets as [first, last) element ranges in the order
// they are all-reduced (GradSync's bucket(i)), of bytes_per_element each. A
// bucket is final when the layer holding its first element has run backward
// (elements outside every block, and layers without times, count as final at
// once). Throws std::invalid_argument when the results have no epochs,
// samples or training time.
ModelParams calibrate(const ddp::results::RunResult& serial_results, const std::vector<std::string>& layers,
                      const std::vector<ParamBlock>& layout, const std::vector<std::pair<size_t, size_t>>& buckets,
                      double bytes_per_element = 4);

// This machine's communication, for the model of this machine.
struct MachineComm {
  double alpha_s = 0, beta_Bps = 0;
  int cores = 1, threads_per_process = 1;
  int max_p = 8;  // predict for 1..max_p processes
  // With a measured network (--network): the costs of p ranks' all-reduce
  // beyond alpha and beta (the shaper's burst, the CPU taken from compute),
  // so that the curve is the model that model_validation holds against the
  // measurement; empty: alpha and beta alone.
  std::function<CommCost(int p)> cost = {};
};

// The "scaling_model" section of performance_metrics.json: the formula, the
// parameters, per network its predictions for p = 1, 2, 4, ..., 1024 and its
// best p; with `machine`, the predictions for this machine and, beside them,
// the measured speedups (p, speedup).
nlohmann::json model_json(const ModelParams& m, const std::vector<Network>& networks, const MachineComm* machine,
                          const std::vector<std::pair<int, double>>& measured);

// The backend whose runs the model is calibrated with and compared to: gloo
// (the model describes Gloo's ring, and the benchmark that calibrates it is
// Gloo's) when it ran, else the first of `backends`; "" when there is none.
std::string model_backend(const std::vector<std::string>& backends);
// The precision likewise: fp32 when it ran (the model's per-sample times come
// from the serial run of that precision, and its parallel runs are the ones
// compared), else the first of `precisions`; "fp32" when there is none.
std::string model_precision(const std::vector<std::string>& precisions);

// The JSON forms in performance_metrics.json's "scaling_model"; the readers
// throw results::SchemaError naming a missing or mistyped field.
nlohmann::json to_json(const ModelParams& m);
ModelParams model_params_from_json(const nlohmann::json& j);
nlohmann::json to_json(const Prediction& p);
nlohmann::json to_json(const Network& n);
Network network_from_json(const nlohmann::json& j);

}  // namespace ddp::report
