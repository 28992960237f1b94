#include "experiments/suite.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "common/error.h"
#include "data/dataset.h"
#include "dist/mpi_launch.h"
#include "experiments/allreduce_benchmark.h"
#include "experiments/runner.h"
#include "experiments/text.h"
#include "experiments/write_report.h"
#include "sys/atomic_file.h"
#include "report/gnuplot.h"
#include "sys/cpu_load.h"
#include "sys/machine.h"
#include "sys/process.h"
#include "sys/subprocess.h"
#include "train/config.h"
#include "train/trainer.h"

namespace ddp::experiments {

using nlohmann::json;
namespace fs = std::filesystem;

train::TrainConfig suite_training_defaults() {
  train::TrainConfig c;
  c.allreduce_algorithm = dist::AllreduceAlgorithm::ring;
  return c;
}

void normalise(SuiteOptions& o) {
  std::sort(o.processes.begin(), o.processes.end());
  o.processes.erase(std::unique(o.processes.begin(), o.processes.end()), o.processes.end());
  std::vector<std::string> backends;
  for (const auto& b : o.backends)
    if (std::find(backends.begin(), backends.end(), b) == backends.end()) backends.push_back(b);
  o.backends = backends;
}

std::vector<report::Configuration> plan_configurations(const SuiteOptions& o) {
  std::vector<report::Configuration> cs;
  report::Configuration serial;
  serial.name = "serial";
  serial.label = "serial";
  serial.program = "train_serial";
  serial.processes = 1;
  serial.results_file = "serial_results.json";
  cs.push_back(serial);
  for (int p : o.processes)
    for (const auto& backend : o.backends) {  // side by side: every backend at one N, then the next N
      report::Configuration c;
      // Gloo's files keep the names they had before there was a choice.
      c.name = "parallel_" + std::to_string(p) + "p" + (backend == "gloo" ? "" : "_" + backend);
      c.label = std::to_string(p) + (p == 1 ? " process" : " processes");
      c.program = "train_parallel";
      c.backend = backend;
      c.processes = p;
      c.results_file = c.name + "_results.json";
      cs.push_back(c);
    }
  return cs;
}

namespace {

std::string make_experiment_dir(const std::string& output_dir) {
  std::error_code ec;
  fs::create_directories(output_dir, ec);
  if (ec || !fs::is_directory(output_dir))
    throw UserError("cannot create the output directory " + output_dir + ": " +
                        (ec ? ec.message() : std::string("it exists and is not a directory")),
                    "choose a writable --output-dir");
  const std::string base = output_dir + "/experiment_" + now_string("%Y%m%d_%H%M%S");
  for (int k = 1; k < 1000; ++k) {
    const std::string dir = k == 1 ? base : base + "_" + std::to_string(k);
    if (mkdir(dir.c_str(), 0755) == 0) return dir;
    if (errno != EEXIST)
      throw UserError("cannot create " + dir + ": " + std::strerror(errno),
                      "choose a writable --output-dir (e.g. --output-dir /tmp/results)");
  }
  throw UserError("cannot create a new experiment directory in " + output_dir, "remove old experiment_* directories");
}

// The backends train_parallel knows, and what each needs on this machine.
void check_backends(const std::vector<std::string>& backends) {
  for (const auto& b : backends)
    if (b != "gloo" && b != "mpi")
      throw UserError("unknown backend '" + b + "' in --backends: train_parallel has gloo and mpi",
                      "use --backends gloo, --backends mpi or --backends gloo mpi");
  if (std::count(backends.begin(), backends.end(), "mpi") && sys::find_executable("mpirun").empty())
    throw UserError("--backends mpi needs OpenMPI's mpirun, which is not installed (not found in PATH)",
                    "install it with: apt-get install openmpi-bin libopenmpi-dev (or scripts/install_deps.sh), "
                    "or leave mpi out of --backends");
}

// Everything that can be wrong, checked before the first run: the backends,
// the trainers next to us, the data. Fills in exe_dir and data_dir.
void check_before_running(Suite& s) {
  check_backends(s.o.backends);
  s.exe_dir = sys::self_exe_dir();
  for (const char* prog : {"train_serial", "train_parallel"}) {
    const std::string path = s.exe_dir + "/" + prog;
    if (access(path.c_str(), X_OK) != 0)
      throw UserError(std::string(prog) + " not found next to run_experiments (" + path + ")",
                      "build every program (scripts/build.sh) and run run_experiments from the build directory");
  }
  const SuiteOptions& o = s.o;
  s.data_dir = fs::absolute(o.train.data_dir.empty() ? data::default_data_dir(o.train.dataset) : o.train.data_dir).lexically_normal().string();
  train::TrainConfig tc = o.train;
  tc.data_dir = s.data_dir;
  std::cout << "checking the data in " << s.data_dir << " ..." << std::flush;
  try {
    train::load_datasets(tc);  // throws UserError naming the missing or corrupt file and the fix
  } catch (...) {
    std::cout << " failed" << std::endl;
    throw;
  }
  std::cout << " ok\n";
}

json experiment_block(const Suite& s, const std::string& command) {
  const SuiteOptions& o = s.o;
  return {{"directory", s.dir},
          {"started", now_string("%Y-%m-%d %H:%M:%S %Z")},
          {"command", command},
          {"config",
           {{"epochs", o.train.epochs},
            {"batch_size", o.train.batch_size},
            {"process_counts", o.processes},
            {"backends", o.backends},
            {"threads", o.train.threads},
            {"dataset", o.train.dataset},
            {"data_dir", s.data_dir},
            {"limit", o.train.limit},
            {"seed", o.train.seed},
            {"learning_rate", o.train.learning_rate},
            {"lr_scaling", to_string(o.train.lr_scaling)},
            {"allreduce_algorithm", to_string(o.train.allreduce_algorithm)},
            {"repeats", o.repeats}}}};
}

// What will run, and a warning when the machine is busy already.
void announce(const Suite& s, size_t runs) {
  const SuiteOptions& o = s.o;
  std::cout << "experiment: " << s.dir << "\n" << runs << " runs: serial";
  for (int p : o.processes) std::cout << ", " << p << " process" << (p == 1 ? "" : "es");
  std::cout << (o.backends.size() > 1 ? " on each of the backends " : " on the backend ");
  for (size_t i = 0; i < o.backends.size(); ++i) std::cout << (i ? ", " : "") << o.backends[i];
  if (o.repeats > 1) std::cout << " (each " << o.repeats << " times)";
  std::cout << "; " << o.train.epochs << " epoch(s), batch " << o.train.batch_size << " per process, " << o.train.threads
            << " thread(s) per process, " << s.cores << " cores\n";
  const double load = sys::load_average();
  if (load > s.cores * 0.5)
    std::cerr << "run_experiments: warning: the machine is busy (load average " << report::format_number(load, 1)
              << " over the last minute on " << s.cores
              << " cores): other processes will slow the runs down unevenly; the report records how much\n";
}

json measure_allreduce(const Suite& s) {
  std::cout << "measuring this machine's all-reduce (2 ranks, loopback) ..." << std::flush;
  const json bench = run_allreduce_benchmark(s.dir);
  if (bench.value("status", "") == "ok")
    std::printf(" alpha %.1f us, beta %.2f GB/s\n", 1e6 * bench.value("alpha_s", 0.0),
                bench.value("beta_bytes_per_s", 0.0) / 1e9);
  else
    std::cout << " failed (" << bench.value("error", "?") << "); the model will use the training runs only\n";
  std::cout << std::flush;
  return bench;
}

}  // namespace

int run_suite(const SuiteOptions& o, const std::string& command) {
  Suite s;
  s.o = o;
  s.cores = sys::online_cores();
  check_before_running(s);
  const std::string gnuplot = report::find_gnuplot();
  const std::string gnuplot_problem = report::check_gnuplot(gnuplot);
  if (!gnuplot_problem.empty())
    std::cerr << "run_experiments: warning: " << gnuplot_problem << ": the runs go on and the JSON files are written, "
              << "but there will be no plots (" << report::kGnuplotInstallHint << ")\n";
  s.dir = make_experiment_dir(o.output_dir);
  sys::check_writable(s.dir + "/performance_metrics.json");
  fs::create_directories(s.dir + "/logs");
  s.configs = plan_configurations(o);

  json experiment = experiment_block(s, command);
  const std::vector<PlannedRun> plan = plan_runs(s.configs.size(), o.repeats);
  announce(s, plan.size());
  const json bench = measure_allreduce(s);
  const bool completed = run_all(s, plan);
  experiment["finished"] = now_string("%Y-%m-%d %H:%M:%S %Z");
  return write_experiment(s, experiment, bench, gnuplot, gnuplot_problem, !completed);
}

}  // namespace ddp::experiments
