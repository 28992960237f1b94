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
  return diff;
}

}  // namespace

CheckpointData load_resumable_checkpoint(const TrainConfig& cfg, int world, uint64_t checksum,
                                         int64_t steps_per_epoch, std::string& path, nlohmann::json& run) {
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
  const std::string diff = checkpoint_config_mismatch(run.at("config"), cfg, world, checksum);
  if (!diff.empty())
    throw UserError(path + " belongs to another configuration: " + diff,
                    "resume with the flags the checkpoint was made with, or start a new run");
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
