// The flags of data-parallel training, registered in one place: what
// train_parallel offers on top of add_training_flags (train/cli.h), each
// parsed straight into TrainConfig (enums for the choices). A program that
// starts parallel runs of its own (run_experiments) registers the subset it
// offers with the same names, ranges and defaults.
#pragma once
#include <CLI/CLI.hpp>

#include "train/config.h"

namespace ddp::train {

// The largest world train_parallel accepts: --world-size, and --nnodes x
// --nproc-per-node. Not a limit of the algorithm but a bound that turns a
// typo (--nnodes 1000 --nproc-per-node 64) into a message rather than a job
// that cannot connect: every Gloo rank keeps a TCP connection to every other
// one, so a world of N needs N-1 sockets in each process (Linux's default
// limit of 1024 open files, `ulimit -n`, is reached at about a thousand
// ranks already). It bounds the whole world, not one machine: the ranks per
// machine have their own bound (launch/cluster_flags.h).
constexpr int kMaxWorldSize = 4096;

// train_parallel's default world (TrainConfig's 1 is serial training's):
// the smallest that is parallel.
constexpr int kDefaultParallelWorld = 2;

// Which groups of flags to add.
struct ParallelFlagSet {
  bool world_size = true;           // -w,--world-size (default kDefaultParallelWorld)
  bool backend = true;              // --backend gloo|mpi
  bool lr_scaling = true;           // --lr-scaling none|linear
  bool warmup = true;               // --warmup-epochs
  bool allreduce_algorithm = true;  // --allreduce-algorithm ring|bcube
  bool communication = true;        // --timeout, --bucket-kb, --grad-compression none|bf16|powersgd,
                                    // --powersgd-rank, --powersgd-start-step, --overlap auto|thread|none
  bool mitigations = true;          // --accumulate, --sync-every, --local-sgd-warmup-steps,
                                    // --stale-gradients (train/stepper.h)
  bool restarts = true;             // --max-restarts, --snapshot-every
};

// Adds the chosen flags, writing into cfg (with world_size: sets
// cfg.world_size to kDefaultParallelWorld first).
void add_parallel_flags(CLI::App& app, TrainConfig& cfg, ParallelFlagSet which = {});

}  // namespace ddp::train
