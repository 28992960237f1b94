// What every rank of train_parallel does once its communicator is up, and
// what a launcher checks once before it starts any rank.
#pragma once
#include <string>

#include "dist/communicator.h"
#include "train/config.h"
#include "train/trainer.h"

namespace ddp::launch {

// The parts of a run that every launcher checks once, before any rank
// starts: the flags' cross-rules, that --save-results and --trace are
// writable, that the data loads, that --resume names a checkpoint this run
// can continue and that --trace-steps lies within the run.
// reads_checkpoint: false on a node rank 0 is not on (only rank 0 reads
// --resume's checkpoint, and only its machine need hold it).
// Throws UserError.
void check_before_launch(const train::TrainConfig& cfg, bool reads_checkpoint = true);

// The same checks, made by the ranks themselves once their communicator is
// up, however they were started (our launcher, mpirun, srun, a torchrun-style
// launcher, --rendezvous): every rank checks the flags' cross-rules, rank 0
// the results path and the checkpoint, and all ranks learn the outcome (a
// collective). Throws UserError on every rank before any step: the failing
// rank's own, or one naming the rank that refused.
void check_before_training(const train::TrainConfig& cfg, const train::Datasets& data, dist::Communicator& comm);

// Runs check_before_training, then trains on the established communicator;
// rank 0 prints the summary and writes --save-results. binding: how this rank was bound to cores, for the
// results. Returns the exit status (128 + signal on a rank other than 0
// that stopped on a signal; rank 0 rethrows train::Stopped).
int train_and_report(const train::TrainConfig& cfg, const train::Datasets& data, dist::Communicator& comm,
                     const std::string& binding);

// How a rank's messages begin: "train_parallel [rank 3]" ("[rank ?]" for
// an empty `rank`: not known yet).
std::string rank_label(const std::string& rank);

}  // namespace ddp::launch
