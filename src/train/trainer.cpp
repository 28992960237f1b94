#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <numeric>

#include "common/error.h"
#include "common/rng.h"
#include "data/sampler.h"
#include "dist/grad_sync.h"
#include "nn/cnn.h"
#include "optim/sgd.h"
#include "report/machine.h"
#include "train/progress.h"

namespace ddp::train {

namespace {

using Clock = std::chrono::steady_clock;
const Clock::time_point kProcessStart = Clock::now();  // set before main() runs

double seconds(Clock::time_point from, Clock::time_point to) { return std::chrono::duration<double>(to - from).count(); }

uint64_t fnv1a(const void* data, size_t bytes, uint64_t h = 1469598103934665603ull) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < bytes; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

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
                        "|" + std::to_string(nn::Cnn::num_params());
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
      std::memcpy(x + static_cast<size_t>(j) * data::kPixels, test.image(idx[s + j]), sizeof(float) * data::kPixels);
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

  // 1. Every rank checks it trains the same thing on the same data.
  check_ranks_agree(comm, train_set.checksum * 31 + test_set.checksum, "the data sets",
                    "give every rank the same --dataset, --data-dir and --limit, with identical files");
  check_ranks_agree(comm, config_fingerprint(cfg), "the training configurations",
                    "start every rank with the same flags");

  // 2. The model, identical everywhere: rank 0's initial parameters are broadcast.
  nn::Cnn net(cfg.dropout);
  net.init(cfg.seed);
  const size_t num_params = nn::Cnn::num_params();
  comm.broadcast(net.params(), num_params, 0);
  optim::Sgd sgd(num_params, static_cast<float>(cfg.momentum));
  dist::GradSync sync(comm, net.grads(), num_params, cfg.bucket_kb * 1024);

  const int64_t shard = (train_set.size + world - 1) / world;
  const int64_t steps = (shard + batch - 1) / batch;

  RunResult r;
  r.config = cfg;
  r.world_size = world;
  r.threads_per_process = cfg.threads;
  r.oversubscribed = world * cfg.threads > report::online_cores();
  r.train_samples = train_set.size;
  r.test_samples = test_set.size;
  r.steps_per_epoch = steps;
  r.samples_per_epoch = shard * world;
  r.num_params = num_params;
  r.bucket_bytes = cfg.bucket_kb * 1024;
  r.num_buckets = sync.num_buckets();
  r.data_checksum = train_set.checksum;
  r.per_rank.assign(world, {});

  Progress progress(cfg.progress && rank == 0, cfg.epochs, world);
  std::vector<double> step_loss(steps);
  int64_t global_step = 0;
  const auto run_start = Clock::now();
  r.startup_s = seconds(kProcessStart, run_start);

  for (int epoch = 0; epoch < cfg.epochs; ++epoch) {
    const auto idx = data::shard_indices(train_set.size, cfg.seed, epoch, rank, world);
    progress.start_epoch(epoch, steps);
    PhaseTimes ph;
    double comm_busy = 0, running = 0, lr = cfg.learning_rate;
    const auto epoch_start = Clock::now();
    for (int64_t s = 0; s < steps; ++s, ++global_step) {
      const auto t0 = Clock::now();
      const int n = static_cast<int>(std::min<int64_t>(batch, shard - s * batch));
      float* x = net.input(n);
      int32_t* y = net.labels(n);
      for (int j = 0; j < n; ++j) {
        const int64_t i = idx[s * batch + j];
        std::memcpy(x + static_cast<size_t>(j) * data::kPixels, train_set.image(i), sizeof(float) * data::kPixels);
        y[j] = train_set.labels[i];
      }
      const auto t1 = Clock::now();
      const auto res = net.forward(n, true, mix_seed(mix_seed(cfg.seed, global_step), 0x5eed0000u + rank));
      const auto t2 = Clock::now();
      net.backward([&](size_t offset, size_t count) { sync.ready(offset, count); });
      const auto t3 = Clock::now();
      sync.finish();  // waits for the all-reduce the backward pass did not hide, then averages
      const auto t4 = Clock::now();
      lr = learning_rate_at(cfg, world, global_step, steps);
      sgd.step(net.params(), net.grads(), static_cast<float>(lr));
      const auto t5 = Clock::now();
      ph.data += seconds(t0, t1);
      ph.forward += seconds(t1, t2);
      ph.backward += seconds(t2, t3);
      ph.allreduce_wait += seconds(t3, t4);
      ph.optimizer += seconds(t4, t5);
      comm_busy += sync.last_step_comm_seconds();
      step_loss[s] = res.loss;
      running += res.loss;
      progress.step(s + 1, running / static_cast<double>(s + 1), (s * batch + n) * world);
    }
    const double train_time = seconds(epoch_start, Clock::now());
    ph.other = std::max(0.0, train_time - (ph.data + ph.forward + ph.backward + ph.allreduce_wait + ph.optimizer));

    // Gather: the loss curve (mean over ranks), every rank's time split.
    comm.allreduce_sum(step_loss.data(), step_loss.size());
    for (double& l : step_loss) l /= world;
    double row[PhaseTimes::kFields + 2];
    std::copy(ph.begin(), ph.begin() + PhaseTimes::kFields, row);
    row[PhaseTimes::kFields] = train_time;
    row[PhaseTimes::kFields + 1] = comm_busy;
    const auto rows = gather_rows(comm, row, PhaseTimes::kFields + 2);

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
    const size_t w = PhaseTimes::kFields + 2;
    for (int q = 0; q < world; ++q) {
      PhaseTimes p;
      std::copy(rows.begin() + q * w, rows.begin() + q * w + PhaseTimes::kFields, p.begin());
      r.per_rank[q].push_back(p);
      for (int f = 0; f < PhaseTimes::kFields; ++f) e.phases.begin()[f] += p.begin()[f] / world;
      e.train_time_s = std::max(e.train_time_s, rows[q * w + PhaseTimes::kFields]);
      e.allreduce_busy_s += rows[q * w + PhaseTimes::kFields + 1] / world;
    }
    e.eval_time_s = eval_time;
    e.time_s = e.train_time_s + eval_time;
    e.samples_per_s = static_cast<double>(r.samples_per_epoch) / e.train_time_s;
    r.epochs.push_back(e);
    r.step_losses.insert(r.step_losses.end(), step_loss.begin(), step_loss.end());
    progress.end_epoch(e.loss, e.test_accuracy, e.time_s, e.samples_per_s);
  }

  r.total_time_s = seconds(run_start, Clock::now());
  for (const auto& e : r.epochs) r.train_time_s += e.train_time_s;
  r.final_test_accuracy = r.epochs.empty() ? 0 : r.epochs.back().test_accuracy;
  r.throughput = static_cast<double>(r.samples_per_epoch) * cfg.epochs / r.train_time_s;
  const auto& lt = net.times();
  r.layer_forward_s.assign(lt.forward_s.begin(), lt.forward_s.end());
  r.layer_backward_s.assign(lt.backward_s.begin(), lt.backward_s.end());
  return r;
}

}  // namespace ddp::train
