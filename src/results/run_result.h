// The results file of a training run (train_serial / train_parallel
// --save-results): one typed schema, written by the trainers and read by
// run_experiments, the plots, the scaling model and the benchmark.
//
// Every field is required unless its comment says "optional": a required
// field that is missing or of the wrong type is a SchemaError naming the field
// and the file. The optional fields are those added after the first version
// of the file; a file written before them reads with the default stated.
// Times are seconds; NaN is written as null and reads back as NaN.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ddp::results {

// Seconds of one epoch's training phase spent in each part of the step.
// JSON: "time_breakdown_s": {data, forward, backward, allreduce_wait, optimizer, other}.
struct PhaseTimes {
  double data = 0, forward = 0, backward = 0, allreduce_wait = 0, optimizer = 0, other = 0;
  PhaseTimes& operator+=(const PhaseTimes& o);
  PhaseTimes& operator*=(double k);
  bool operator==(const PhaseTimes&) const = default;
};

// Every field of PhaseTimes, for code that treats them alike (sums,
// gathering across ranks). A field added to the struct but not here fails
// the static_assert.
inline constexpr std::array<double PhaseTimes::*, 6> kPhaseTimesFields = {
    &PhaseTimes::data,           &PhaseTimes::forward,   &PhaseTimes::backward,
    &PhaseTimes::allreduce_wait, &PhaseTimes::optimizer, &PhaseTimes::other};
static_assert(sizeof(PhaseTimes) == kPhaseTimesFields.size() * sizeof(double),
              "kPhaseTimesFields must list every field of PhaseTimes");

inline PhaseTimes& PhaseTimes::operator+=(const PhaseTimes& o) {
  for (const auto f : kPhaseTimesFields) this->*f += o.*f;
  return *this;
}

inline PhaseTimes& PhaseTimes::operator*=(double k) {
  for (const auto f : kPhaseTimesFields) this->*f *= k;
  return *this;
}

// One entry of "epochs".
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
  PhaseTimes phases;            // "time_breakdown_s": mean over ranks
  double allreduce_busy_s = 0;  // time the communication thread spent in all-reduce (mean over ranks)
  // What communication cost in CPU (mean over ranks): the communication
  // thread's CPU time, and the time the training thread was ready to run
  // but waited for its core (NaN where the kernel does not say).
  // Optional (not measured before 2026-11-26): NaN.
  double comm_cpu_s = 0;
  double compute_preempted_s = 0;
  // The median time of one training step (mean over ranks): unlike the
  // mean (train_time_s / steps), it ignores the bursts in which a busy
  // machine takes a core away, so it compares runs on a noisy machine.
  // Optional (not measured before --overlap existed): NaN.
  double median_step_s = 0;
  // time_breakdown_s.allreduce_wait split (mean over ranks; NaN when not
  // recorded): the part during which the awaited all-reduce was itself
  // waiting for a later rank to join, and the rest, moving the bytes
  // (train/wait_split.h). JSON: "allreduce_wait_split_s": {later_rank, transfer}.
  // Optional (not measured before --trace existed): NaN.
  double allreduce_wait_later_rank_s = 0;
  double allreduce_wait_transfer_s = 0;
  // The bytes each rank handed to the communicator's all-reduces for the
  // epoch's steps (counted there: dist/counting_communicator.h; not the
  // evaluation's or the results'), and the optimizer steps they paid for.
  // Optional (not counted before --accumulate existed): NaN and -1, and
  // then not written.
  double allreduce_bytes = 0;
  int64_t optimizer_steps = 0;
  bool operator==(const EpochRecord&) const = default;
};

// "config": the settings of the run, as its flags gave them.
struct RunConfig {
  int epochs = 10;
  int batch_size = 64;  // per process
  double learning_rate = 0.01;
  double momentum = 0.9;
  std::string dataset = "mnist";
  std::string data_dir;
  int64_t limit = 0;  // 0: all training samples
  uint64_t seed = 42;
  float dropout = 0.5f;
  int threads = 1;
  int world_size = 1;
  std::string backend = "gloo";
  std::string lr_scaling = "none";
  int warmup_epochs = 0;
  size_t bucket_kb = 64;
  // Optional: "" (not recorded before the results named it; the default was ring, later bcube).
  std::string allreduce_algorithm = "bcube";
  std::string grad_compression = "none";  // optional: "none"
  std::string overlap = "auto";           // optional: "thread" (the only way before --overlap)
  double timeout_s = 60;
  std::string checkpoint_dir;  // optional (no checkpoints before they existed): ""
  int checkpoint_every = 1;    // optional: 1
  std::string resume;          // optional: ""
  // fp32 | bf16 (mixed precision, nn/precision.h); JSON: after warmup_epochs.
  // Optional (fp32 only before bf16): "fp32". A RunResult writes it only
  // with its onednn record or when it is not "fp32", so that files of older
  // versions are written back byte for byte.
  std::string precision = "fp32";
  // The mitigations of communication cost (docs/mitigations.md). Optional,
  // and written only where not the default (1, 1, 0, 0), so that files of
  // runs without them are written back as they were.
  int accumulate = 1;
  int64_t test_limit = 0;  // --test-limit (0: the whole test set; written only where set)
  int sync_every = 1;
  int64_t local_sgd_warmup_steps = 0;
  int stale_gradients = 0;
  // PowerSGD's rank and start step (--powersgd-rank, --powersgd-start-step):
  // written with grad_compression "powersgd" only (so that the files of
  // other runs, and of older versions, write back as they were). Optional: 0.
  int powersgd_rank = 0;
  int64_t powersgd_start_step = 0;
  bool operator==(const RunConfig&) const = default;
};

