#include "train/resume.h"

#include <filesystem>

#include "common/error.h"

namespace ddp::train {

namespace {

std::string checkpoint_config_mismatch(const nlohmann::json& saved, const TrainConfig& cfg, int world,
                                       uint64_t checksum) {
  std::string diff;
  auto check = [&](const char* key, const nlohmann::json& now) {
    if (!saved.contains(key) || saved.at(key) != now)
      diff += std::string(diff.empty() ? "" : "; ") + key + " is " + (saved.contains(key) ? saved.at(key).dump() : "missing") +
              " in the checkpoint but " + now.dump() + " in this run";
  };
  check("dataset", cfg.dataset);
  check("data_checksum", std::to_string(checksum));
  check("batch_size", cfg.batch_size);
  check("world_size", world);
  check("seed", cfg.seed);
  check("dropout", cfg.dropout);
  check("learning_rate", cfg.learning_rate);
  check("momentum", cfg.momentum);
  check("lr_scaling", to_string(cfg.lr_scaling));
  check("warmup_epochs", cfg.warmup_epochs);
  // Not the precision: parameters and momentum are f32 in both, so a
  // checkpoint resumes in either.
  // Recorded only where set (results::RunConfig): a checkpoint without them ran without.
  const auto check_or = [&](const char* key, const nlohmann::json& now, const nlohmann::json& unset) {
    const nlohmann::json was = saved.contains(key) ? saved.at(key) : unset;
    if (was != now)
      diff += std::string(diff.empty() ? "" : "; ") + key + " is " + was.dump() + " in the checkpoint but " +
              now.dump() + " in this run";
  };
  check_or("accumulate", cfg.accumulate, 1);
  check_or("sync_every", cfg.sync_every, 1);
  check_or("local_sgd_warmup_steps", cfg.local_sgd_warmup_steps, 0);
  check_or("stale_gradients", cfg.stale_gradients, 0);
  return diff;
}

// PowerSGD's state is not in checkpoints: its residuals differ on every rank
// (a checkpoint is one file, written by rank 0) and Q is only worth keeping
// with them. A checkpoint from before the first compressed step needs none.
void check_powersgd_resumable(const TrainConfig& cfg, int64_t global_step, const std::string& path) {
  if (cfg.grad_compression != dist::Compression::powersgd) return;
  const int64_t start = powersgd_options(cfg).start_step;
  if (global_step <= start) return;
  const std::string g = std::to_string(global_step);
  throw UserError(path + " was written after " + g + " steps, " + std::to_string(global_step - start) +
                      " of them compressed by PowerSGD (which starts at step " + std::to_string(start) +
                      "); its error-feedback residuals (different on every rank) and Q are not saved in "
                      "checkpoints, so the run cannot continue as it would have",
                  "resume with --powersgd-start-step " + g +
                      " (PowerSGD starts afresh: zero residuals, new Q), or with --grad-compression none, or start "
                      "a new run");
}

}  // namespace

CheckpointData load_resumable_checkpoint(const TrainConfig& cfg, int world, uint64_t checksum,
                                         int64_t steps_per_epoch, std::string& path, nlohmann::json& run) {
  path = cfg.resume == "auto" ? newest_checkpoint(cfg.checkpoint_dir) : cfg.resume;
  CheckpointData ck = load_checkpoint(path);
  try {
    run = nlohmann::json::parse(ck.metadata.at("run"));
    for (const char* key : {"config", "history", "step_losses", "epoch", "step", "global_step"}) (void)run.at(key);
  } catch (const std::exception& e) {
    throw UserError(path + ": the checkpoint's metadata is incomplete (" + e.what() + ")",
                    "it was not written by this program's trainers; start without --resume");
  }
  const std::string diff = checkpoint_config_mismatch(run.at("config"), cfg, world, checksum);
  if (!diff.empty())
    throw UserError(path + " belongs to another configuration: " + diff,
                    "resume with the flags the checkpoint was made with, or start a new run");
  check_powersgd_resumable(cfg, run.at("global_step"), path);
  const int epoch = run.at("epoch");
  const int64_t step = run.at("step");
  if (step > steps_per_epoch || epoch > cfg.epochs)
    throw UserError(path + " is at epoch " + std::to_string(epoch) + ", step " + std::to_string(step) +
                        ", beyond this run's " + std::to_string(cfg.epochs) + " epochs",
                    "give --epochs at least as large as the checkpoint's epoch");
  return ck;
}

void check_resumable(const TrainConfig& cfg, int world, const data::Dataset& train_set) {
  const int64_t shard = (train_set.size + world - 1) / world;
  std::string path;
  nlohmann::json run;
  load_resumable_checkpoint(cfg, world, train_set.checksum, (shard + cfg.batch_size - 1) / cfg.batch_size, path, run);
}

StartPoint resume_from(const TrainConfig& cfg, dist::Communicator& comm, nn::Cnn& net, optim::Sgd& sgd,
                       uint64_t checksum, int64_t steps_per_epoch) {
  StartPoint start;
  const size_t n = nn::Cnn::num_params();
  double where[4] = {0, 0, 0, 0};  // epoch, step, global step, losses recorded
  if (comm.rank() == 0) {
    nlohmann::json run;
    CheckpointData ck = load_resumable_checkpoint(cfg, comm.size(), checksum, steps_per_epoch, start.path, run);
    try {
      for (const auto& e : run.at("history")) start.history.push_back(epoch_from_json(e));
      start.step_losses = run.at("step_losses").get<std::vector<float>>();
      start.epoch = run.at("epoch");
      start.step = run.at("step");
      start.global_step = run.at("global_step");
    } catch (const std::exception& e) {
      throw UserError(start.path + ": the checkpoint's metadata is damaged (" + e.what() + ")",
                      "resume from an older checkpoint, or start without --resume");
    }
    std::copy(ck.params.begin(), ck.params.end(), net.params());
    std::copy(ck.momentum.begin(), ck.momentum.end(), sgd.velocity().begin());
    where[0] = start.epoch;
    where[1] = static_cast<double>(start.step);
    where[2] = static_cast<double>(start.global_step);
    where[3] = static_cast<double>(start.step_losses.size());
  }
  comm.allreduce_sum(where, 4);  // only rank 0 contributes: a broadcast
  start.epoch = static_cast<int>(where[0]);
  start.step = static_cast<int64_t>(where[1]);
  start.global_step = static_cast<int64_t>(where[2]);
  comm.broadcast(net.params(), n, 0);
  comm.broadcast(sgd.velocity().data(), n, 0);
  // Every rank holds the loss history (the bits themselves, never a value
  // recomputed from them), so every rank records the same.
  start.step_losses.resize(static_cast<size_t>(where[3]));
  comm.broadcast(start.step_losses.data(), start.step_losses.size(), 0);
  return start;
}

// Everything needed to continue exactly is in the metadata (all randomness
// is a function of seed, epoch and step, so no generator state needs saving).
void write_checkpoint(const RunResult& r, const nn::Cnn& net, optim::Sgd& sgd, const RunPosition& at,
                      const std::vector<float>& step_losses) {
  const results::RunConfig& cfg = r.config;
  const size_t n = nn::Cnn::num_params();
  nlohmann::json run;
  run["config"] = results::to_json(r.config);
  run["config"]["world_size"] = r.world_size;
  run["config"]["data_checksum"] = std::to_string(r.data_checksum);
  run["epoch"] = at.epoch;
  run["step"] = at.step;
  run["global_step"] = at.global_step;
  run["history"] = nlohmann::json::array();
  for (const auto& e : r.epochs) run["history"].push_back(to_json(e));
  run["step_losses"] = step_losses;
  CheckpointData ck;
  ck.params.assign(net.params(), net.params() + n);
  ck.momentum = sgd.velocity();
  ck.metadata["run"] = run.dump();
  ck.metadata["epoch"] = std::to_string(at.epoch);
  ck.metadata["step"] = std::to_string(at.step);
  ck.metadata["seed"] = std::to_string(cfg.seed);
  ck.metadata["data_checksum"] = std::to_string(r.data_checksum);
  ck.metadata["rng"] = "counter-based: every random draw is a function of (seed, epoch, global_step, rank)";
  std::filesystem::create_directories(cfg.checkpoint_dir);
  save_checkpoint(checkpoint_path(cfg.checkpoint_dir, at.epoch, at.step), ck);
}

}  // namespace ddp::train
