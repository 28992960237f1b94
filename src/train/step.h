// One training step, the same for the trainer (train/trainer.h) and the
// benchmark (bench/bench.cpp), and the layout of the gradient buffer it
// all-reduces.
//
// A step: fill the batch -> forward -> backward, which hands each layer's
// gradients to the GradSync as soon as they are final (last layer first) ->
// GradSync::finish, which runs the optimizer on each bucket as soon as its
// all-reduce is done. Nothing in it allocates in steady state
// (tests/nn_alloc_test.cpp and tests/dist_alloc_test.cpp count its parts).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/trace.h"
#include "data/dataset.h"
#include "dist/bucket_layout.h"
#include "dist/grad_sync.h"
#include "nn/cnn.h"
#include "optim/sgd.h"

namespace ddp::train {

// The gradient buffer as training all-reduces it: the model's gradients
// (nn::Cnn's flat buffer, [0, num_params)), then one extra float, the stop
// flag, which rides with the first bucket so that all ranks learn in the
// same step that one of them was asked to stop (each such rank adds 1), that
// rank 0 wants a snapshot (it adds 0.5: exact in float and bfloat16), or
// that a loss was not finite (NaN).
struct GradientLayout {
  size_t num_params = 0;         // the model's gradients: [0, num_params)
  size_t stop_slot = 0;          // == num_params
  size_t count = 0;              // num_params + 1: the floats GradSync all-reduces
  std::vector<size_t> segments;  // where each range backward reports begins (one per layer), and the stop slot
  dist::BucketBounds buckets;    // dist::bucket_layout(count, bucket_bytes, segments): what GradSync cuts
  // Every parameter tensor as PowerSGD views it: [shape[0] x the rest]
  // (a bias: [n x 1]), in the model's order (dist/powersgd.h).
  std::vector<dist::MatrixView> matrices;
};
// The layout for buckets of at least bucket_bytes (rounded down to whole
// floats). Needs no model, communicator or GradSync.
GradientLayout gradient_layout(size_t bucket_bytes);

// The model, its optimizer and the synchroniser over the model's gradient
// buffer, laid out as gradient_layout() says (nn::Cnn built with one extra
// gradient float; GradSync over layout.count floats with layout.segments).
// trace: where the step records its batch, the step itself and each
// bucket's optimizer step (null: nothing); the Cnn and the GradSync record
// their parts into the recorder they were given (set_trace).
struct StepModel {
  nn::Cnn& net;
  optim::Sgd& sgd;
  dist::GradSync& sync;
  trace::Recorder* trace = nullptr;
};

struct StepInput {
  std::span<const int64_t> samples;  // indices into the dataset: the batch, in order (1 .. any size)
  uint64_t dropout_seed = 0;         // dropout_seed(): the dropout mask of this step
  double learning_rate = 0;          // of this step (learning_rate_at)
  bool stop_requested = false;       // this rank was asked to stop (tells the others through the stop flag)
  // Gradient accumulation (train/stepper.h): the sum of the gradients of
  // this optimizer step's earlier micro-batches [num_params], added to each
  // range of this one's before it is all-reduced (null: none); and how many
  // micro-batches the summed gradient holds, this one included (the
  // average divides by it as well as by the world size).
  const float* accumulated = nullptr;
  int micro_batches = 1;
  bool snapshot_requested = false;   // rank 0 only: a snapshot is due (tells the others through the same flag)
};

// Seconds of each part of one step on this rank.
struct StepTimes {
  double data = 0;            // filling the batch
  double forward = 0;
  double backward = 0;        // includes handing buckets to the communication thread
  double allreduce_wait = 0;  // waiting in GradSync::finish: communication not hidden behind backward
  double optimizer = 0;       // the per-bucket optimizer steps
  double total = 0;           // the whole step
};

struct StepResult {
  double loss = 0;     // mean over this rank's batch
  bool stop = false;   // some rank asked to stop in this step (the same answer on every rank)
  bool snapshot = false;  // rank 0 asked for a snapshot after this step, and no rank to stop (the same everywhere)
  // Some rank's loss, or the summed gradient, was NaN or infinite (the same
  // answer on every rank). The buckets from the first non-finite one on were
  // not applied; the run must stop.
  bool non_finite = false;
  // model.sync waited for a step's buckets in this call, so its
  // last_step_buckets() are this step's (false in the steps of the
  // mitigations that all-reduce no gradient: train/stepper.h).
  bool synced = false;
  StepTimes times;
  double comm_s = 0;      // GradSync::last_step_comm_seconds
  double comm_cpu_s = 0;  // GradSync::last_step_comm_cpu_seconds
};

// Trains one step on `data`'s samples in.samples. Throws what the
// communicator throws (a dead peer, a timeout: ddp::UserError).
StepResult train_step(const StepModel& model, const data::Dataset& data, const StepInput& in);

// The forward and backward of a step that all-reduces no gradient (local
// SGD's steps, gradient accumulation's first micro-batches): afterwards
// net.grads()[0, num_params) holds this rank's gradient of its batch's mean
// loss; the stop flag's slot and model.sync are not touched. Sets the loss
// and times.data, forward, backward and total.
StepResult forward_backward(const StepModel& model, const data::Dataset& data, const StepInput& in);

// Waits for model.sync's buckets of `grads` (the buffer the GradSync
// all-reduces: the model's gradients, or another of the same layout) and
// steps the optimizer on each as soon as it is summed, with the average
// `scale` x sum, at learning rate lr. A bucket whose sum holds a NaN or
// infinity is not applied, nor any after it (non_finite; the same verdict
// on every rank). Returns the seconds waited.
struct SyncedStep {
  double waited = 0;
  bool non_finite = false;
};
SyncedStep finish_and_step(const StepModel& model, const float* grads, double lr, float scale);

// Steps the optimizer on gradients that are summed already (as
// finish_and_step does, bucket by bucket, with the same non-finite rule).
// Returns non_finite.
bool step_summed(const StepModel& model, const float* grads, double lr, float scale);

// No element of x[0, n) is NaN or infinite.
bool all_finite(const float* x, size_t n);

// The dropout seed of global step `step` on `rank`: every random draw is a
// function of (seed, step, rank), so a resumed run replays the same masks.
uint64_t dropout_seed(uint64_t seed, int64_t step, int rank);

}  // namespace ddp::train
