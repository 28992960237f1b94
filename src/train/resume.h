// Checkpoints of a training run: where one is written during train(), and
// how a run continues from one (train/checkpoint.h is the file format).
// All randomness is a function of (seed, epoch, step, rank), so parameters,
// momentum and the position are the whole state: a resumed run replays the
// rest of the original bit for bit.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "dist/communicator.h"
#include "nn/cnn.h"
#include "optim/sgd.h"
#include "train/checkpoint.h"
#include "train/config.h"
#include "train/results.h"

namespace ddp::train {

// Checks, before any rank starts, that cfg.resume names a checkpoint this
// run can continue (same model, data, batch size, seed, ...; the world size
// may differ). Throws UserError saying what differs.
void check_resumable(const TrainConfig& cfg, const data::Dataset& train_set);

// Steps of an epoch of `train_samples` at `world` ranks of `batch_size`
// (DistributedSampler's padded shards, the last batch partial).
int64_t steps_per_epoch_of(int64_t train_samples, int world, int batch_size);

// Loads the checkpoint cfg.restart_from names, else cfg.resume's ("auto":
// the newest in cfg.checkpoint_dir), into path, its run metadata into run, and checks it
// fits this run as check_resumable says.
CheckpointData load_resumable_checkpoint(const TrainConfig& cfg, uint64_t checksum, int64_t train_samples,
                                         std::string& path, nlohmann::json& run);

// Where a run starts: from scratch, or where a checkpoint left off.
struct StartPoint {
  int epoch = 0;              // 0-based epoch to continue
  int64_t step = 0;           // steps of that epoch already done
  int64_t global_step = 0;
  int prior_world = 0;        // the world size the checkpoint was written at (0: from scratch)
  std::vector<EpochRecord> history;  // finished epochs (rank 0's)
  std::vector<float> step_losses;    // every step so far, mean over ranks (every rank's)
  std::string path;                  // the checkpoint (rank 0's; empty: from scratch)
  std::string resumed_from;          // what the results call the run's start: path, or for a restart
                                     // the snapshot's own resumed_from (rank 0's)
};

// Rank 0 reads the checkpoint into net and sgd and every rank receives its
// state (a collective: all ranks call it).
StartPoint resume_from(const TrainConfig& cfg, dist::Communicator& comm, nn::Cnn& net, optim::Sgd& sgd,
                       uint64_t checksum, int64_t train_samples);

// One epoch's steps on one rank. Its samples are the epoch's permutation
// from position `done` on, dealt to this world (data::shard_indices): the
// epoch a run resumes in continues where the checkpoint's world left it
// (after S steps of batch B at N ranks, done = S x B x N), every other
// epoch is whole.
struct EpochPlan {
  int64_t first = 0;  // the first step to train (> 0 in a resumed epoch)
  int64_t steps = 0;  // steps in the epoch: first + this world's share of the rest
  int64_t done = 0;   // positions of the permutation trained before step `first`
  int64_t shard = 0;  // this rank's samples from `done` on
};
EpochPlan epoch_plan(const StartPoint& start, int epoch, int64_t train_samples, int world, int batch_size);

// How a resumed run's world differs from its checkpoint's, as a clause for
// the resume message ("" when it does not).
std::string world_change_note(const StartPoint& start, int world, int batch_size);

// Where a checkpoint is taken: `step` steps into 0-based `epoch` (step 0 of
// epoch E+1 after epoch E ended).
struct RunPosition {
  int epoch = 0;
  int64_t step = 0;
  int64_t global_step = 0;
};

// Writes a checkpoint into r.config.checkpoint_dir, or to `path` when given
// (rank 0 only): net's parameters, sgd's momentum, and in the metadata the
// run's config, r.epochs, r.resumed_from and step_losses (every step so far,
// mean over ranks).
void write_checkpoint(const RunResult& r, const nn::Cnn& net, optim::Sgd& sgd, const RunPosition& at,
                      const std::vector<float>& step_losses, const std::string& path = "");

}  // namespace ddp::train
