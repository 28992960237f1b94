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
#include "train/cli.h"

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
  app.add_option("-e,--epochs", o.epochs, "Training epochs of every run")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("-b,--batch-size", o.batch, "Batch size per process")->check(CLI::Range(1, 65536))->capture_default_str();
  app.add_option("-p,--process-counts", o.processes, "Process counts of the parallel runs (each 1..64), e.g. -p 2 4 8")
      ->check(CLI::Range(1, 64))->delimiter(',')->capture_default_str();
  app.add_option("--backends", o.backends,
                 "Communication backends of the parallel runs, each run at every process count: gloo, mpi "
                 "(e.g. --backends gloo mpi)")
      ->delimiter(',')->capture_default_str();
  app.add_option("-o,--output-dir", o.output_dir, "Where the experiment_<timestamp> directory goes")->capture_default_str();
  app.add_option("--learning-rate", o.learning_rate, "Learning rate (also -lr)")->check(train::finite_in(0, 10, true))
      ->capture_default_str();
  app.add_option("--lr-scaling", o.lr_scaling, "Learning-rate scaling of the parallel runs: none, or linear (lr x N)")
      ->check(CLI::IsMember({"none", "linear"}))->capture_default_str();
  app.add_option("--allreduce-algorithm", o.allreduce_algorithm,
                 "Gloo all-reduce algorithm of the parallel runs (ring: the one the scaling model describes)")
      ->check(CLI::IsMember({"ring", "bcube"}))->capture_default_str();
  app.add_option("--dataset", o.dataset, "Dataset")->check(CLI::IsMember({"mnist", "fashion-mnist"}))->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "Directory with the IDX files (default: data/mnist, or /usr/share/datasets/fashion-mnist)");
  app.add_option("--threads", o.threads, "Compute threads per process")->check(CLI::Range(1, 256))->capture_default_str();
  app.add_option("--limit", o.limit, "Train on the first N samples only (0: all)")->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  app.add_option("--seed", o.seed, "Random seed of every run")->capture_default_str();
  app.add_option("--repeats", o.repeats, "Run each configuration R times; report the median, min and max")
      ->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--network", o.network,
                 "Emulate a cluster network: each rank of a parallel run on its own node (network namespace, core) "
                 "joined by links of RATE[,DELAY], e.g. 1gbit or 10gbit; needs root (docs/network-emulation.md)");
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