// One entry of "layer_times_s": rank 0's time in a layer over the whole run.
struct LayerTimes {
  double forward_s = 0, backward_s = 0;
  bool operator==(const LayerTimes&) const = default;
};

// One entry of "restarts": a failure the launcher recovered from by
// restarting every rank from the latest snapshot (launch/restarts.h).
// Times are seconds; a figure the failed attempt could not report is NaN.
struct RestartRecord {
  int restart = 0;               // 1-based
  double at_s = 0;               // when the launcher saw the failure, since the job started
  int rank = 0;                  // the rank blamed (global)
  std::string cause;             // "killed by signal 9 (SIGKILL)", "went silent (stopped) ...", "exited with status 1"
  int64_t resumed_step = 0;      // the global step the restart continued from (its snapshot's)
  int64_t steps_rerun = 0;       // steps the failed attempt had completed past that snapshot
  double rerun_s = 0;            // their training time: the snapshot's age at the last completed step
  double recovery_s = 0;         // the failure seen to the restarted ranks' first step
  double seconds_lost = 0;       // the snapshot written to the restarted ranks' first step (rerun + recovery + the rest)
  int world_size = 0;            // ranks of the restarted attempt: the job's own, fewer when nodes were lost (0: not recorded)
  bool operator==(const RestartRecord&) const = default;
};

struct RunResult {
  std::string program;  // "train_serial" / "train_parallel"
  RunConfig config;
  int world_size = 1;
  int threads_per_process = 1;
  bool oversubscribed = false;
  std::string backend;  // "local" for a world of one, else config.backend
  nlohmann::json machine = nlohmann::json::object();   // the machine's facts (free form)
  nlohmann::json versions = nlohmann::json::object();  // library -> version (free form)
  int64_t train_samples = 0, test_samples = 0;
  int64_t steps_per_epoch = 0;
  int64_t samples_per_epoch = 0;  // all ranks, including DistributedSampler padding
  size_t num_params = 0;
  uint64_t data_checksum = 0;
  // "allreduce": {bucket_bytes, num_buckets, overlap, comm_priority, binding,
  // bytes_per_step, bytes_per_epoch}.
  size_t bucket_bytes = 0, num_buckets = 0;
  // What --overlap chose: thread | none (always none for a world of one).
  // Optional: "thread" for a world of more than one, else "none".
  std::string overlap = "none";
  // How the communication threads were favoured (dist/comm_priority.h). Optional: "".
  std::string comm_priority;
  // The cores this process was bound to (rank 0's). Optional (no binding before --cpu-bind): "none".
  std::string binding = "none";
  // Bytes each rank handed to the communicator per optimizer step (over the
  // epochs that counted them), and in a whole epoch (that times an epoch's
  // optimizer steps). Optional: NaN, and then not written.
  double bytes_per_step = 0, bytes_per_epoch = 0;
  std::string resumed_from;  // the checkpoint this run continued, if any. Optional: ""
  // The ISA oneDNN ran on and the implementation of every primitive (rank
  // 0's at the run's batch size): {"isa": ..., "implementations":
  // {"conv2.forward": "brgconv:avx512_core_amx_bf16", ...}} (free form).
  // Optional (not recorded before bf16): {}, and then not written.
  nlohmann::json onednn = nlohmann::json::object();
  // The restarts of a train_parallel --max-restarts job, in order. Optional:
  // none (and not written when there were none, so older files write back as they were).
  std::vector<RestartRecord> restarts;
  // The world size of the checkpoint this run resumed when it differs from
  // world_size (the rest of its epoch was dealt to this world). Optional: 0
  // (the same world, or no resume; not written then).
  int resumed_world_size = 0;
  std::vector<EpochRecord> epochs;
  std::vector<std::vector<PhaseTimes>> per_rank;  // [rank][epoch]; JSON: [{rank, time_breakdown_s: [...]}]
  std::vector<float> step_losses;                 // every step, mean over ranks
  std::map<std::string, LayerTimes> layer_times_s;  // layer name -> times
  double startup_s = 0;      // process start to first step
  double final_test_accuracy = 0;
  double total_time_s = 0;   // all epochs, training and evaluation
  double train_time_s = 0;   // training phases only
  double throughput = 0;     // "throughput_samples_per_s": samples / train_time_s
  bool operator==(const RunResult&) const = default;
};

// The JSON forms. from_json throws SchemaError naming the field and `source`
// (the file, or what the document is; "" names none).
nlohmann::json to_json(const PhaseTimes& p);
nlohmann::json to_json(const EpochRecord& e);
nlohmann::json to_json(const RunConfig& c);
nlohmann::json to_json(const RestartRecord& x);
nlohmann::json to_json(const RunResult& r);
EpochRecord epoch_from_json(const nlohmann::json& j, const std::string& source = "");
RunConfig config_from_json(const nlohmann::json& j, const std::string& source = "");
RunResult run_result_from_json(const nlohmann::json& j, const std::string& source = "");

// Reads and checks a results file. Throws UserError naming the file when it
// cannot be read or is not JSON, SchemaError when a field is wrong.
RunResult read_results_file(const std::string& path);

}  // namespace ddp::results
