#include "train/perf_flags.h"

namespace ddp::train {

void add_parallel_perf_flags(CLI::App& app, TrainConfig& cfg) {
  app.add_option("--grad-compression", cfg.grad_compression,
                 "All-reduce gradients as 'none' (float) or 'bf16' (bfloat16: half the bytes, "
                 "sums in float, ~3 significant digits; no effect with one process)")
      ->check(CLI::IsMember({"none", "bf16"}))
      ->capture_default_str();
}

}  // namespace ddp::train
