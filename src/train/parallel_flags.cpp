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
                  "All-reduce gradients as 'none' (float), 'bf16' (bfloat16: half the bytes, "
                  "sums in float, ~3 significant digits) or 'powersgd' (low-rank factors with error feedback, "
                  "Vogels et al. 2019: ~50x fewer bytes at rank 2); no effect with one process");
  app.add_option("--powersgd-rank", cfg.powersgd_rank,
                 "PowerSGD's approximation rank (with --grad-compression powersgd); a matrix is compressed "
                 "only where that saves more than half its bytes")
      ->check(CLI::Range(1, 1024))->default_str(std::to_string(dist::kDefaultPowerSgdRank));
  app.add_option("--powersgd-start-step", cfg.powersgd_start_step,
                 "Plain all-reduce for this many steps before PowerSGD starts (with --grad-compression powersgd)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))->default_str(std::to_string(dist::kDefaultPowerSgdStartStep));
  add_enum_option(app, "--overlap", cfg.overlap,
                  "Overlap the all-reduce with backward: 'thread' (a communication thread sends each layer's "
                  "gradients as backward produces them), 'none' (after backward, on the training thread), or "
                  "'auto' (none for mpi when every core computes, else thread)");
}

// The mitigations of communication cost (train/stepper.h); validate()
// refuses the combinations that make no sense.
void add_mitigation_flags(CLI::App& app, TrainConfig& cfg) {
  app.add_option("--accumulate", cfg.accumulate,
                 "Gradient accumulation: all-reduce once every K micro-batches and step after the K-th "
                 "(effective batch K x batch size x world size; docs/mitigations.md)")
      ->check(CLI::Range(1, 4096))->capture_default_str();
  app.add_option("--sync-every", cfg.sync_every,
                 "Local SGD: each rank steps on its own gradients and the ranks average parameters and momentum "
                 "every H steps (1: every step all-reduces the gradients, plain DDP)")
      ->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("--local-sgd-warmup-steps", cfg.local_sgd_warmup_steps,
                 "With --sync-every: plain DDP for the first W global steps, local SGD after (post-local SGD)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))->capture_default_str();
  app.add_option("--stale-gradients", cfg.stale_gradients,
                 "1: step t applies step t-1's averaged gradient, whose all-reduce runs behind step t's forward and "
                 "backward (0: off)")
      ->check(CLI::Range(0, 1))->capture_default_str();
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
  if (which.mitigations) add_mitigation_flags(app, cfg);
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
