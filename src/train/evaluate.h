// Evaluation on the test set, shared out over the ranks like training.
#pragma once
#include "data/dataset.h"
#include "dist/communicator.h"
#include "nn/cnn.h"

namespace ddp::train {

struct EvalResult {
  double loss = 0, accuracy = 0;  // mean cross-entropy; correct / samples (0..1), over the whole test set
};

// Evaluates this rank's share of the test set (dropout off), in batches of
// `batch`, and sums over ranks (a collective: every rank calls it). Every
// rank must hold the same parameters for the result to be one model's.
EvalResult evaluate(nn::Cnn& net, dist::Communicator& comm, const data::Dataset& test, int batch);

}  // namespace ddp::train
