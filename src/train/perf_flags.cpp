#include "train/perf_flags.h"

namespace ddp::train {

void add_parallel_perf_flags(CLI::App& app, TrainConfig& cfg) {
  app.add_option("--grad-compression", cfg.grad_compression,
                 "All-reduce gradients as 'none' (float) or 'bf16' (bfloat16: half the bytes, "
                 "sums in float, ~3 significant digits; no effect with one process)")
      ->check(CLI::IsMember({"none", "bf16"}))
      ->capture_default_str();
  app.add_option("--overlap", cfg.overlap,
                 "Overlap the all-reduce with backward: 'thread' (a communication thread sends each layer's "
                 "gradients as backward produces them), 'none' (after backward, on the training thread), or "
                 "'auto' (none for mpi when every core computes, else thread)")
      ->check(CLI::IsMember({"auto", "thread", "none"}))
      ->capture_default_str();
}

}  // namespace ddp::train
