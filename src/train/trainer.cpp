#include "train/trainer.h"

#include <algorithm>
#include <limits>
#include <csignal>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "common/error.h"
#include "common/hash.h"
#include "common/rng.h"
#include "data/sampler.h"
#include "dist/comm_priority.h"
#include "dist/grad_sync.h"
#include "nn/cnn.h"
#include "optim/sgd.h"
#include "report/machine.h"
#include "train/checkpoint.h"
#include "train/progress.h"
#include "train/stop.h"

namespace ddp::train {

namespace {

using Clock = std::chrono::steady_clock;
const Clock::time_point kProcessStart = Clock::now();  // set before main() runs

double seconds(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }

// Every rank fills its own row; the sum over ranks gives every rank every row.
std::vector<double> gather_rows(dist::Communicator& comm, const double* row, size_t width) {
  std::vector<double> all(width * comm.size(), 0.0);
  std::copy(row, row + width, all.begin() + static_cast<long>(comm.rank() * width));
  comm.allreduce_sum(all.data(), all.size());
  return all;
}

void check_ranks_agree(dist::Communicator& comm, uint64_t value, const std::string& what, const std::string& hint) {
  // Two 32-bit halves: exact in a double.
  const double row[2] = {static_cast<double>(value >> 32), static_cast<double>(value & 0xffffffffu)};
  const auto all = gather_rows(comm, row, 2);
  for (int r = 1; r < comm.size(); ++r) {
    if (all[2 * r] != all[0] || all[2 * r + 1] != all[1])
      throw UserError(what + " differ between rank 0 and rank " + std::to_string(r), hint);
  }
}

uint64_t config_fingerprint(const TrainConfig& c) {
  const std::string s = std::to_string(c.epochs) + "|" + std::to_string(c.batch_size) + "|" +
                        std::to_string(c.learning_rate) + "|" + std::to_string(c.seed) + "|" +
                        std::to_string(c.dropout) + "|" + c.lr_scaling + "|" + std::to_string(c.warmup_epochs) +
                        "|" + std::to_string(nn::Cnn::num_params()) + "|" + nn::to_string(c.precision);
  return fnv1a(s.data(), s.size());
}

struct EvalResult {
  double loss = 0, accuracy = 0;
};

// Evaluates this rank's share of the test set (dropout off) and sums over ranks.
EvalResult evaluate(nn::Cnn& net, dist::Communicator& comm, const data::Dataset& test, int batch) {
  const auto idx = data::eval_indices(test.size, comm.rank(), comm.size());
  double sums[3] = {0, 0, 0};  // loss * n, correct, n
  for (size_t s = 0; s < idx.size(); s += static_cast<size_t>(batch)) {
    const int n = static_cast<int>(std::min<size_t>(batch, idx.size() - s));
    float* x = net.input(n);
    int32_t* y = net.labels(n);
    for (int j = 0; j < n; ++j) {
      test.copy_image(idx[s + j], x + static_cast<size_t>(j) * data::kPixels);
      y[j] = test.labels[idx[s + j]];
    }
    const auto r = net.forward(n, false);
    sums[0] += r.loss * n;
    sums[1] += r.correct;
    sums[2] += n;
  }
  comm.allreduce_sum(sums, 3);
  return {sums[0] / sums[2], sums[1] / sums[2]};
}


// Where a run starts: from scratch, or where a checkpoint left off.
struct StartPoint {
  int epoch = 0;              // 0-based epoch to continue
  int64_t step = 0;           // steps of that epoch already done
  int64_t global_step = 0;
  std::vector<EpochRecord> history;     // finished epochs
  std::vector<float> step_losses;       // every step so far (mean over ranks)
  std::string path;
};

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
  check("lr_scaling", cfg.lr_scaling);
  check("warmup_epochs", cfg.warmup_epochs);
  // Not the precision: parameters and momentum are f32 in both, so a
  // checkpoint resumes in either.
  return diff;
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

namespace {

// Rank 0 reads the checkpoint and every rank receives its state.
StartPoint resume_from(const TrainConfig& cfg, dist::Communicator& comm, nn::Cnn& net, optim::Sgd& sgd,
                       uint64_t checksum, int64_t steps_per_epoch) {
  StartPoint start;
  const size_t n = nn::Cnn::num_params();
  double where[3] = {0, 0, 0};  // epoch, step, global step
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
  }
  comm.allreduce_sum(where, 3);  // only rank 0 contributes: a broadcast
  start.epoch = static_cast<int>(where[0]);
  start.step = static_cast<int64_t>(where[1]);
  start.global_step = static_cast<int64_t>(where[2]);
  comm.broadcast(net.params(), n, 0);
  comm.broadcast(sgd.velocity().data(), n, 0);
  return start;
}

// Rank 0 writes where the run is: parameters, momentum, and in the metadata
// everything needed to continue exactly (all randomness is a function of
// seed, epoch and step, so no generator state needs saving).
void write_checkpoint(const TrainConfig& cfg, int world, uint64_t checksum, const nn::Cnn& net,
                      optim::Sgd& sgd, int epoch, int64_t step, int64_t global_step,
                      const std::vector<EpochRecord>& history, const std::vector<float>& step_losses) {
  const size_t n = nn::Cnn::num_params();
  nlohmann::json run;
  run["config"] = config_json(cfg);
  run["config"]["world_size"] = world;
  run["config"]["data_checksum"] = std::to_string(checksum);
  run["epoch"] = epoch;
  run["step"] = step;
  run["global_step"] = global_step;
  run["history"] = nlohmann::json::array();
  for (const auto& e : history) run["history"].push_back(to_json(e));
  run["step_losses"] = step_losses;
  CheckpointData ck;
  ck.params.assign(net.params(), net.params() + n);
  ck.momentum = sgd.velocity();
  ck.metadata["run"] = run.dump();
  ck.metadata["epoch"] = std::to_string(epoch);
  ck.metadata["step"] = std::to_string(step);
  ck.metadata["seed"] = std::to_string(cfg.seed);
  ck.metadata["data_checksum"] = std::to_string(checksum);
  ck.metadata["rng"] = "counter-based: every random draw is a function of (seed, epoch, global_step, rank)";
  std::filesystem::create_directories(cfg.checkpoint_dir);
  save_checkpoint(checkpoint_path(cfg.checkpoint_dir, epoch, step), ck);
}

}  // namespace

Datasets load_datasets(const TrainConfig& cfg) {
  const std::string dir = cfg.data_dir.empty() ? data::default_data_dir(cfg.dataset) : cfg.data_dir;
  Datasets d{data::load_dataset(cfg.dataset, dir, data::Split::train),
             data::load_dataset(cfg.dataset, dir, data::Split::test)};
  if (cfg.limit > 0) data::truncate(d.train, cfg.limit);
  return d;
}

RunResult train(const TrainConfig& cfg, dist::Communicator& comm, const data::Dataset& train_set,
                const data::Dataset& test_set) {
  const int world = comm.size(), rank = comm.rank();
  const int batch = cfg.batch_size;
  nn::set_compute_threads(cfg.threads);
  install_stop_handlers();

  // 1. Every rank checks it trains the same thing on the same data.
  check_ranks_agree(comm, train_set.checksum * 31 + test_set.checksum, "the data sets",
                    "give every rank the same --dataset, --data-dir and --limit, with identical files");
  check_ranks_agree(comm, config_fingerprint(cfg), "the training configurations",
                    "start every rank with the same flags");

  // 2. The model, identical everywhere: rank 0's initial parameters (or its
  //    checkpoint) are broadcast. One extra gradient slot carries the stop
  //    flag with the first bucket's all-reduce, so all ranks stop together.
  const size_t num_params = nn::Cnn::num_params();
  const std::string precision_note = nn::check_precision_supported(cfg.precision);
  nn::Cnn net(cfg.dropout, 1, cfg.precision);
  float& stop_flag = net.grads()[num_params];
  net.init(cfg.seed);
  optim::Sgd sgd(num_params, static_cast<float>(cfg.momentum));
  const int64_t shard = (train_set.size + world - 1) / world;
  const int64_t steps = (shard + batch - 1) / batch;
  StartPoint start;
  if (!cfg.resume.empty()) start = resume_from(cfg, comm, net, sgd, train_set.checksum, steps);
  else comm.broadcast(net.params(), num_params, 0);
  // Buckets of whole layers, from the last: a layer's gradients go out as
  // soon as backward has them (the stop flag rides with the first bucket).
  std::vector<size_t> segments;
  for (const auto& spec : nn::Cnn::param_specs())
    if (spec.name.ends_with(".weight")) segments.push_back(spec.offset);
  segments.push_back(num_params);
  const int busy_threads = dist::ranks_on_this_machine(world) * cfg.threads, cores = report::online_cores();
  const bool oversubscribed = busy_threads > cores;
  dist::GradSync sync(comm, net.grads(), num_params + 1, cfg.bucket_kb * 1024, segments,
                      dist::parse_compression(cfg.grad_compression),
                      dist::choose_overlap(cfg.overlap, comm.backend(), busy_threads, cores));
  // Gloo: its event loop and our thread (Gloo's threads block while idle).
  // MPI: our thread only (OpenMPI's own threads poll), if there is one, and
  // only with a core per rank: it polls while it waits for a peer, which
  // must not then be starved on a shared core.
  const std::string comm_priority =
      world == 1                              ? "none: a world of one"
      : comm.backend() == "gloo"              ? dist::prioritise_communication()
      : oversubscribed                        ? "none: mpi and oversubscribed"
      : sync.overlap() == dist::Overlap::none ? "none: no communication thread"
                                              : dist::prioritise_threads({sync.thread_id()});

  RunResult r;
  r.config = cfg;
  r.world_size = world;
  r.threads_per_process = cfg.threads;
  r.oversubscribed = oversubscribed;
  r.train_samples = train_set.size;
  r.test_samples = test_set.size;
  r.steps_per_epoch = steps;
  r.samples_per_epoch = shard * world;
  r.num_params = num_params;
  r.bucket_bytes = cfg.bucket_kb * 1024;
  r.num_buckets = sync.num_buckets();
  r.data_checksum = train_set.checksum;
  r.per_rank.assign(world, {});
  r.epochs = start.history;
  r.resumed_from = start.path;
  r.comm_priority = comm_priority;
  r.overlap = dist::overlap_name(sync.overlap());
  r.step_losses.assign(start.step_losses.begin(),
                       start.step_losses.begin() + static_cast<long>(start.history.size() * steps));

  Progress progress(rank == 0, cfg.progress, cfg.epochs, world);
  if (comm_priority == "nice")
    progress.message("note: no permission for real-time priority, so the communication threads are favoured by "
                     "running compute at nice +10: expect about 8% less throughput at 2 ranks (root, CAP_SYS_NICE "
                     "or `ulimit -r 1` lifts it)");
  if (!precision_note.empty()) progress.message(precision_note);
  if (!start.path.empty())
    progress.message("resuming from " + start.path + " at epoch " + std::to_string(start.epoch + 1) + ", step " +
                     std::to_string(start.step));
  std::vector<double> step_loss(steps, 0.0);
  std::vector<double> step_time;  // this epoch's steps, seconds
  step_time.reserve(static_cast<size_t>(steps));
  int64_t global_step = start.global_step;
  const auto run_start = Clock::now();
  r.startup_s = seconds(kProcessStart, run_start);
  double resumed_time = 0;
  for (const auto& e : r.epochs) resumed_time += e.time_s;

  for (int epoch = start.epoch; epoch < cfg.epochs; ++epoch) {
    const auto idx = data::shard_indices(train_set.size, cfg.seed, epoch, rank, world);
    const int64_t first = epoch == start.epoch ? start.step : 0;
    std::fill(step_loss.begin(), step_loss.end(), 0.0);
    // The resumed epoch's earlier losses are known to rank 0 only; the mean
    // over ranks below then gives them back unchanged.
    if (rank == 0)
      for (int64_t s = 0; s < first; ++s) step_loss[s] = start.step_losses[start.history.size() * steps + s] * world;
    progress.start_epoch(epoch, steps);
    PhaseTimes ph;
    double comm_busy = 0, comm_cpu = 0, running = 0, lr = cfg.learning_rate;
    const double preempted_before = dist::runnable_wait_seconds();
    bool stopping = false;
    step_time.clear();
    int64_t s = first;
    const auto epoch_start = Clock::now();
    for (; s < steps && !stopping; ++s, ++global_step) {
      const auto t0 = Clock::now();
      const int n = static_cast<int>(std::min<int64_t>(batch, shard - s * batch));
      float* x = net.input(n);
      int32_t* y = net.labels(n);
      for (int j = 0; j < n; ++j) {
        const int64_t i = idx[s * batch + j];
        train_set.copy_image(i, x + static_cast<size_t>(j) * data::kPixels);
        y[j] = train_set.labels[i];
      }
      const auto t1 = Clock::now();
      const auto res = net.forward(n, true, mix_seed(mix_seed(cfg.seed, global_step), 0x5eed0000u + rank));
      const auto t2 = Clock::now();
      stop_flag = stop_signal() != 0 ? 1.f : 0.f;
      sync.ready(num_params, 1);
      net.backward([&](size_t offset, size_t count) { sync.ready(offset, count); });
      const auto t3 = Clock::now();
      // Each bucket's optimizer step runs as soon as its all-reduce is done
      // (grads = sum over ranks; the step takes the average), overlapping
      // the all-reduce of the first layers, which backward finished last.
      lr = learning_rate_at(cfg, world, global_step, steps);
      const double waited = sync.finish([&](size_t lo, size_t hi) {
        sgd.step(net.params(), net.grads(), static_cast<float>(lr), sync.average_scale(), lo,
                 std::min(hi, num_params));  // the stop flag's slot is not a parameter
      });
      stopping = stop_flag > 0 || (world == 1 && stop_signal() != 0);
      const auto t5 = Clock::now();
      ph.data += seconds(t0, t1);
      ph.forward += seconds(t1, t2);
      ph.backward += seconds(t2, t3);
      ph.allreduce_wait += waited;
      ph.optimizer += seconds(t3, t5) - waited;
      step_time.push_back(seconds(t0, t5));
      comm_busy += sync.last_step_comm_seconds();
      comm_cpu += sync.last_step_comm_cpu_seconds();
      step_loss[s] = res.loss;
      running += res.loss;
      progress.step(s + 1, running / static_cast<double>(s + 1 - first), (s + 1 - first) * batch * world);
    }
    const double train_time = seconds(epoch_start, Clock::now());
    const double preempted_after = dist::runnable_wait_seconds();
    const double preempted = preempted_before >= 0 && preempted_after >= 0
                                 ? preempted_after - preempted_before
                                 : std::numeric_limits<double>::quiet_NaN();
    ph.other = std::max(0.0, train_time - (ph.data + ph.forward + ph.backward + ph.allreduce_wait + ph.optimizer));

    // Gather: the loss curve (mean over ranks), every rank's time split.
    comm.allreduce_sum(step_loss.data(), step_loss.size());
    for (double& l : step_loss) l /= world;

    if (stopping) {
      // Every rank saw the flag in the same step and is here, at step s.
      std::vector<float> losses(r.step_losses);
      losses.insert(losses.end(), step_loss.begin(), step_loss.begin() + s);
      const bool save = !cfg.checkpoint_dir.empty();
      if (save && rank == 0)
        write_checkpoint(cfg, world, train_set.checksum, net, sgd, epoch, s, global_step, r.epochs, losses);
      comm.barrier();
      progress.clear_bar();
      throw Stopped{stop_signal() ? stop_signal() : SIGINT, epoch + 1, s, save};
    }

    double median_step = std::numeric_limits<double>::quiet_NaN();
    if (!step_time.empty()) {
      auto mid = step_time.begin() + static_cast<long>(step_time.size() / 2);
      std::nth_element(step_time.begin(), mid, step_time.end());
      median_step = *mid;
    }
    constexpr int w = PhaseTimes::kFields + 5;
    double row[w];
    std::copy(ph.begin(), ph.begin() + PhaseTimes::kFields, row);
    row[PhaseTimes::kFields] = train_time;
    row[PhaseTimes::kFields + 1] = comm_busy;
    row[PhaseTimes::kFields + 2] = comm_cpu;
    row[PhaseTimes::kFields + 3] = preempted;
    row[PhaseTimes::kFields + 4] = median_step;
    const auto rows = gather_rows(comm, row, w);

    const auto eval_start = Clock::now();
    const EvalResult ev = evaluate(net, comm, test_set, batch);
    const double eval_time = seconds(eval_start, Clock::now());

    // Every rank applied the same updates: the parameters must be bit-identical.
    check_ranks_agree(comm, fnv1a(net.params(), num_params * sizeof(float)),
                      "the parameters after epoch " + std::to_string(epoch + 1),
                      "the ranks diverged: this is a bug (or faulty hardware); please report it");

    EpochRecord e;
    e.epoch = epoch + 1;
    e.loss = std::accumulate(step_loss.begin(), step_loss.end(), 0.0) / static_cast<double>(steps);
    e.test_loss = ev.loss;
    e.test_accuracy = ev.accuracy;
    e.learning_rate = lr;
    for (int q = 0; q < world; ++q) {
      PhaseTimes p;
      std::copy(rows.begin() + q * w, rows.begin() + q * w + PhaseTimes::kFields, p.begin());
      r.per_rank[q].push_back(p);
      for (int f = 0; f < PhaseTimes::kFields; ++f) e.phases.begin()[f] += p.begin()[f] / world;
      e.train_time_s = std::max(e.train_time_s, rows[q * w + PhaseTimes::kFields]);
      e.allreduce_busy_s += rows[q * w + PhaseTimes::kFields + 1] / world;
      e.comm_cpu_s += rows[q * w + PhaseTimes::kFields + 2] / world;
      e.compute_preempted_s += rows[q * w + PhaseTimes::kFields + 3] / world;  // NaN if a rank cannot tell
      e.median_step_s += rows[q * w + PhaseTimes::kFields + 4] / world;
    }
    e.eval_time_s = eval_time;
    e.time_s = e.train_time_s + eval_time;
    e.samples_per_s = static_cast<double>(r.samples_per_epoch) * static_cast<double>(steps - first) /
                      static_cast<double>(steps) / e.train_time_s;
    r.epochs.push_back(e);
    r.step_losses.insert(r.step_losses.end(), step_loss.begin(), step_loss.end());
    progress.end_epoch(e.loss, e.test_accuracy, e.time_s, e.samples_per_s);

    const bool last = epoch + 1 == cfg.epochs;
    if (!cfg.checkpoint_dir.empty() && rank == 0 && ((epoch + 1) % cfg.checkpoint_every == 0 || last))
      write_checkpoint(cfg, world, train_set.checksum, net, sgd, epoch + 1, 0, global_step, r.epochs,
                       r.step_losses);
  }

  r.total_time_s = resumed_time + seconds(run_start, Clock::now());
  for (const auto& e : r.epochs) r.train_time_s += e.train_time_s;
  r.final_test_accuracy = r.epochs.empty() ? 0 : r.epochs.back().test_accuracy;
  r.throughput = static_cast<double>(r.samples_per_epoch) * static_cast<double>(r.epochs.size()) / r.train_time_s;
  const auto& lt = net.times();
  r.layer_forward_s.assign(lt.forward_s.begin(), lt.forward_s.end());
  r.layer_backward_s.assign(lt.backward_s.begin(), lt.backward_s.end());
  r.onednn_isa = nn::cpu_bf16().isa;
  r.onednn_implementations = net.implementations(static_cast<int>(std::min<int64_t>(batch, shard)));
  return r;
}

}  // namespace ddp::train
