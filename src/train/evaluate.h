// Evaluation on the test set, shared by the ranks: each evaluates its share
// (data::eval_indices, no padding, dropout off) and the sums are all-reduced.
#pragma once
#include "data/dataset.h"
#include "dist/communicator.h"
#include "nn/cnn.h"

namespace ddp::train {

struct EvalResult {
  double loss = 0, accuracy = 0;  // mean loss and accuracy (0..1) over the whole test set
};

// A collective: every rank calls it with the same batch size.
EvalResult evaluate(nn::Cnn& net, dist::Communicator& comm, const data::Dataset& test, int batch);

}  // namespace ddp::train
