// Performance flags of train_parallel that only matter with more than one
// process.
#pragma once
#include <CLI/CLI.hpp>

#include "train/config.h"

namespace ddp::train {

// --grad-compression none|bf16: all-reduce the gradients as bfloat16 (half
// the bytes; additions in float; see dist/grad_sync.h).
// --overlap auto|thread|none: whether a communication thread overlaps the
// all-reduce with backward (dist::choose_overlap).
void add_parallel_perf_flags(CLI::App& app, TrainConfig& cfg);

}  // namespace ddp::train
