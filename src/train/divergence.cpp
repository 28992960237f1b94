#include "train/divergence.h"

#include <cmath>
#include <cstdio>

namespace ddp::train {

std::string non_finite_cause(double loss, int world) {
  if (!std::isfinite(loss)) return "the loss was " + std::to_string(loss) + (world > 1 ? " on this rank" : "");
  return world > 1 ? "another rank's loss or the summed gradient was NaN or infinite"
                   : "the gradient was NaN or infinite";
}

UserError diverged_error(const TrainConfig& cfg, int world, const StepPosition& at, const std::string& what,
                         double learning_rate) {
  char lr[32], lower[32];
  std::snprintf(lr, sizeof lr, "%g", learning_rate);
  std::snprintf(lower, sizeof lower, "%g", cfg.learning_rate / 10);
  std::string hint = "lower the learning rate, e.g. -lr " + std::string(lower);
  if (world > 1)
    hint += cfg.lr_scaling == LrScaling::linear
                ? ", or ramp it up over more epochs: --warmup-epochs N (with --lr-scaling linear)"
                : "; with --lr-scaling linear, ramp the scaled rate up: --warmup-epochs N";
  hint += !cfg.checkpoint_dir.empty() ? "; the checkpoints in " + cfg.checkpoint_dir +
                                            " were written before, with finite parameters"
                                      : "";
  return UserError("training diverged in epoch " + std::to_string(at.epoch + 1) + ", step " +
                       std::to_string(at.step + 1) + " of " + std::to_string(at.steps_per_epoch) + ": " + what +
                       " (learning rate " + lr + ")",
                   hint);
}

}  // namespace ddp::train
