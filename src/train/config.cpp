#include "train/config.h"

#include <algorithm>

#include "common/rng.h"

namespace ddp::train {

dist::PowerSgdOptions powersgd_options(const TrainConfig& cfg) {
  dist::PowerSgdOptions o;
  o.matrix_approximation_rank = cfg.powersgd_rank.value_or(dist::kDefaultPowerSgdRank);
  o.start_step = cfg.powersgd_start_step.value_or(dist::kDefaultPowerSgdStartStep);
  o.seed = mix_seed(cfg.seed, 0x9057'5bd0u);  // Q's start: apart from the other streams of the seed
  return o;
}

double snapshot_interval_s(const TrainConfig& cfg) {
  if (cfg.snapshot_every_s > 0) return cfg.snapshot_every_s;
  return cfg.max_restarts > 0 ? 30.0 : 0.0;
}

double learning_rate_at(const TrainConfig& cfg, int world_size, int64_t step, int64_t steps_per_epoch) {
  if (cfg.lr_scaling != LrScaling::linear || world_size == 1) return cfg.learning_rate;
  const double target = cfg.learning_rate * world_size;
  const int64_t warmup_steps = static_cast<int64_t>(cfg.warmup_epochs) * steps_per_epoch;
  if (warmup_steps <= 0 || step >= warmup_steps) return target;
  // Goyal et al. (2017): ramp linearly from the single-process rate.
  const double f = static_cast<double>(step) / static_cast<double>(warmup_steps);
  return cfg.learning_rate + f * (target - cfg.learning_rate);
}

}  // namespace ddp::train
