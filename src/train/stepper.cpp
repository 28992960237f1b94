#include "train/stepper.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "common/clock.h"
#include "common/error.h"

namespace ddp::train {

namespace {
using Clock = std::chrono::steady_clock;

// The flag as the stop slot carries it: NaN for a non-finite loss (or
// gradient), so that the sum is NaN on every rank; else 1 to ask to stop.
float flag_of(bool finite, bool stop_requested) {
  return !finite ? std::numeric_limits<float>::quiet_NaN() : stop_requested ? 1.f : 0.f;
}
}  // namespace

SyncMode sync_mode(const TrainConfig& cfg) {
  if (cfg.stale_gradients > 0) return SyncMode::stale;
  if (cfg.accumulate > 1) return SyncMode::accumulate;
  if (cfg.sync_every > 1) return SyncMode::local_sgd;
  return SyncMode::ddp;
}

Stepper::Stepper(const TrainConfig& cfg, const StepModel& model, dist::Communicator& comm, float* stale_grads,
                 int64_t steps_per_epoch)
    : mode_(sync_mode(cfg)),
      model_(model),
      comm_(comm),
      world_(comm.size()),
      accumulate_(cfg.accumulate),
      sync_every_(cfg.sync_every),
      warmup_steps_(cfg.local_sgd_warmup_steps),
      steps_per_epoch_(steps_per_epoch),
      num_params_(nn::Cnn::num_params()),
      count_(num_params_ + 1),  // gradient_layout(): the parameters, then the stop flag
      stale_(stale_grads) {
  DDP_ASSERT((mode_ == SyncMode::stale) == (stale_grads != nullptr),
             "Stepper: a second gradient buffer is needed with, and only with, stale gradients");
  if (mode_ == SyncMode::accumulate) accumulated_.resize(num_params_);
}

int64_t Stepper::optimizer_steps_per_epoch() const {
  return mode_ == SyncMode::accumulate ? (steps_per_epoch_ + accumulate_ - 1) / accumulate_ : steps_per_epoch_;
}

StepResult Stepper::step(const data::Dataset& data, const StepInput& in, int64_t step, int64_t global_step) {
  switch (mode_) {
    case SyncMode::accumulate: return accumulate_step(data, in, step);
    case SyncMode::local_sgd: return local_step(data, in, global_step);
    case SyncMode::stale: return stale_step(data, in);
    case SyncMode::ddp: break;
  }
  StepResult r = train_step(model_, data, in);
  if (!r.non_finite) ++optimizer_steps_;
  return r;
}

float Stepper::exchange_flags(float mine) {
  if (world_ > 1) comm_.allreduce_sum(&mine, 1);
  return mine;
}

// The group's last micro-batch (or the epoch's) all-reduces the summed
// gradients during its backward, as a DDP step; the others only add theirs.
StepResult Stepper::accumulate_step(const data::Dataset& data, const StepInput& in, int64_t step) {
  if ((step + 1) % accumulate_ == 0 || step + 1 == steps_per_epoch_) {
    StepInput last = in;
    last.accumulated = held_ > 0 ? accumulated_.data() : nullptr;
    last.micro_batches = held_ + 1;
    StepResult r = train_step(model_, data, last);
    held_ = 0;
    if (!r.non_finite) ++optimizer_steps_;
    return r;
  }
  StepResult r = forward_backward(model_, data, in);
  const float* g = model_.net.grads();
  if (held_ == 0)
    std::copy(g, g + num_params_, accumulated_.begin());
  else
    for (size_t i = 0; i < num_params_; ++i) accumulated_[i] += g[i];
  ++held_;
  // A non-finite gradient shows in the group's summed gradient, at its end.
  const auto t0 = Clock::now();
  const float flags = exchange_flags(flag_of(std::isfinite(r.loss), in.stop_requested));
  r.times.allreduce_wait = seconds(t0, Clock::now());
  r.times.total += r.times.allreduce_wait;
  r.comm_s = r.times.allreduce_wait;
  r.stop = flags > 0;
  r.non_finite = !std::isfinite(flags);
  return r;
}

StepResult Stepper::local_step(const data::Dataset& data, const StepInput& in, int64_t global_step) {
  if (global_step < warmup_steps_) {  // post-local SGD: plain DDP first
    StepResult r = train_step(model_, data, in);
    if (!r.non_finite) ++optimizer_steps_;
    return r;
  }
  StepResult r = forward_backward(model_, data, in);
  // Nothing sums this rank's gradient: it is checked here.
  const bool finite = std::isfinite(r.loss) && all_finite(model_.net.grads(), num_params_);
  const auto t0 = Clock::now();
  const float flags = exchange_flags(flag_of(finite, in.stop_requested));
  const auto t1 = Clock::now();
  r.stop = flags > 0;
  r.non_finite = !std::isfinite(flags);
  auto t2 = t1, t3 = t1;
  if (!r.non_finite) {
    model_.sgd.step(model_.net.params(), model_.net.grads(), static_cast<float>(in.learning_rate), 1.0f);
    ++optimizer_steps_;
    apart_ = true;
    t2 = Clock::now();
    if ((global_step + 1 - warmup_steps_) % sync_every_ == 0) average();
    t3 = Clock::now();
  }
  r.times.allreduce_wait = seconds(t0, t1) + seconds(t2, t3);
  r.times.optimizer = seconds(t1, t2);
  r.times.total += seconds(t0, t3);
  r.comm_s = r.times.allreduce_wait;
  return r;
}

// The sums are the same bits on every rank, and so are the means.
void Stepper::average() {
  apart_ = false;
  if (world_ == 1) return;
  float* p = model_.net.params();
  float* v = model_.sgd.velocity().data();
  comm_.allreduce_sum(p, num_params_);
  comm_.allreduce_sum(v, num_params_);
  const float scale = 1.0f / static_cast<float>(world_);
  for (size_t i = 0; i < num_params_; ++i) {
    p[i] *= scale;
    v[i] *= scale;
  }
}

// This step's gradient goes into the second buffer and its all-reduce
// starts at once (GradSync's communication thread); the previous step's,
// all-reduced meanwhile, is applied first.
StepResult Stepper::stale_step(const data::Dataset& data, const StepInput& in) {
  StepResult r = forward_backward(model_, data, in);
  float* g = model_.net.grads();
  g[num_params_] = flag_of(std::isfinite(r.loss), in.stop_requested);
  const auto t0 = Clock::now();
  if (pending_) {
    const SyncedStep s = apply_pending();
    r.stop = stale_[num_params_] > 0;  // the flags of the previous step, summed
    r.non_finite = s.non_finite || !std::isfinite(stale_[num_params_]);
    r.times.allreduce_wait = s.waited;
    r.synced = true;
    r.comm_s = model_.sync.last_step_comm_seconds();
    r.comm_cpu_s = model_.sync.last_step_comm_cpu_seconds();
  }
  if (!r.non_finite) {
    std::copy(g, g + count_, stale_);
    model_.sync.ready(0, count_);
    pending_ = true;
    pending_lr_ = in.learning_rate;
  }
  const auto t1 = Clock::now();
  r.times.optimizer = seconds(t0, t1) - r.times.allreduce_wait;
  r.times.total += seconds(t0, t1);
  return r;
}

SyncedStep Stepper::apply_pending() {
  pending_ = false;
  const float scale = model_.sync.average_scale();
  SyncedStep s;
  if (summed_)
    s.non_finite = step_summed(model_, stale_, pending_lr_, scale);
  else
    s = finish_and_step(model_, stale_, pending_lr_, scale);
  summed_ = false;
  if (!s.non_finite) ++optimizer_steps_;
  return s;
}

void Stepper::quiesce() {
  if (!pending_ || summed_) return;
  model_.sync.finish();
  summed_ = true;
}

StepResult Stepper::settle() {
  StepResult r;
  const auto t0 = Clock::now();
  if (mode_ == SyncMode::local_sgd && apart_) {
    average();
    r.times.allreduce_wait = seconds(t0, Clock::now());
  }
  if (mode_ == SyncMode::stale && pending_) {
    const SyncedStep s = apply_pending();
    r.non_finite = s.non_finite || !std::isfinite(stale_[num_params_]);
    r.times.allreduce_wait = s.waited;
    r.times.optimizer = seconds(t0, Clock::now()) - s.waited;
  }
  r.comm_s = r.times.allreduce_wait;
  r.times.total = seconds(t0, Clock::now());
  return r;
}

}  // namespace ddp::train
