// The message of a run that diverged: every rank learnt in the same step
// that a loss, a gradient or a parameter became NaN or infinite.
#pragma once
#include <cstdint>
#include <string>

#include "common/error.h"
#include "train/config.h"

namespace ddp::train {

// What made a step non-finite (StepResult::non_finite) as a clause: this
// rank's `loss` if it is not finite, else another rank's loss or the sum.
std::string non_finite_cause(double loss, int world);

// Where: 0-based epoch and step, of steps_per_epoch.
struct StepPosition {
  int epoch = 0;
  int64_t step = 0, steps_per_epoch = 0;
};

// "training diverged in epoch E, step S of N: <what> (learning rate R)",
// with a hint that names a working fix: a lower rate, a longer warm-up
// with linear scaling, and the checkpoints still good.
UserError diverged_error(const TrainConfig& cfg, int world, const StepPosition& at, const std::string& what,
                         double learning_rate);

}  // namespace ddp::train
