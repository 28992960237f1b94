#include "train/resume.h"

#include <algorithm>
#include <filesystem>

#include "common/error.h"

namespace ddp::train {

namespace {

// The world size may differ: the rest of an interrupted epoch is dealt to
// the new world (data/sampler.h).
std::string checkpoint_config_mismatch(const nlohmann::json& saved, const TrainConfig& cfg, uint64_t checksum) {
  std::string diff;
  auto check = [&](const char* key, const nlohmann::json& now) {
    if (!saved.contains(key) || saved.at(key) != now)
      diff += std::string(diff.empty() ? "" : "; ") + key + " is " + (saved.contains(key) ? saved.at(key).dump() : "missing") +
              " in the checkpoint but " + now.dump() + " in this run";
  };
  check("dataset", cfg.dataset);
  check("data_checksum", std::to_string(checksum));
  check("batch_size", cfg.batch_size);
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

// The world size the checkpoint was written at.
int saved_world(const nlohmann::json& run, const std::string& path) {
  const nlohmann::json& w = run.at("config").at("world_size");
  if (!w.is_number_integer() || w.get<int>() < 1)
    throw UserError(path + ": the checkpoint's world_size is " + w.dump(),
                    "it was not written by this program's trainers; start without --resume");
  return w.get<int>();
}

}  // namespace

int64_t steps_per_epoch_of(int64_t train_samples, int world, int batch_size) {
  const int64_t shard = (train_samples + world - 1) / world;
  return (shard + batch_size - 1) / batch_size;
}

CheckpointData load_resumable_checkpoint(const TrainConfig& cfg, uint64_t checksum, int64_t train_samples,
                                         std::string& path, nlohmann::json& run) {
  path = !cfg.restart_from.empty() ? cfg.restart_from
         : cfg.resume == "auto"    ? newest_checkpoint(cfg.checkpoint_dir)
                                   : cfg.resume;
  CheckpointData ck = load_checkpoint(path);
  try {
    run = nlohmann::json::parse(ck.metadata.at("run"));
    for (const char* key : {"config", "history", "step_losses", "epoch", "step", "global_step"}) (void)run.at(key);
  } catch (const std::exception& e) {
    throw UserError(path + ": the checkpoint's metadata is incomplete (" + e.what() + ")",
                    "it was not written by this program's trainers; start without --resume");
  }
  const std::string diff = checkpoint_config_mismatch(run.at("config"), cfg, checksum);
  if (!diff.empty())
    throw UserError(path + " belongs to another configuration: " + diff,
                    "resume with the flags the checkpoint was made with, or start a new run");
  check_powersgd_resumable(cfg, run.at("global_step"), path);
  const int epoch = run.at("epoch");
  const int64_t step = run.at("step");
  const int64_t steps_per_epoch = steps_per_epoch_of(train_samples, saved_world(run, path), cfg.batch_size);
  if (step > steps_per_epoch || epoch > cfg.epochs)
    throw UserError(path + " is at epoch " + std::to_string(epoch) + ", step " + std::to_string(step) +
                        ", beyond this run's " + std::to_string(cfg.epochs) + " epochs",
                    "give --epochs at least as large as the checkpoint's epoch");
  return ck;
}

void check_resumable(const TrainConfig& cfg, const data::Dataset& train_set) {
  std::string path;
  nlohmann::json run;
  load_resumable_checkpoint(cfg, train_set.checksum, train_set.size, path, run);
}

StartPoint resume_from(const TrainConfig& cfg, dist::Communicator& comm, nn::Cnn& net, optim::Sgd& sgd,
                       uint64_t checksum, int64_t train_samples) {
  StartPoint start;
  const size_t n = nn::Cnn::num_params();
  double where[5] = {0, 0, 0, 0, 0};  // epoch, step, global step, losses recorded, the checkpoint's world
  if (comm.rank() == 0) {
    nlohmann::json run;
    CheckpointData ck = load_resumable_checkpoint(cfg, checksum, train_samples, start.path, run);
    where[4] = saved_world(run, start.path);
    try {
      for (const auto& e : run.at("history")) start.history.push_back(epoch_from_json(e));
      start.step_losses = run.at("step_losses").get<std::vector<float>>();
      start.epoch = run.at("epoch");
      start.step = run.at("step");
      start.global_step = run.at("global_step");
      start.resumed_from = cfg.restart_from.empty() ? start.path : run.value("resumed_from", std::string());
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
  comm.allreduce_sum(where, 5);  // only rank 0 contributes: a broadcast
  start.prior_world = static_cast<int>(where[4]);
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

EpochPlan epoch_plan(const StartPoint& start, int epoch, int64_t train_samples, int world, int batch_size) {
  EpochPlan p;
  p.shard = (train_samples + world - 1) / world;
  p.steps = (p.shard + batch_size - 1) / batch_size;
  if (epoch != start.epoch || start.step == 0) return p;
  p.first = start.step;
  // At most the whole epoch: a stop checkpoint of the epoch's last step
  // (written before 2026-12-01, when such a stop now ends the epoch first;
  // padded, its S x B x N may pass n) resumes with no step left, straight
  // into the epoch's evaluation.
  p.done = std::min(start.step * batch_size * start.prior_world, train_samples);
  p.shard = (train_samples - p.done + world - 1) / world;
  p.steps = p.first + (p.shard + batch_size - 1) / batch_size;
  return p;
}

std::string world_change_note(const StartPoint& start, int world, int batch_size) {
  if (start.prior_world == world || start.prior_world == 0) return "";
  const std::string was = std::to_string(start.prior_world), now = std::to_string(world);
  return "; it was written by " + was + " rank(s), this run has " + now +
         (start.step > 0 ? ": the rest of the epoch (after the first " +
                               std::to_string(start.step * batch_size * start.prior_world) +
                               " samples of its order) is dealt to the " + now + " ranks"
                         : "");
}

// Everything needed to continue exactly is in the metadata (all randomness
// is a function of seed, epoch and step, so no generator state needs saving).
void write_checkpoint(const RunResult& r, const nn::Cnn& net, optim::Sgd& sgd, const RunPosition& at,
                      const std::vector<float>& step_losses, const std::string& path) {
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
  run["resumed_from"] = r.resumed_from;
  CheckpointData ck;
  ck.params.assign(net.params(), net.params() + n);
  ck.momentum = sgd.velocity();
  ck.metadata["run"] = run.dump();
  ck.metadata["epoch"] = std::to_string(at.epoch);
  ck.metadata["step"] = std::to_string(at.step);
  ck.metadata["seed"] = std::to_string(cfg.seed);
  ck.metadata["data_checksum"] = std::to_string(r.data_checksum);
  ck.metadata["rng"] = "counter-based: every random draw is a function of (seed, epoch, global_step, rank)";
  if (!path.empty()) return save_checkpoint(path, ck);
  std::filesystem::create_directories(cfg.checkpoint_dir);
  save_checkpoint(checkpoint_path(cfg.checkpoint_dir, at.epoch, at.step), ck);
}

}  // namespace ddp::train
