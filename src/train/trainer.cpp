#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <csignal>
#include <limits>
#include <numeric>

#include "common/clock.h"
#include "common/error.h"
#include "common/trace.h"
#include "data/sampler.h"
#include "dist/clock_sync.h"
#include "dist/comm_priority.h"
#include "dist/counting_communicator.h"
#include "dist/grad_sync.h"
#include "dist/mpi_communicator.h"
#include "nn/cnn.h"
#include "optim/sgd.h"
#include "sys/cpu_load.h"
#include "sys/launch_env.h"
#include "sys/machine.h"
#include "train/agreement.h"
#include "train/divergence.h"
#include "train/epoch_losses.h"
#include "train/epoch_stats.h"
#include "train/evaluate.h"
#include "train/progress.h"
#include "train/resume.h"
#include "train/sample_log.h"
#include "train/snapshots.h"
#include "train/step.h"
#include "train/stepper.h"
#include "train/stop.h"
#include "train/trace_file.h"
#include "train/trace_window.h"
#include "train/wait_split.h"

namespace ddp::train {

namespace {

using Clock = std::chrono::steady_clock;
const Clock::time_point kProcessStart = Clock::now();  // set before main() runs


// Every rank's clock against rank 0's (a collective); a world of one has
// rank 0's.
std::vector<dist::ClockOffset> clock_offsets(dist::Communicator& comm) {
  if (comm.size() > 1) return dist::synchronise_clocks(comm);
  dist::ClockOffset zero;
  zero.same_clock = true;
  return {zero};
}

double median(std::vector<double>& v) {
  if (v.empty()) return std::numeric_limits<double>::quiet_NaN();
  auto mid = v.begin() + static_cast<long>(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  return *mid;
}

// ---- the run ----

// A training run on this rank: set up once (the model, identical on every
// rank, the gradient synchroniser, the results' fixed fields), then epoch by
// epoch.
class Run {
 public:
  Run(const TrainConfig& cfg, dist::Communicator& comm, const data::Dataset& train_set,
      const data::Dataset& test_set);
  RunResult all_epochs();

 private:
  // What one epoch's steps leave behind.
  struct EpochOutcome {
    EpochStats stats;        // this rank's
    int64_t steps = 0;       // in the epoch (EpochPlan::steps)
    int64_t first = 0;       // the first step trained (> 0 in a resumed epoch)
    int64_t end = 0;         // one past the last step trained
    double learning_rate = 0;  // of the last step
    bool stopping = false;   // a rank was asked to stop: the epoch ended early
    double allreduce_bytes = 0;  // handed to the communicator by the steps (dist::CountingCommunicator)
    int64_t optimizer_steps = 0;  // updates applied
    double running_loss = 0;  // this rank's, summed over the steps trained
  };

  StartPoint start_point();
  dist::PowerSgdOptions powersgd_setup() const;
  std::string favour_communication();
  void fill_fixed_results();
  void fill_trace_context();
  void record(trace::Kind kind, Clock::time_point from, Clock::time_point to);
  EpochOutcome train_epoch(int epoch);
  void settle(int epoch, int64_t steps_done, EpochOutcome& o, uint64_t bytes_before, int64_t updates_before);
  void add_step(EpochOutcome& o, int64_t s, const StepResult& res);
  // Rank 0 writes the snapshots a restart continues from; the first rank of
  // every other node writes its node's own copy (a node can be lost).
  bool writes_snapshots() const { return !cfg_.snapshot_path.empty() && (rank_ == 0 || cfg_.node_snapshot); }
  void snapshot_mid_epoch(int epoch, int64_t steps_done);
  void write_snapshot(const RunPosition& at, const std::vector<float>& losses);
  // written: the checkpoint at this position is on disk already (the
  // epoch's end wrote it).
  [[noreturn]] void stop(int epoch, int64_t steps_done, bool written = false);
  // After epoch `epoch` (0-based): the --checkpoint-every one, or the last.
  bool epoch_checkpoint_due(int epoch) const {
    return !cfg_.checkpoint_dir.empty() && ((epoch + 1) % cfg_.checkpoint_every == 0 || epoch + 1 == cfg_.epochs);
  }
  // what: what became non-finite, as a clause.
  [[noreturn]] void diverged(int epoch, int64_t step, const std::string& what, double learning_rate);
  void end_epoch(int epoch, const EpochOutcome& o);
  void finish(double run_seconds);

  const TrainConfig& cfg_;
  dist::Communicator& comm_;
  const data::Dataset& train_set_;
  const data::Dataset& test_set_;
  const int world_, rank_;
  const int64_t shard_;  // samples per rank and epoch (DistributedSampler pads to equal shards)
  const int64_t steps_;  // per epoch
  const GradientLayout layout_;
  nn::Cnn net_;
  optim::Sgd sgd_;
  const StartPoint start_;
  const int busy_threads_, cores_;  // compute threads of this machine's ranks; its cores
  const std::vector<dist::ClockOffset> clocks_;  // [rank]: its clock against rank 0's
  RunTrace trace_;
  dist::CountingCommunicator counted_;  // comm_, counting the steps' all-reduces
  std::vector<float> stale_grads_;     // --stale-gradients: the gradient buffer in flight (train/stepper.h)
  dist::GradSync sync_;
  const StepModel model_;
  Stepper stepper_;
  RunResult r_;
  Progress progress_;
  int64_t global_step_;
  SnapshotClock snapshot_clock_;   // rank 0's
  ProgressFile progress_file_;     // the snapshot writer's, for its launcher (none: an empty path)
  EpochLosses losses_;              // this epoch's
  SampleLog sample_log_;            // for tests (train/sample_log.h)
  std::vector<double> step_time_;  // this epoch's steps, seconds
  std::vector<dist::BucketTiming> bucket_times_;  // this epoch's, [step * buckets + bucket]
};

Run::Run(const TrainConfig& cfg, dist::Communicator& comm, const data::Dataset& train_set,
         const data::Dataset& test_set)
    : cfg_(cfg),
      comm_(comm),
      train_set_(train_set),
      test_set_(test_set),
      world_(comm.size()),
      rank_(comm.rank()),
      shard_((train_set.size + world_ - 1) / world_),
      steps_((shard_ + cfg.batch_size - 1) / cfg.batch_size),
      layout_(gradient_layout(cfg.bucket_kb * 1024)),
      net_(cfg.dropout, layout_.count - layout_.num_params, cfg.precision),  // + the stop flag
      sgd_(layout_.num_params, static_cast<float>(cfg.momentum)),
      start_(start_point()),
      busy_threads_(sys::ranks_on_this_machine(world_) * cfg.threads),
      cores_(sys::online_cores()),
      clocks_(clock_offsets(comm)),
      trace_(cfg, trace_window(cfg, start_.global_step, cfg.epochs * steps_)),
      counted_(comm),
      stale_grads_(cfg.stale_gradients > 0 ? layout_.count : 0),
      sync_(counted_, stale_grads_.empty() ? net_.grads() : stale_grads_.data(), layout_.count,
            cfg.bucket_kb * 1024, layout_.segments, cfg.grad_compression,
            // Stale gradients hide the all-reduce behind the next step on the communication thread.
            dist::choose_overlap(cfg.stale_gradients > 0 && cfg.overlap == dist::OverlapMode::automatic
                                     ? dist::OverlapMode::thread
                                     : cfg.overlap,
                                 comm.backend(), busy_threads_, cores_),
            powersgd_setup()),
      model_{net_, sgd_, sync_, trace_.recorder()},
      stepper_(cfg, model_, counted_, stale_grads_.empty() ? nullptr : stale_grads_.data(), steps_),
      progress_(rank_ == 0, cfg.progress, cfg.epochs, world_),
      global_step_(start_.global_step),
      snapshot_clock_(rank_ == 0 && !cfg.snapshot_path.empty() ? snapshot_interval_s(cfg) : 0),
      progress_file_(writes_snapshots() ? cfg.progress_path : ""),
      sample_log_(rank_) {
  step_time_.reserve(static_cast<size_t>(steps_));
  bucket_times_.resize(static_cast<size_t>(steps_) * sync_.num_buckets());
  fill_fixed_results();
  fill_trace_context();
  net_.set_trace(trace_.recorder());
  sync_.set_trace(trace_.recorder());
  if (r_.comm_priority == "nice")
    progress_.message("note: no permission for real-time priority, so the communication threads are favoured by "
                      "running compute at nice +10: expect about 8% less throughput at 2 ranks (root, CAP_SYS_NICE "
                      "or `ulimit -r 1` lifts it)");
  if (const std::string note = nn::check_precision_supported(cfg.precision); !note.empty()) progress_.message(note);
  if (cfg.accumulate > steps_)
    progress_.message("warning: --accumulate " + std::to_string(cfg.accumulate) + " is more than the " +
                      std::to_string(steps_) + " micro-batches of an epoch on each rank, so each epoch makes one " +
                      "update (of all of them); for " + std::to_string(cfg.accumulate) +
                      " per update, give --accumulate at most " + std::to_string(steps_) +
                      " or train on more samples (--limit)");
  if (!start_.path.empty())
    progress_.message((cfg.restart_from.empty() ? "resuming from " : "restarting from the snapshot ") +
                      start_.path + " at epoch " + std::to_string(start_.epoch + 1) + ", step " +
                      std::to_string(start_.step) + world_change_note(start_, world_, cfg.batch_size));
}

// The model, identical everywhere: rank 0's initial parameters (or its
// checkpoint) are broadcast.
StartPoint Run::start_point() {
  net_.init(cfg_.seed);
  if (continues_a_run(cfg_)) return resume_from(cfg_, comm_, net_, sgd_, train_set_.checksum, train_set_.size);
  comm_.broadcast(net_.params(), layout_.num_params, 0);
  return {};
}

// PowerSGD over the model's tensors, its step count continuing the run's.
dist::PowerSgdOptions Run::powersgd_setup() const {
  dist::PowerSgdOptions o = powersgd_options(cfg_);
  o.matrices = layout_.matrices;
  o.first_step = start_.global_step;
  return o;
}

// Gloo: its event loop and our thread (Gloo's threads block while idle).
// MPI: our thread only (OpenMPI's own threads poll), if there is one, and
// only with a core per rank: it polls while it waits for a peer, which must
// not then be starved on a shared core.
std::string Run::favour_communication() {
  const bool oversubscribed = busy_threads_ > cores_;
  return world_ == 1                              ? "none: a world of one"
         : comm_.backend() == "gloo"              ? dist::prioritise_communication()
         : oversubscribed                         ? "none: mpi and oversubscribed"
         : sync_.overlap() == dist::Overlap::none ? "none: no communication thread"
                                                  : dist::prioritise_threads({sync_.thread_id()});
}

// The results that the epochs do not change.
void Run::fill_fixed_results() {
  r_.config = config_record(cfg_);
  r_.world_size = world_;
  r_.threads_per_process = cfg_.threads;
  r_.oversubscribed = busy_threads_ > cores_;
  r_.train_samples = train_set_.size;
  r_.test_samples = test_set_.size;
  r_.steps_per_epoch = steps_;
  r_.samples_per_epoch = shard_ * world_;
  r_.num_params = layout_.num_params;
  r_.bucket_bytes = cfg_.bucket_kb * 1024;
  r_.num_buckets = sync_.num_buckets();
  r_.data_checksum = train_set_.checksum;
  r_.per_rank.assign(world_, {});
  r_.epochs = start_.history;
  r_.resumed_from = start_.resumed_from;
  r_.comm_priority = favour_communication();
  r_.overlap = to_string(sync_.overlap());
  // What ran: Gloo's algorithm as configured, or what OpenMPI was told to use.
  if (comm_.backend() == "mpi") r_.config.allreduce_algorithm = dist::mpi_allreduce_algorithm();
  // The checkpoint's history: whole epochs, then start_.step steps of the next.
  r_.step_losses.assign(start_.step_losses.begin(), start_.step_losses.end() - static_cast<long>(start_.step));
  if (start_.prior_world != 0 && start_.prior_world != world_) r_.resumed_world_size = start_.prior_world;
}

void Run::fill_trace_context() {
  TraceContext& c = trace_.context();
  c.backend = comm_.backend();
  c.allreduce_algorithm = r_.config.allreduce_algorithm;
  c.overlap = r_.overlap;
  c.grad_compression = to_string(cfg_.grad_compression);
  for (size_t b = 0; b < sync_.num_buckets(); ++b) c.buckets.push_back(sync_.bucket(b));
  c.steps_per_epoch = steps_;
  c.clocks = clocks_;
}

// An event of the training thread outside the steps (when tracing).
void Run::record(trace::Kind kind, Clock::time_point from, Clock::time_point to) {
  if (trace::Recorder* tr = trace_.recorder()) tr->record(trace::Thread::compute, kind, trace::ns(from), trace::ns(to));
}

Run::EpochOutcome Run::train_epoch(int epoch) {
  const EpochPlan p = epoch_plan(start_, epoch, train_set_.size, world_, cfg_.batch_size);
  const auto idx = data::shard_indices(train_set_.size, cfg_.seed, epoch, rank_, world_, p.done);
  EpochOutcome o;
  o.first = p.first;
  o.steps = p.steps;
  o.learning_rate = cfg_.learning_rate;
  const size_t partial = start_.step_losses.size() - static_cast<size_t>(start_.step);
  losses_.begin(p.steps, p.first, start_.step_losses.data() + partial);
  if (bucket_times_.size() < static_cast<size_t>(p.steps) * sync_.num_buckets())
    bucket_times_.resize(static_cast<size_t>(p.steps) * sync_.num_buckets());
  progress_.start_epoch(epoch, p.steps);
  const double preempted_before = sys::runnable_wait_seconds();
  step_time_.clear();
  int64_t s = o.first;
  const uint64_t bytes_before = counted_.allreduce_bytes();
  const int64_t updates_before = stepper_.optimizer_steps();
  const auto epoch_start = Clock::now();
  if (epoch == start_.epoch) progress_file_.started(global_step_);
  for (; s < p.steps && !o.stopping; ++s, ++global_step_) {
    const int64_t begin = (s - p.first) * cfg_.batch_size, n = std::min<int64_t>(cfg_.batch_size, p.shard - begin);
    o.learning_rate = learning_rate_at(cfg_, world_, global_step_, steps_);
    StepInput in{{idx.data() + begin, static_cast<size_t>(n)}, dropout_seed(cfg_.seed, global_step_, rank_),
                 o.learning_rate, stop_signal() != 0};
    in.snapshot_requested = snapshot_clock_.due();
    if (sample_log_) sample_log_.step(epoch, global_step_, in.samples);
    trace_.begin_step(global_step_);
    const StepResult res = stepper_.step(train_set_, in, s, global_step_);
    const auto timings = sync_.last_step_buckets();
    const auto at = bucket_times_.begin() + static_cast<long>(s * std::ssize(timings));
    if (res.synced)
      std::copy(timings.begin(), timings.end(), at);
    else  // no bucket ran in this step (train/wait_split.h counts nothing for it)
      std::fill(at, at + std::ssize(timings), dist::BucketTiming{});
    if (res.non_finite)
      diverged(epoch, s, "not applied: " + non_finite_cause(res.loss, world_), o.learning_rate);
    o.stopping = res.stop || (world_ == 1 && stop_signal() != 0);
    add_step(o, s, res);
    progress_file_.step_done(global_step_ + 1);
    if (res.snapshot && s + 1 < p.steps) snapshot_mid_epoch(epoch, s + 1);  // the epoch's end writes its own
    if (trace_.recorder() && trace_.recorder()->window_complete(global_step_)) stepper_.quiesce();
    if (trace_.end_step(comm_, global_step_)) progress_.message(trace_.written_message());
  }
  settle(epoch, s, o, bytes_before, updates_before);
  EpochStats& st = o.stats;
  st.train_time_s = seconds(epoch_start, Clock::now());
  const double preempted_after = sys::runnable_wait_seconds();
  st.preempted_s = preempted_before >= 0 && preempted_after >= 0 ? preempted_after - preempted_before
                                                                 : std::numeric_limits<double>::quiet_NaN();
  const PhaseTimes& ph = st.phases;
  st.phases.other =
      std::max(0.0, st.train_time_s - (ph.data + ph.forward + ph.backward + ph.allreduce_wait + ph.optimizer));
  st.median_step_s = median(step_time_);
  const WaitSplit split = split_epoch_wait(comm_, clocks_[static_cast<size_t>(rank_)].offset_ns, bucket_times_,
                                           sync_.num_buckets(), o.first, o.end);
  st.wait_later_rank_s = split.later_rank_s;
  st.wait_transfer_s = split.transfer_s;
  losses_.mean_until(comm_, o.end);
  return o;
}

// After the epoch's last step, or the step in which the ranks agreed to
// stop: one model on every rank and nothing in flight (Stepper::settle);
// a stop inside an accumulation group goes back to the group's start
// (Stepper::resumable_end). Sets o.end and what the steps sent.
void Run::settle(int epoch, int64_t steps_done, EpochOutcome& o, uint64_t bytes_before, int64_t updates_before) {
  const StepResult res = stepper_.settle();
  if (res.non_finite)
    diverged(epoch, steps_done - 1, "not applied: " + non_finite_cause(0, world_), o.learning_rate);
  o.stats.phases.allreduce_wait += res.times.allreduce_wait;
  o.stats.phases.optimizer += res.times.optimizer;
  o.stats.comm_busy_s += res.comm_s;
  o.end = stepper_.resumable_end(steps_done);
  global_step_ -= steps_done - o.end;
  o.allreduce_bytes = static_cast<double>(counted_.allreduce_bytes() - bytes_before);
  o.optimizer_steps = stepper_.optimizer_steps() - updates_before;
}

// Step s's figures into the epoch's, and onto the progress bar.
void Run::add_step(EpochOutcome& o, int64_t s, const StepResult& res) {
  EpochStats& st = o.stats;
  st.phases.data += res.times.data;
  st.phases.forward += res.times.forward;
  st.phases.backward += res.times.backward;
  st.phases.allreduce_wait += res.times.allreduce_wait;
  st.phases.optimizer += res.times.optimizer;
  st.comm_busy_s += res.comm_s;
  st.comm_cpu_s += res.comm_cpu_s;
  step_time_.push_back(res.times.total);
  losses_.record(s, res.loss);
  o.running_loss += res.loss;
  progress_.step(s + 1, o.running_loss / static_cast<double>(s + 1 - o.first),
                 (s + 1 - o.first) * cfg_.batch_size * world_);
}

// Every rank learnt from the stop flag that rank 0 wants a snapshot after
// `steps_done` steps of this epoch (global_step_ is the last of them).
void Run::snapshot_mid_epoch(int epoch, int64_t steps_done) {
  losses_.mean_until(comm_, steps_done);
  if (!writes_snapshots()) return;
  std::vector<float> losses(r_.step_losses);
  losses.insert(losses.end(), losses_.means().begin(), losses_.means().begin() + steps_done);
  write_snapshot({epoch, steps_done, global_step_ + 1}, losses);
}

// Rank 0: the snapshot, in place atomically; then the progress file says so.
void Run::write_snapshot(const RunPosition& at, const std::vector<float>& losses) {
  const auto t0 = Clock::now();
  write_checkpoint(r_, net_, sgd_, at, losses, cfg_.snapshot_path);
  record(trace::Kind::checkpoint, t0, Clock::now());
  snapshot_clock_.written();
  progress_file_.snapshot(at.global_step);
}

// Every rank saw the stop flag in the same step and is here, at that step:
// rank 0 writes a checkpoint (with --checkpoint-dir) and all end together.
void Run::stop(int epoch, int64_t steps_done, bool written) {
  std::vector<float> losses(r_.step_losses);
  losses.insert(losses.end(), losses_.means().begin(), losses_.means().begin() + steps_done);
  if (trace_.flush(comm_, global_step_)) progress_.message(trace_.written_message());
  const bool save = !cfg_.checkpoint_dir.empty();
  if (save && rank_ == 0 && !written) write_checkpoint(r_, net_, sgd_, {epoch, steps_done, global_step_}, losses);
  comm_.barrier();
  progress_.clear_bar();
  throw Stopped{stop_signal() ? stop_signal() : SIGINT, epoch + 1, steps_done, save};
}

// Every rank learnt in the same step (train_step's non_finite) that a loss
// or the summed gradient was NaN or infinite: all stop with this error, and
// no checkpoint is written (the last one, if any, holds finite parameters).
void Run::diverged(int epoch, int64_t step, const std::string& what, double learning_rate) {
  progress_.clear_bar();
  throw diverged_error(cfg_, world_, {epoch, step, steps_}, what, learning_rate);
}

// Gathers every rank's figures, evaluates, checks the ranks still agree,
// records the epoch and writes the checkpoint that is due.
void Run::end_epoch(int epoch, const EpochOutcome& o) {
  const std::vector<EpochStats> ranks = gather_epoch_stats(comm_, o.stats);
  const auto eval_start = Clock::now();
  const EvalResult ev = evaluate(net_, comm_, test_set_, cfg_.batch_size);
  const auto eval_end = Clock::now();
  const double eval_time = seconds(eval_start, eval_end);
  record(trace::Kind::evaluate, eval_start, eval_end);
  check_same_parameters(comm_, net_, epoch);

  EpochRecord e;
  e.epoch = epoch + 1;
  e.loss = std::accumulate(losses_.means().begin(), losses_.means().end(), 0.0) / static_cast<double>(o.steps);
  e.test_loss = ev.loss;
  e.test_accuracy = ev.accuracy;
  e.learning_rate = o.learning_rate;
  e.allreduce_bytes = o.allreduce_bytes;  // the same on every rank
  e.optimizer_steps = o.optimizer_steps;
  for (int q = 0; q < world_; ++q) r_.per_rank[q].push_back(ranks[q].phases);
  summarise_ranks(ranks, e);
  e.eval_time_s = eval_time;
  e.time_s = e.train_time_s + eval_time;
  e.samples_per_s = static_cast<double>(r_.samples_per_epoch) * static_cast<double>(o.steps - o.first) /
                    static_cast<double>(o.steps) / e.train_time_s;
  r_.epochs.push_back(e);
  r_.step_losses.insert(r_.step_losses.end(), losses_.means().begin(), losses_.means().end());
  progress_.end_epoch(e.loss, e.test_accuracy, e.time_s, e.samples_per_s);

  if (rank_ == 0 && epoch_checkpoint_due(epoch)) {
    const auto t0 = Clock::now();
    write_checkpoint(r_, net_, sgd_, {epoch + 1, 0, global_step_}, r_.step_losses);
    record(trace::Kind::checkpoint, t0, Clock::now());
  }
  if (writes_snapshots()) write_snapshot({epoch + 1, 0, global_step_}, r_.step_losses);
}

// The run's totals. run_seconds: this process's epochs, with the resumed
// run's before them.
void Run::finish(double run_seconds) {
  r_.total_time_s = run_seconds;
  for (const auto& e : r_.epochs) r_.train_time_s += e.train_time_s;
  r_.final_test_accuracy = r_.epochs.empty() ? 0 : r_.epochs.back().test_accuracy;
  r_.throughput = static_cast<double>(r_.samples_per_epoch) * static_cast<double>(r_.epochs.size()) / r_.train_time_s;
  double bytes = 0, updates = 0;
  for (const auto& e : r_.epochs)
    if (e.optimizer_steps >= 0 && !std::isnan(e.allreduce_bytes)) {
      bytes += e.allreduce_bytes;
      updates += static_cast<double>(e.optimizer_steps);
    }
  r_.bytes_per_step = updates > 0 ? bytes / updates : std::numeric_limits<double>::quiet_NaN();
  r_.bytes_per_epoch = r_.bytes_per_step * static_cast<double>(stepper_.optimizer_steps_per_epoch());
  const auto& lt = net_.times();
  for (int l = 0; l < nn::kNumLayers; ++l) r_.layer_times_s[nn::layer_name(l)] = {lt.forward_s[l], lt.backward_s[l]};
  // The ISA oneDNN ran on and every primitive's implementation, in network order.
  nlohmann::json impls = nlohmann::json::object();
  for (const auto& [what, impl] : net_.implementations(static_cast<int>(std::min<int64_t>(cfg_.batch_size, shard_))))
    impls[what] = impl;
  r_.onednn = {{"isa", nn::cpu_bf16().isa}, {"implementations", impls}};
}

RunResult Run::all_epochs() {
  const auto run_start = Clock::now();
  r_.startup_s = seconds(kProcessStart, run_start);
  double resumed_time = 0;
  for (const auto& e : r_.epochs) resumed_time += e.time_s;
  for (int epoch = start_.epoch; epoch < cfg_.epochs; ++epoch) {
    const EpochOutcome o = train_epoch(epoch);
    // Finite gradients can still step a parameter past the largest float;
    // the parameters are the same on every rank, so every rank stops alike
    // and no checkpoint holds an infinity.
    const float* p = net_.params();
    if (!std::all_of(p, p + layout_.num_params, [](float x) { return std::isfinite(x); }))
      diverged(epoch, o.end - 1, "the step made a parameter infinite; the run stopped before evaluating",
               o.learning_rate);
    // A stop that came in the epoch's last step ends the epoch as usual
    // (evaluation, its checkpoint) and stops after it: a checkpoint at "all
    // of the epoch's steps done" would resume with no sample left to deal.
    const bool epoch_complete = o.end == o.steps;
    if (o.stopping && !epoch_complete) stop(epoch, o.end);
    end_epoch(epoch, o);
    if (o.stopping && epoch + 1 < cfg_.epochs) stop(epoch + 1, 0, epoch_checkpoint_due(epoch));
  }
  finish(resumed_time + seconds(run_start, Clock::now()));
  return r_;
}

}  // namespace

Datasets load_datasets(const TrainConfig& cfg) {
  const std::string dir = cfg.data_dir.empty() ? data::default_data_dir(cfg.dataset) : cfg.data_dir;
  Datasets d{data::load_dataset(cfg.dataset, dir, data::Split::train),
             data::load_dataset(cfg.dataset, dir, data::Split::test)};
  if (cfg.limit > 0) data::truncate(d.train, cfg.limit);
  if (cfg.test_limit > 0) data::truncate(d.test, cfg.test_limit);
  return d;
}

RunResult train(const TrainConfig& cfg, dist::Communicator& comm, const data::Dataset& train_set,
                const data::Dataset& test_set) {
  nn::set_compute_threads(cfg.threads);
  install_stop_handlers();
  check_same_run(comm, cfg, train_set, test_set);
  Run run(cfg, comm, train_set, test_set);
  return run.all_epochs();
}

}  // namespace ddp::train
