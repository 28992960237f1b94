// How the ranks synchronise in a step: every step all-reduces the gradients
// (DDP, train_step), or one of the mitigations of communication cost that
// docs/mitigations.md describes, each as PyTorch users know it:
//
// - accumulate (--accumulate K): gradient accumulation, DDP's no_sync().
//   The gradients of K micro-batches are summed locally and all-reduced
//   once, during the K-th micro-batch's backward (with the usual overlap);
//   the step after it applies their average over K x world micro-batches.
//   Groups restart with each epoch; the epoch's last group may be shorter
//   and is stepped with the micro-batches it holds (their average).
// - local SGD (--sync-every H, after --local-sgd-warmup-steps W plain DDP
//   steps: post-local SGD, Lin et al. 2020): each rank steps on its own
//   gradient; after every H-th local step the ranks average their
//   parameters AND momentum buffers (Yu, Jin and Yang, ICML 2019), so that
//   after an averaging step every rank holds the same whole state. Each
//   epoch ends with an average (evaluation and checkpoints see one model).
// - stale gradients (--stale-gradients 1): step t applies the average of
//   step t-1's gradients, whose all-reduce ran on the communication thread
//   behind step t's whole forward and backward (a second gradient buffer).
//   The first step of an epoch applies nothing; the epoch's last gradient
//   is applied at its end (the pipeline drains), so an epoch applies as
//   many updates as it has steps.
//
// What rides on DDP's gradient all-reduce rides in every mode: the stop
// flag (a signal on any rank) and a non-finite loss (as NaN) travel in the
// gradient buffer's extra slot where gradients are all-reduced, and in a
// one-float all-reduce of their own in the steps that all-reduce none
// (accumulate's first K-1 micro-batches, local SGD's steps), so every rank
// learns in the same step that one must stop, and a dead or silent peer
// fails that step's collective. With stale gradients the flags of step t
// arrive with its gradient, in step t+1.
#pragma once
#include <cstdint>
#include <vector>

#include "data/dataset.h"
#include "dist/communicator.h"
#include "train/config.h"
#include "train/step.h"

namespace ddp::train {

enum class SyncMode { ddp, accumulate, local_sgd, stale };
// The mode the config asks for (--sync-every 1 is DDP). Assumes validate()
// passed: at most one mitigation.
SyncMode sync_mode(const TrainConfig& cfg);

class Stepper {
 public:
  // model.sync all-reduces `stale_grads` (--stale-gradients: a buffer of
  // the gradient layout's count, which must outlive this) or the model's
  // gradients (stale_grads null). comm: the communicator that the step's
  // traffic goes through (model.sync's). Allocates the mode's buffers here.
  Stepper(const TrainConfig& cfg, const StepModel& model, dist::Communicator& comm, float* stale_grads,
          int64_t steps_per_epoch);

  // Step `step` (0-based) of the epoch, global step `global_step`. As
  // train_step: stop and non_finite are the same on every rank.
  StepResult step(const data::Dataset& data, const StepInput& in, int64_t step, int64_t global_step);
  // At the end of an epoch and before a stop (every rank, after the same
  // step): leaves one model on every rank and nothing in flight (local
  // SGD averages, stale gradients apply the last). Returns the time spent
  // (times.allreduce_wait, times.optimizer) and non_finite.
  StepResult settle();
  // Waits for an all-reduce in flight without applying it (stale gradients)
  // so that the training thread may call another collective.
  void quiesce();
  // How many steps of the epoch a checkpoint after `end` steps may claim:
  // `end`, or with accumulation the start of the group in progress (no
  // update has been applied since, so the state is that of the group's
  // start and a resumed run replays the group).
  int64_t resumable_end(int64_t end) const { return end - held_; }

  int64_t optimizer_steps() const { return optimizer_steps_; }  // updates applied so far
  int64_t optimizer_steps_per_epoch() const;                   // in a whole epoch

 private:
  StepResult accumulate_step(const data::Dataset& data, const StepInput& in, int64_t step);
  StepResult local_step(const data::Dataset& data, const StepInput& in, int64_t global_step);
  StepResult stale_step(const data::Dataset& data, const StepInput& in);
  // The stop / non-finite flag, summed over ranks in a one-float all-reduce.
  float exchange_flags(float mine);
  // Local SGD: parameters and momentum become the mean over ranks.
  void average();
  // Stale gradients: applies the gradient in flight (or already summed).
  SyncedStep apply_pending();

  const SyncMode mode_;
  const StepModel model_;
  dist::Communicator& comm_;
  const int world_;
  const int accumulate_, sync_every_;
  const int64_t warmup_steps_, steps_per_epoch_;
  const size_t num_params_, count_;  // the parameters; the all-reduced floats (parameters + flag)
  std::vector<float> accumulated_;   // accumulate: the group's summed gradients [num_params]
  int held_ = 0;                     // accumulate: micro-batches of the group in progress
  bool apart_ = false;               // local SGD: local steps since the last average
  float* stale_;                     // stale: the buffer in flight [count]
  bool pending_ = false;             // stale: a gradient was handed off and not yet applied
  bool summed_ = false;              // ... and its all-reduce is done (quiesce)
  double pending_lr_ = 0;            // ... its step's learning rate
  int64_t optimizer_steps_ = 0;
};

}  // namespace ddp::train
