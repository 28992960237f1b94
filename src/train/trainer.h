// The one training loop. Serial training is this loop with a world of one
// (a LocalCommunicator); data-parallel training is the same loop on every
// rank with a real communicator. One step is train/step.h; checkpoints and
// resuming are train/resume.h (check_resumable); what each epoch measures
// on each rank is train/epoch_stats.h.
#pragma once
#include "data/dataset.h"
#include "dist/communicator.h"
#include "train/config.h"
#include "train/results.h"
#include "train/resume.h"

namespace ddp::train {

// Trains, evaluates after every epoch, and returns the measurements (on
// every rank; the per-rank parts are gathered on all ranks). Throws
// UserError on a dead peer, a timeout, or ranks that disagree.
RunResult train(const TrainConfig& cfg, dist::Communicator& comm, const data::Dataset& train_set,
                const data::Dataset& test_set);

// Loads the datasets named by the config (with --limit applied).
struct Datasets {
  data::Dataset train, test;
};
Datasets load_datasets(const TrainConfig& cfg);

}  // namespace ddp::train
