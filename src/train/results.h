// What a training run measured, and its JSON form (the results file that
// run_experiments and the plots read; the README documents every field).
#pragma once
#include <nlohmann/json.hpp>
#include <vector>

#include "nn/onednn.h"
#include "train/config.h"

namespace ddp::train {

// Seconds of one epoch's training phase spent in each part of the step.
struct PhaseTimes {
  double data = 0, forward = 0, backward = 0, allreduce_wait = 0, optimizer = 0, other = 0;
  static constexpr int kFields = 6;
  double* begin() { return &data; }
  const double* begin() const { return &data; }
};

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
  std::string overlap = "none";  // what --overlap chose: thread | none (always none for a world of one)
  std::string comm_priority; // how the communication threads were favoured (dist/comm_priority.h)
  std::string binding = "none";  // the cores this process was bound to (rank 0's; dist/comm_priority.h)
  std::string onednn_isa;        // oneDNN's effective ISA (nn::cpu_bf16().isa)
  nn::Implementations onednn_implementations;  // rank 0's primitives at the run's batch size (nn::Cnn)
};

nlohmann::json to_json(const RunResult& r, const std::string& program);
nlohmann::json to_json(const EpochRecord& e);
EpochRecord epoch_from_json(const nlohmann::json& j);  // throws nlohmann::json::exception
nlohmann::json config_json(const TrainConfig& c);

}  // namespace ddp::train
