// Everything that defines a training run. Serial training is a run with a
// world of one; the same struct drives both trainers.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "common/enum_names.h"
#include "dist/options.h"
#include "nn/precision.h"
#include "dist/powersgd.h"

namespace ddp::train {

// --lr-scaling: how the learning rate grows with the world size.
enum class LrScaling {
  none,    // the same rate at every world size
  linear,  // rate x world size (Goyal et al. 2017), ramped up over the warm-up
};

struct TrainConfig {
  // The seed's interface.
  int epochs = 10;
  int batch_size = 64;  // per process
  double learning_rate = 0.01;
  std::string save_results;  // empty: don't write
  // Data.
  std::string dataset = "mnist";
  std::string data_dir;  // empty: the dataset's default directory
  int64_t limit = 0;     // 0: all training samples
  int64_t test_limit = 0;  // 0: all test samples
  // Model and optimisation.
  uint64_t seed = 42;
  float dropout = 0.5f;
  double momentum = 0.9;
  LrScaling lr_scaling = LrScaling::none;
  int warmup_epochs = 0;            // linear ramp to the scaled lr
  // fp32 | bf16 (mixed precision, nn/precision.h). Not part of a
  // checkpoint's identity: a checkpoint resumes in either precision.
  nn::Precision precision = nn::Precision::fp32;
  // Execution.
  int threads = 1;              // compute threads of this process
  int world_size = 1;           // processes
  double timeout_s = 60;        // a collective that takes longer is a dead peer
  size_t bucket_kb = 64;        // a bucket closes once it holds this much (whole layers)
  dist::Backend backend = dist::Backend::gloo;
  dist::AllreduceAlgorithm allreduce_algorithm = dist::AllreduceAlgorithm::bcube;  // Gloo's
  dist::Compression grad_compression = dist::Compression::none;  // bf16: gradients all-reduced as bfloat16
  // PowerSGD (dist/powersgd.h); unset: dist::kDefaultPowerSgdRank / kDefaultPowerSgdStartStep.
  // Set only with grad_compression powersgd (validate() refuses them otherwise).
  std::optional<int> powersgd_rank;
  std::optional<int64_t> powersgd_start_step;
  dist::OverlapMode overlap = dist::OverlapMode::automatic;     // dist::choose_overlap
  bool progress = true;         // progress bar / lines on rank 0
  // Mitigations of communication cost (train/stepper.h, docs/mitigations.md); at most one.
  int accumulate = 1;                  // --accumulate K: micro-batches per optimizer step
  int sync_every = 1;                  // --sync-every H: local SGD, averaging every H steps (1: DDP)
  int64_t local_sgd_warmup_steps = 0;  // --local-sgd-warmup-steps W: plain DDP steps before local SGD
  int stale_gradients = 0;             // --stale-gradients 1: step t applies step t-1's gradient
  // Checkpoints.
  std::string checkpoint_dir;   // empty: none
  int checkpoint_every = 1;     // epochs
  std::string resume;           // a checkpoint path, "auto" (newest in checkpoint_dir), or empty
  // Restarts (docs/restarts.md). Flags of train_parallel, read by its
  // launcher (max_restarts) and by rank 0 (the snapshots).
  int max_restarts = 0;          // restarts after a failure (0: the job ends at the first one)
  double snapshot_every_s = 0;   // 0: snapshot_interval_s's default
  // Set by train_parallel's launcher through the environment, never by a
  // flag (launch/restarts.h): where rank 0 writes its snapshots and its
  // progress, and the snapshot a restarted attempt continues from (which
  // wins over --resume; config.resume still records the flag).
  std::string snapshot_path;     // empty: no snapshots
  std::string progress_path;     // empty: none written
  std::string restart_from;
  bool node_snapshot = false;    // the first rank of a node rank 0 is not on: writes that node's own snapshot too
  // Tracing (docs/tracing.md).
  std::string trace;            // --trace: the Chrome trace file to write; empty: none
  std::string trace_steps;      // --trace-steps A:B (global steps [A, B)); empty: trace_window's default
};

// The PowerSGD settings of a run (its rank, start step and seed); the
// matrices are the caller's (train::GradientLayout::matrices).
dist::PowerSgdOptions powersgd_options(const TrainConfig& cfg);

// True when the run continues from a checkpoint (--resume) or, restarted
// by the launcher, from a snapshot.
inline bool continues_a_run(const TrainConfig& cfg) { return !cfg.resume.empty() || !cfg.restart_from.empty(); }

// Seconds between rank 0's snapshots: --snapshot-every, or 30 when
// --max-restarts is on, else 0 (none).
double snapshot_interval_s(const TrainConfig& cfg);

// The learning rate at global step `step` of a run with `steps_per_epoch`
// steps an epoch, after the scaling rule and its warm-up.
double learning_rate_at(const TrainConfig& cfg, int world_size, int64_t step, int64_t steps_per_epoch);

}  // namespace ddp::train

namespace ddp {
template <>
struct EnumNames<train::LrScaling> {
  static constexpr std::array<EnumName<train::LrScaling>, 2> list{{{"none", train::LrScaling::none},
                                                                   {"linear", train::LrScaling::linear}}};
};
}  // namespace ddp
