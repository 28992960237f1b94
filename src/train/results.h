// What a training run measured, and its JSON form (the results file that
// run_experiments and the plots read; the README documents every field).
#pragma once
#include <array>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/config.h"

namespace ddp::train {

// Seconds of one epoch's training phase spent in each part of the step.
struct PhaseTimes {
  double data = 0, forward = 0, backward = 0, allreduce_wait = 0, optimizer = 0, other = 0;
  PhaseTimes& operator+=(const PhaseTimes& o);
  PhaseTimes& operator*=(double k);
};

// Every field of PhaseTimes, for code that treats them alike (sums,
// gathering across ranks). A field added to the struct but not here fails
// the static_assert.
inline constexpr std::array<double PhaseTimes::*, 6> kPhaseTimesFields = {
    &PhaseTimes::data,           &PhaseTimes::forward,   &PhaseTimes::backward,
    &PhaseTimes::allreduce_wait, &PhaseTimes::optimizer, &PhaseTimes::other};
static_assert(sizeof(PhaseTimes) == kPhaseTimesFields.size() * sizeof(double),
              "kPhaseTimesFields must list every field of PhaseTimes");

struct EpochRecord {
  int epoch = 0;                // 1-based
  double loss = 0;              // mean training loss over the epoch's steps, all ranks
  double test_loss = 0;
  double test_accuracy = 0;     // 0..1, whole test set
  double train_time_s = 0;      // the training phase (slowest rank)
  double eval_time_s = 0;
  double time_s = 0;            // train + eval
  double samples_per_s = 0;     // samples trained / train_time_s, all ranks
  double learning_rate = 0;     // at the end of the epoch
  PhaseTimes phases;            // mean over ranks
  double allreduce_busy_s = 0;  // time the communication thread spent in all-reduce (mean over ranks)
  // What communication cost in CPU (mean over ranks): the communication
  // thread's CPU time, and the time the training thread was ready to run
  // but waited for its core (NaN where the kernel does not say).
  double comm_cpu_s = 0;
  double compute_preempted_s = 0;
  // The median time of one training step (mean over ranks): unlike the
  // mean (train_time_s / steps), it ignores the bursts in which a busy
  // machine takes a core away, so it compares runs on a noisy machine.
  double median_step_s = 0;
  // time_breakdown_s.allreduce_wait split (mean over ranks; NaN when not
  // recorded): the part during which the awaited all-reduce was itself
  // waiting for a later rank to join, and the rest, moving the bytes
  // (train/wait_split.h).
  double allreduce_wait_later_rank_s = 0;
  double allreduce_wait_transfer_s = 0;
};

struct RunResult {
  TrainConfig config;
  int world_size = 1;
  int threads_per_process = 1;
  bool oversubscribed = false;
  int64_t train_samples = 0, test_samples = 0;
  int64_t steps_per_epoch = 0;
  int64_t samples_per_epoch = 0;  // all ranks, including DistributedSampler padding
  size_t num_params = 0;
  size_t bucket_bytes = 0, num_buckets = 0;
  uint64_t data_checksum = 0;
  std::vector<EpochRecord> epochs;
  std::vector<std::vector<PhaseTimes>> per_rank;  // [rank][epoch]
  std::vector<float> step_losses;                 // every step, mean over ranks
  std::vector<double> layer_forward_s, layer_backward_s;  // rank 0, whole run
  double startup_s = 0;      // process start to first step
  double total_time_s = 0;   // all epochs, training and evaluation
  double train_time_s = 0;   // training phases only
  double final_test_accuracy = 0;
  double throughput = 0;     // samples / train_time_s
  std::string resumed_from;  // the checkpoint this run continued, if any
  // The all-reduce algorithm that ran, written as config.allreduce_algorithm:
  // Gloo's --allreduce-algorithm, or what OpenMPI was told to use
  // (dist::mpi_allreduce_algorithm). Empty: the config's.
  std::string allreduce_algorithm;
  std::string overlap = "none";  // what --overlap chose: thread | none (always none for a world of one)
  std::string comm_priority; // how the communication threads were favoured (dist/comm_priority.h)
  std::string binding = "none";  // the cores this process was bound to (rank 0's; sys/cores.h)
};

nlohmann::json to_json(const RunResult& r, const std::string& program);
nlohmann::json to_json(const EpochRecord& e);
EpochRecord epoch_from_json(const nlohmann::json& j);  // throws nlohmann::json::exception
nlohmann::json config_json(const TrainConfig& c);
nlohmann::json run_config_json(const RunResult& r);  // config_json(r.config) with what r says ran

// The machine (sys/machine.h) as results record it: cores, cpu_model,
// hostname, memory_gib.
nlohmann::json machine_json();
// {"compiler": ...}; to_json(RunResult) adds the libraries the trainer links.
nlohmann::json versions_json();

}  // namespace ddp::train
