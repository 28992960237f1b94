// run_experiments' benchmark suite: the serial baseline and train_parallel at
// each process count on each backend (as child processes: the programs a user
// would run), then what parallelism bought, where the time went and what a
// scaling model predicts, as JSON, plots and report.md in
// <output-dir>/experiment_<timestamp>/.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "experiments/variants.h"
#include "report/metrics.h"
#include "train/config.h"

namespace ddp::experiments {

// The trainers' settings every run of the suite is given. train_serial's and
// train_parallel's own defaults, but for Gloo's all-reduce algorithm: ring,
// the algorithm the scaling model describes (train_parallel's is bcube).
train::TrainConfig suite_training_defaults();

// The suite's settings: run_experiments' flags.
struct SuiteOptions {
  // Passed on to every run under the trainers' flag names (runner.cpp's
  // trainer_argv): epochs, batch size (per process), learning rate, dataset,
  // data directory (empty: the dataset's default), limit (0: all samples),
  // seed, threads per process; to the parallel runs also the learning-rate
  // scaling and, on Gloo, the all-reduce algorithm. The other fields are not
  // passed on: the trainers use their defaults.
  train::TrainConfig train = suite_training_defaults();
  std::vector<int> processes = {2, 4};           // the parallel runs' process counts
  std::vector<std::string> backends = {"gloo"};  // train_parallel's --backend, each run at every process count
  // The trainers' --precision (nn/precision.h), each run at every process
  // count, serial included: each parallel run is compared with the serial
  // run of its own precision, the bf16 serial run with the fp32 one.
  std::vector<std::string> precisions = {"fp32"};
  // --variant NAME=FLAGS (experiments/variants.h): every parallel run once
  // per variant, with FLAGS appended to train_parallel's argv; none: one
  // unnamed variant, the suite as it was.
  std::vector<std::string> variants;
  std::string output_dir = "results";
  int repeats = 1;
  // --network RATE[,DELAY]: each rank of a parallel run on its own emulated
  // node (experiments/network_runs.h); "": every rank on this machine.
  std::string network;
};

// Process counts sorted and each once; backends and precisions each once, in
// the order given.
void normalise(SuiteOptions& o);

// One experiment directory in the making (or being redrawn).
struct Suite {
  SuiteOptions o;
  std::string dir;       // the experiment directory
  std::string exe_dir;   // where train_serial and train_parallel are
  std::string data_dir;  // absolute
  std::vector<report::Configuration> configs;
  std::vector<Variant> variants;  // parse_variants(o.variants)
  int cores = 1;
};

// The serial baseline of each precision, then every process count on each
// backend in each precision side by side. bf16 runs' names end in "_bf16"
// (fp32's keep the names they had before there was a choice); their labels
// name the precision when any run is not fp32. With --variant, each parallel
// run once per variant: its name ends in "_<variant>", its label in ", <variant>".
// Throws UserError on a bad --variant (parse_variants), or when two runs
// would write the same files.
std::vector<report::Configuration> plan_configurations(const SuiteOptions& o);

// Checks everything that can be wrong up front (throws UserError), runs the
// suite, writes the experiment directory. `command`: the command line, for
// the report. Returns the exit status: 0, 1 when a run or a plot failed, 128 +
// signal when interrupted.
int run_suite(const SuiteOptions& o, const std::string& command);

}  // namespace ddp::experiments
