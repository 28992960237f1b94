// Checks that every rank runs the same training: before it starts (data and
// flags), and after every epoch (the parameters, bit for bit). Each is a
// collective (all ranks call it) and throws UserError on every rank,
// naming the first rank that differs from rank 0.
#pragma once
#include "data/dataset.h"
#include "dist/communicator.h"
#include "nn/cnn.h"
#include "train/config.h"

namespace ddp::train {

// Same data sets (checksums) and the same flags that shape training.
void check_same_run(dist::Communicator& comm, const TrainConfig& cfg, const data::Dataset& train_set,
                    const data::Dataset& test_set);

// Every rank applied the same updates: the parameters after 0-based
// `epoch` must be bit-identical (a mismatch is a bug or faulty hardware).
void check_same_parameters(dist::Communicator& comm, const nn::Cnn& net, int epoch);

}  // namespace ddp::train
