#include "train/parallel_flags.h"

#include "train/cli.h"

namespace ddp::train {

namespace {

// In the order of train_parallel's --help.
void add_communication_flags(CLI::App& app, TrainConfig& cfg, const ParallelFlagSet& which) {
  if (which.communication) {
    app.add_option("--timeout", cfg.timeout_s, "Seconds after which a silent peer counts as dead")
        ->check(finite_in(1, 86400))->capture_default_str();
    app.add_option("--bucket-kb", cfg.bucket_kb, "Gradient all-reduce bucket size in KiB")
        ->check(CLI::Range(size_t{4}, size_t{1} << 20))->capture_default_str();
  }
  if (which.allreduce_algorithm)
    add_enum_option(app, "--allreduce-algorithm", cfg.allreduce_algorithm, "Gloo all-reduce algorithm");
  if (!which.communication) return;
  add_enum_option(app, "--grad-compression", cfg.grad_compression,
                  "All-reduce gradients as 'none' (float) or 'bf16' (bfloat16: half the bytes, "
                  "sums in float, ~3 significant digits; no effect with one process)");
  add_enum_option(app, "--overlap", cfg.overlap,
                  "Overlap the all-reduce with backward: 'thread' (a communication thread sends each layer's "
                  "gradients as backward produces them), 'none' (after backward, on the training thread), or "
                  "'auto' (none for mpi when every core computes, else thread)");
}

}  // namespace

void add_parallel_flags(CLI::App& app, TrainConfig& cfg, ParallelFlagSet which) {
  if (which.world_size) {
    cfg.world_size = kDefaultParallelWorld;
    app.add_option("-w,--world-size", cfg.world_size, "Number of processes")
        ->check(CLI::Range(1, kMaxWorldSize))->capture_default_str();
  }
  if (which.lr_scaling)
    add_enum_option(app, "--lr-scaling", cfg.lr_scaling,
                    "Learning-rate scaling rule: none, or linear (lr x world size)");
  if (which.warmup)
    app.add_option("--warmup-epochs", cfg.warmup_epochs, "Epochs over which the scaled learning rate is ramped up")
        ->check(CLI::Range(0, 100000))->capture_default_str();
  add_communication_flags(app, cfg, which);
  if (which.backend)
    add_enum_option(app, "--backend", cfg.backend, "Communication backend: gloo, or mpi (OpenMPI)");
  if (which.restarts) {
    app.add_option("--max-restarts", cfg.max_restarts,
                   "Restart every rank from the latest snapshot when one dies or goes silent, at most this often "
                   "(0: a failure ends the job)")
        ->check(CLI::Range(0, 1000))->capture_default_str();
    app.add_option("--snapshot-every", cfg.snapshot_every_s,
                   "Seconds between the snapshots rank 0 writes during an epoch (it also writes one at each "
                   "epoch's end; default 30 with --max-restarts; without it, needs --checkpoint-dir)")
        ->check(finite_in(0.01, 86400, true));
  }
}

}  // namespace ddp::train
