// run_experiments: the benchmark suite. Runs the serial baseline and
// train_parallel for each process count (as child processes, the programs a
// user would run), then writes what parallelism bought, where the time went
// and what a scaling model predicts, as JSON, plots and a Markdown report,
// into <output-dir>/experiment_<timestamp>/ (src/experiments/suite.h).
#include <string>

#include "experiments/allreduce_benchmark.h"
#include "experiments/replot.h"
#include "experiments/signals.h"
#include "experiments/suite.h"
#include "experiments/text.h"
#include "launch/cluster_flags.h"
#include "train/cli.h"
#include "train/parallel_flags.h"

using namespace ddp;

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == experiments::kBenchWorkerFlag)
    return train::run_main("run_experiments (all-reduce benchmark)",
                           [&] { return experiments::allreduce_benchmark_worker(argv[2]); });

  experiments::SuiteOptions o;
  std::string replot;
  CLI::App app{"run_experiments: the benchmark suite. Trains the CNN serially and with data parallelism for each "
               "process count, and reports speedup, efficiency, throughput, accuracy, where the time goes and a "
               "scaling model, as JSON, plots and report.md in <output-dir>/experiment_<timestamp>/."};
  // The trainers' flags that every run is given, registered as the trainers register them.
  train::add_training_flags(app, o.train,
                            {.run = true, .data = true, .save_results = false, .dropout = false, .precision = false,
                             .progress = false, .checkpoints = false, .trace = false});
  train::add_parallel_flags(app, o.train,
                            {.world_size = false, .backend = false, .lr_scaling = true, .warmup = false,
                             .allreduce_algorithm = true, .communication = false,
                             .mitigations = false,
                             .restarts = false});
  // All the parallel runs are on this machine.
  app.add_option("-p,--process-counts", o.processes,
                 "Process counts of the parallel runs (each 1.." + std::to_string(launch::kMaxRanksPerMachine) +
                     "), e.g. -p 2 4 8")
      ->check(CLI::Range(1, launch::kMaxRanksPerMachine))->delimiter(',')->capture_default_str();
  app.add_option("--backends", o.backends,
                 "Communication backends of the parallel runs, each run at every process count: gloo, mpi "
                 "(e.g. --backends gloo mpi)")
      ->delimiter(',')->capture_default_str();
  app.add_option("--precision", o.precisions,
                 "Precisions of every run, serial included: fp32, bf16 (mixed precision; needs AVX-512, fast with "
                 "AVX512_BF16 or AMX); --precision fp32 bf16 runs each process count in both, side by side")
      ->delimiter(',')->capture_default_str();
  app.add_option("--variant", o.variants,
                 "NAME=\"FLAGS\" (repeatable): run every parallel run once per variant, with FLAGS (split as a shell "
                 "would, no commands run) added to train_parallel's flags, e.g. --variant powersgd=\"--grad-compression "
                 "powersgd\" --variant local8=\"--sync-every 8\"; one serial baseline");
  app.add_option("-o,--output-dir", o.output_dir, "Where the experiment_<timestamp> directory goes")->capture_default_str();
  app.add_option("--repeats", o.repeats, "Run each configuration R times; report the median, min and max")
      ->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--network", o.network,
                 "Emulate a cluster network: each rank of a parallel run on its own node (network namespace, core) "
                 "joined by links of RATE[,DELAY], e.g. 1gbit or 10gbit; needs root (docs/network-emulation.md)")
      ->check([](const std::string& v) { return v.empty() ? std::string("give a rate, e.g. 1gbit or 10gbit") : ""; });
  app.add_option("--replot", replot, "Only redraw the plots and report of an existing experiment directory");
  try {
    auto args = train::normalise_args(argc, argv);
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  experiments::normalise(o);
  std::string command = "run_experiments";
  for (int i = 1; i < argc; ++i) command += " " + experiments::shell_quote(argv[i]);
  experiments::install_signal_handlers();
  return train::run_main("run_experiments",
                         [&] { return replot.empty() ? experiments::run_suite(o, command) : experiments::replot(replot); });
}
