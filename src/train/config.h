// Everything that defines a training run. Serial training is a run with a
// world of one; the same struct drives both trainers.
#pragma once
#include <cstdint>
#include <string>

#include "nn/precision.h"

namespace ddp::train {

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
  // Model and optimisation.
  uint64_t seed = 42;
  float dropout = 0.5f;
  double momentum = 0.9;
  std::string lr_scaling = "none";  // none | linear (lr x world size)
  int warmup_epochs = 0;            // linear ramp to the scaled lr
  // fp32 | bf16 (mixed precision, nn/precision.h). Not part of a
  // checkpoint's identity: a checkpoint resumes in either precision.
  nn::Precision precision = nn::Precision::fp32;
  // Execution.
  int threads = 1;              // compute threads of this process
  int world_size = 1;           // processes
  double timeout_s = 60;        // a collective that takes longer is a dead peer
  size_t bucket_kb = 64;        // a bucket closes once it holds this much (whole layers)
  std::string backend = "gloo"; // gloo | mpi
  std::string allreduce_algorithm = "bcube";  // gloo: ring | bcube
  std::string grad_compression = "none";      // none | bf16 (gradients all-reduced as bfloat16)
  std::string overlap = "auto";               // auto | thread | none (dist::choose_overlap)
  bool progress = true;         // progress bar / lines on rank 0
  // Checkpoints.
  std::string checkpoint_dir;   // empty: none
  int checkpoint_every = 1;     // epochs
  std::string resume;           // a checkpoint path, "auto" (newest in checkpoint_dir), or empty
};

// The learning rate at global step `step` of a run with `steps_per_epoch`
// steps an epoch, after the scaling rule and its warm-up.
double learning_rate_at(const TrainConfig& cfg, int world_size, int64_t step, int64_t steps_per_epoch);

}  // namespace ddp::train
