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
#include "experiments/network_runs.h"
#include "experiments/runner.h"
#include "experiments/signals.h"
#include "experiments/text.h"
#include "experiments/write_report.h"
#include "nn/precision.h"
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
  std::vector<std::string> precisions;
  for (const auto& x : o.precisions)
    if (std::find(precisions.begin(), precisions.end(), x) == precisions.end()) precisions.push_back(x);
  o.precisions = precisions;
}

std::vector<report::Configuration> plan_configurations(const SuiteOptions& o) {
  const bool named = o.precisions != std::vector<std::string>{"fp32"};
  // fp32's files keep the names they had before there was a choice.
  auto suffix = [](const std::string& precision) { return precision == "fp32" ? "" : "_" + precision; };
  auto label = [&](const std::string& base, const std::string& precision) {
    return named ? base + ", " + precision : base;
  };
  std::vector<report::Configuration> cs;
  for (const auto& precision : o.precisions) {
    report::Configuration serial;
    serial.name = "serial" + suffix(precision);
    serial.label = label("serial", precision);
    serial.program = "train_serial";
    serial.precision = precision;
    serial.processes = 1;
    serial.results_file = serial.name + "_results.json";
    cs.push_back(serial);
  }
  const std::vector<Variant> variants = parse_variants(o.variants);
  for (int p : o.processes)
    for (const auto& backend : o.backends)  // side by side: every backend at one N, then the next N
      for (const auto& precision : o.precisions)
        for (const auto& v : variants) {
          report::Configuration c;
          // Gloo's files keep the names they had before there was a choice.
          c.name = "parallel_" + std::to_string(p) + "p" + (backend == "gloo" ? "" : "_" + backend) +
                   suffix(precision) + (v.name.empty() ? "" : "_" + v.name);
          c.label = label(std::to_string(p) + (p == 1 ? " process" : " processes"), precision) +
                    (v.name.empty() ? "" : ", " + v.name);
          c.program = "train_parallel";
          c.backend = backend;
          c.precision = precision;
          c.variant = v.name;
          c.processes = p;
          c.results_file = c.name + "_results.json";
          cs.push_back(c);
        }
  // A variant named like a backend or precision ("bf16") could take another run's files.
  for (size_t i = 0; i < cs.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (cs[i].name == cs[j].name)
        throw UserError("two runs would both write " + cs[i].results_file + " (--variant " + cs[i].variant +
                            " is named like a backend or precision)",
                        "rename that --variant");
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

// The precisions the trainers know, and whether this CPU runs them: bf16 is
// refused on a CPU without AVX-512 (unless forced), and a CPU that only
// emulates it is named before the runs (nn::check_precision_supported).
void check_precisions(const std::vector<std::string>& precisions) {
  for (const auto& p : precisions) {
    const auto precision = nn::precision_from_string(p);
    if (!precision)
      throw UserError("unknown precision '" + p + "' in --precision: the trainers have fp32 and bf16",
                      "use --precision fp32, --precision bf16 or --precision fp32 bf16");
    if (const std::string note = nn::check_precision_supported(*precision); !note.empty())
      std::cerr << "run_experiments: " << note << "\n";
  }
}

// Each variant's flags as train_parallel would parse them, on the suite's
// first parallel run (the flags do not depend on N, backend or precision).
void check_variants(const Suite& s) {
  if (!any_named(s.variants) || s.o.processes.empty()) return;
  report::Configuration c;
  c.program = "train_parallel";
  c.processes = s.o.processes.front();
  c.backend = s.o.backends.empty() ? "gloo" : s.o.backends.front();
  c.precision = s.o.precisions.empty() ? "fp32" : s.o.precisions.front();
  for (const auto& v : s.variants) {
    c.variant = v.name;
    check_train_parallel_argv(trainer_argv(s, c, "results.json"), v);
  }
}

// Everything that can be wrong, checked before the first run: the backends,
// the precisions, the variants, the trainers next to us, the data. Fills in
// exe_dir, data_dir and variants.
void check_before_running(Suite& s) {
  check_backends(s.o.backends);
  check_precisions(s.o.precisions);
  s.variants = parse_variants(s.o.variants);
  plan_configurations(s.o);  // throws when two runs would write the same files
  if (!s.o.network.empty()) {
    check_network(s.o.network);
    if (s.o.backends != std::vector<std::string>{"gloo"})
      throw UserError("--network runs Gloo's ranks on emulated nodes; MPI's mpirun cannot place them there",
                      "use --backends gloo with --network");
  }
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
  check_variants(s);
}

// {name: flags}, or null without --variant.
json variants_json(const std::vector<Variant>& vs) {
  if (!any_named(vs)) return nullptr;
  json j = json::object();
  for (const auto& v : vs) j[v.name] = v.flags;
  return j;
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
            {"precisions", o.precisions},
            {"variants", variants_json(s.variants)},
            {"threads", o.train.threads},
            {"dataset", o.train.dataset},
            {"data_dir", s.data_dir},
            {"limit", o.train.limit},
            {"test_limit", o.train.test_limit},
            {"seed", o.train.seed},
            {"learning_rate", o.train.learning_rate},
            {"lr_scaling", to_string(o.train.lr_scaling)},
            {"allreduce_algorithm", to_string(o.train.allreduce_algorithm)},
            {"repeats", o.repeats},
            {"network", o.network.empty() ? json(nullptr) : json(o.network)}}}};
}

// What will run, and a warning when the machine is busy already.
void announce(const Suite& s, size_t runs) {
  const SuiteOptions& o = s.o;
  std::cout << "experiment: " << s.dir << "\n" << runs << " runs: serial";
  for (int p : o.processes) std::cout << ", " << p << " process" << (p == 1 ? "" : "es");
  std::cout << (o.backends.size() > 1 ? " on each of the backends " : " on the backend ");
  for (size_t i = 0; i < o.backends.size(); ++i) std::cout << (i ? ", " : "") << o.backends[i];
  if (o.precisions != std::vector<std::string>{"fp32"}) {
    std::cout << (o.precisions.size() > 1 ? ", in each of the precisions " : ", in ");
    for (size_t i = 0; i < o.precisions.size(); ++i) std::cout << (i ? ", " : "") << o.precisions[i];
  }
  if (any_named(s.variants)) {
    std::cout << ", each parallel run in the variants";
    for (size_t i = 0; i < s.variants.size(); ++i) std::cout << (i ? ", " : " ") << s.variants[i].name;
  }
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

json measure_emulated_network(const Suite& s) {
  std::cout << "measuring the emulated " << s.o.network << " network (2 nodes: round trip, all-reduce sizes) ..."
            << std::flush;
  const json n = measure_network(s);
  if (n.value("status", "") == "ok")
    std::printf(" round trip %.1f us, alpha %.1f us, beta %.1f MB/s\n", 1e6 * n["round_trip_s"].value("median", 0.0),
                1e6 * n.value("alpha_s", 0.0), n.value("beta_bytes_per_s", 0.0) / 1e6);
  else
    std::cout << " failed (" << n.value("error", "?") << ")\n";
  std::cout << std::flush;
  return n;
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
  json bench = measure_allreduce(s);
  if (!o.network.empty() && !pending_signal()) bench["network"] = measure_emulated_network(s);
  const bool completed = run_all(s, plan);
  experiment["finished"] = now_string("%Y-%m-%d %H:%M:%S %Z");
  return write_experiment(s, experiment, bench, gnuplot, gnuplot_problem, !completed);
}

}  // namespace ddp::experiments
