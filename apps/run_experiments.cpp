// run_experiments: the benchmark suite. Runs the serial baseline and
// train_parallel for each process count (as child processes, the programs a
// user would run), then writes what parallelism bought, where the time went
// and what a scaling model predicts, as JSON, plots and a Markdown report,
// into <output-dir>/experiment_<timestamp>/.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "data/dataset.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "dist/gloo_communicator.h"
#include "dist/launcher.h"
#include "nn/cnn.h"
#include "report/experiment.h"
#include "report/gnuplot.h"
#include "report/metrics.h"
#include "report/plots.h"
#include "report/scaling_model.h"
#include "sys/atomic_file.h"
#include "sys/machine.h"
#include "sys/process.h"
#include "sys/subprocess.h"
#include "train/cli.h"
#include "train/config.h"
#include "train/results.h"
#include "train/step.h"
#include "train/trainer.h"

using namespace ddp;
using nlohmann::json;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kBenchWorkerFlag = "--internal-allreduce-benchmark";
// Other processes using more CPU than this during a run make its timing unreliable.
constexpr double kBusyCores = 0.25;

struct Options {
  int epochs = 10;
  int batch = 64;
  std::vector<int> processes = {2, 4};
  std::vector<std::string> backends = {"gloo"};  // train_parallel's --backend, each run at every process count
  std::string output_dir = "results";
  std::string dataset = "mnist";
  std::string data_dir;
  int threads = 1;
  int64_t limit = 0;
  uint64_t seed = 42;
  std::string lr_scaling = "none";
  std::string allreduce_algorithm = "ring";  // the scaling model's algorithm
  double learning_rate = 0.01;
  int repeats = 1;
  std::string replot;
};

volatile sig_atomic_t g_signal = 0;

void on_signal(int sig) {
  if (!g_signal) g_signal = sig;
  const pid_t child = sys::current_child();
  if (child > 0) kill(child, sig);
}

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::string now_string(const char* format) {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, format, &tm);
  return buf;
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string exact(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

// ------------------------------------------------------------------ the all-reduce micro-benchmark
// A worker of the benchmark (started by launch_local): times Gloo all-reduces
// of growing size back to back, as a step's buckets go, and rank 0 writes
// {ranks, samples: [{bytes, seconds}]}.
int allreduce_benchmark_worker(const std::string& out) {
  auto opts = dist::gloo_options_from_env();
  opts.timeout = std::chrono::milliseconds(30000);
  opts.algorithm = "ring";  // the model's algorithm (and train_parallel's default)
  auto comm = dist::make_gloo_communicator(opts);
  const size_t sizes[] = {1, 256, 4096, 16384, 65536, 131072, 262144, 421642};
  json samples = json::array();
  std::vector<float> x(421642, 1.0f);
  for (size_t n : sizes) {
    const int calls = n <= 16384 ? 20 : 5, batches = n <= 16384 ? 15 : 9;
    for (int w = 0; w < 3; ++w) comm->allreduce_sum(x.data(), n);
    std::vector<double> per_call;
    for (int b = 0; b < batches; ++b) {
      comm->barrier();
      const auto t0 = Clock::now();
      for (int c = 0; c < calls; ++c) comm->allreduce_sum(x.data(), n);
      per_call.push_back(since(t0) / calls);
    }
    std::sort(per_call.begin(), per_call.end());
    // Both ranks time the same operations; rank 0's fastest batch is the measurement
    // (what the machine can do: slower batches met other processes' load).
    samples.push_back({{"bytes", n * sizeof(float)},
                       {"seconds", per_call.front()},
                       {"median_seconds", per_call[per_call.size() / 2]}});
  }
  comm->barrier();
  if (comm->rank() == 0) sys::write_file_atomic(out, json{{"ranks", comm->size()}, {"samples", samples}}.dump(2) + "\n");
  comm->barrier();
  return 0;
}

// Runs the benchmark with 2 ranks; returns the "allreduce_benchmark" calibration block.
json run_allreduce_benchmark(const std::string& dir) {
  const std::string out = dir + "/allreduce_benchmark.json";
  dist::LaunchOptions lo;
  lo.world_size = 2;
  lo.argv = {"/proc/self/exe", kBenchWorkerFlag, out};
  lo.job_name = "run_experiments (all-reduce benchmark)";
  json b = {{"status", "failed"}, {"ranks", 2}};
  try {
    const int rc = dist::launch_local(lo);
    // launch_local takes SIGINT / SIGTERM / SIGHUP itself while its job runs
    // (and forwards them): a user's Ctrl-C then shows only as its status.
    if (rc == 128 + SIGINT || rc == 128 + SIGTERM || rc == 128 + SIGHUP) g_signal = rc - 128;
    if (rc != 0) {
      b["error"] = "the benchmark exited with status " + std::to_string(rc);
      return b;
    }
    const json r = json::parse(read_text(out));
    std::vector<std::pair<double, double>> samples;
    for (const auto& s : r["samples"]) samples.push_back({s["bytes"].get<double>(), s["seconds"].get<double>()});
    const auto [alpha, beta] = report::fit_alpha_beta(samples, r.value("ranks", 2));
    b = {{"status", "ok"},
         {"ranks", r.value("ranks", 2)},
         {"method", "Gloo ring all-reduce over loopback TCP, before the training runs; per message size the fastest of "
                    "several batches of back-to-back calls; "
                    "weighted least squares (relative error) of t = 2(p-1) alpha + 2(p-1)/p n / beta"},
         {"samples", r["samples"]},
         {"alpha_s", alpha},
         {"beta_bytes_per_s", beta}};
    std::error_code ec;
    fs::remove(out, ec);  // its numbers live on in performance_metrics.json
  } catch (const std::exception& e) {
    b["error"] = e.what();
  }
  return b;
}

// ------------------------------------------------------------------ background load
// How much CPU other processes took while a run ran: all CPU time the kernel
// counted (/proc/stat, steal included) minus ours and our children's.
struct CpuSample {
  double busy_s = NAN, own_s = 0;
  Clock::time_point t = Clock::now();
};

double cpu_seconds(const rusage& u) {
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + 1e-6 * (u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

CpuSample cpu_sample() {
  CpuSample c;
  std::ifstream in("/proc/stat");
  std::string cpu;
  double user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  if (in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal && cpu == "cpu")
    c.busy_s = (user + nice + system + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
  rusage self{}, kids{};
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &kids);
  c.own_s = cpu_seconds(self) + cpu_seconds(kids);
  return c;
}

double background_cores(const CpuSample& a, const CpuSample& b) {
  const double wall = std::chrono::duration<double>(b.t - a.t).count();
  if (!std::isfinite(a.busy_s) || !std::isfinite(b.busy_s) || wall <= 0) return NAN;
  return std::max(0.0, ((b.busy_s - a.busy_s) - (b.own_s - a.own_s)) / wall);
}

// ------------------------------------------------------------------ the terminal
class Display {
 public:
  Display() : tty_(isatty(STDOUT_FILENO) != 0), start_(Clock::now()) {}
  bool tty() const { return tty_; }
  double elapsed() const { return since(start_); }

  void line(const std::string& s) {
    clear();
    std::cout << s << "\n";
    draw();
  }
  void status(const std::string& s) {
    status_ = s;
    if (tty_) draw();
  }
  void end_status() {
    clear();
    status_.clear();
  }

 private:
  void clear() {
    if (tty_ && drawn_) std::cout << "\r\033[K";
    drawn_ = false;
  }
  void draw() {
    if (!tty_ || status_.empty()) {
      std::cout << std::flush;
      return;
    }
    std::cout << "\r\033[K\033[1m" << status_ << "\033[0m" << std::flush;
    drawn_ = true;
  }

  bool tty_;
  Clock::time_point start_;
  std::string status_;
  bool drawn_ = false;
};

// ------------------------------------------------------------------ the runs
struct PlannedRun {
  int config = 0;  // index into the configurations
  int repeat = 1;
};

// Expected duration of a configuration relative to the serial run, before
// anything is measured (N processes share the cores).
double relative_cost(int processes, bool serial, int threads, int cores) {
  if (serial) return 1;
  const double fit = std::max(1.0, static_cast<double>(cores) / threads);
  return 1.15 / std::min(static_cast<double>(processes), fit);
}

struct Suite {
  Options o;
  std::string dir;        // the experiment directory
  std::string exe_dir;    // where train_serial and train_parallel are
  std::string data_dir;   // absolute
  std::vector<report::Configuration> configs;
  int cores = 1;
};

std::vector<std::string> trainer_argv(const Suite& s, const report::Configuration& c, const std::string& results) {
  const Options& o = s.o;
  std::vector<std::string> a = {s.exe_dir + "/" + c.program,
                                "--epochs", std::to_string(o.epochs),
                                "--batch-size", std::to_string(o.batch),
                                "--learning-rate", exact(o.learning_rate),
                                "--dataset", o.dataset,
                                "--data-dir", s.data_dir,
                                "--seed", std::to_string(o.seed),
                                "--threads", std::to_string(o.threads),
                                "--save-results", results,
                                "--no-progress"};  // one line per epoch, no live bar
  if (o.limit > 0) a.insert(a.end(), {"--limit", std::to_string(o.limit)});
  if (c.program == "train_parallel")
    a.insert(a.end(), {"--world-size", std::to_string(c.processes), "--lr-scaling", o.lr_scaling,
                       "--backend", c.backend});
  if (c.backend == "gloo") a.insert(a.end(), {"--allreduce-algorithm", o.allreduce_algorithm});  // Gloo's choice only
  return a;
}

// What the terminal calls a run: "serial", "2 processes, mpi".
std::string run_title(const report::Configuration& c) {
  return c.backend.empty() ? c.label : c.label + ", " + c.backend;
}

// Runs every planned run; returns false when interrupted.
bool run_all(Suite& s, const std::vector<PlannedRun>& plan) {
  Display d;
  double done_cost = 0, done_seconds = 0;
  for (size_t i = 0; i < plan.size() && !g_signal; ++i) {
    auto& c = s.configs[plan[i].config];
    const int repeat = plan[i].repeat;
    const bool many = s.o.repeats > 1;
    report::RunRecord rec;
    rec.repeat = repeat;
    const std::string suffix = many ? ".run" + std::to_string(repeat) : "";
    rec.results_file = many ? c.name + "_results" + suffix + ".json" : c.results_file;
    rec.log_file = "logs/" + c.name + suffix + ".log";
    const std::string results_path = s.dir + "/" + rec.results_file;
    std::error_code ec;
    fs::remove(results_path, ec);

    const double cost = relative_cost(c.processes, c.name == "serial", s.o.threads, s.cores);
    double remaining_cost = 0;
    for (size_t j = i + 1; j < plan.size(); ++j) {
      const auto& cj = s.configs[plan[j].config];
      remaining_cost += relative_cost(cj.processes, cj.name == "serial", s.o.threads, s.cores);
    }
    const std::string what =
        run_title(c) + (many ? ", repeat " + std::to_string(repeat) + "/" + std::to_string(s.o.repeats) : "");
    const std::string head = "[run " + std::to_string(i + 1) + "/" + std::to_string(plan.size()) + "] " + what;
    const auto run_start = Clock::now();
    int epochs_done = 0;
    std::vector<std::string> err_lines, last_lines;

    auto eta = [&]() -> double {
      const double elapsed = since(run_start);
      double unit = done_cost > 0 ? done_seconds / done_cost : NAN;  // seconds per unit of cost
      double current_total = NAN;
      if (epochs_done > 0) current_total = elapsed * s.o.epochs / epochs_done;
      else if (std::isfinite(unit)) current_total = std::max(elapsed, unit * cost);
      if (!std::isfinite(unit) && std::isfinite(current_total)) unit = current_total / cost;
      if (!std::isfinite(unit)) return NAN;
      return std::max(0.0, current_total - elapsed) + remaining_cost * unit;
    };
    auto status = [&] {
      const double e = eta();
      std::string st = head + (epochs_done ? "  epoch " + std::to_string(epochs_done) + "/" + std::to_string(s.o.epochs) : "") +
                       "  | elapsed " + report::format_duration(d.elapsed()) + "  ETA " +
                       (std::isfinite(e) ? "~" + report::format_duration(e) : std::string("--:--"));
      return st;
    };
    d.line(d.tty() ? head : status());  // a header that stays above the run's lines
    d.status(status());                 // on a terminal, a live line under them

    sys::ChildOptions co;
    co.argv = trainer_argv(s, c, results_path);
    co.log_path = s.dir + "/" + rec.log_file;
    {
      std::ofstream log(co.log_path);
      log << "$";
      for (const auto& a : co.argv) log << " " << shell_quote(a);
      log << "\n";
    }
    co.on_line = [&](const std::string& line, bool is_err) {
      if (line.empty()) return;
      last_lines.push_back(line);
      if (last_lines.size() > 8) last_lines.erase(last_lines.begin());
      if (is_err) {
        err_lines.push_back(line);
        if (err_lines.size() > 20) err_lines.erase(err_lines.begin());
        d.line("    " + line);
        return;
      }
      if (line.rfind("epoch ", 0) == 0) {
        ++epochs_done;
        d.line("    " + line);
        d.status(status());
      } else if (line.rfind("train_parallel: OVERSUBSCRIBED", 0) == 0) {
        d.line("    " + line);
      }
    };
    co.on_tick = [&] { d.status(status()); };
    co.tick_s = 1;
    const CpuSample before = cpu_sample();
    const sys::ChildResult res = sys::run_child(co);
    rec.background_cores = background_cores(before, cpu_sample());
    rec.wall_s = res.seconds;
    rec.exit_status = res.exit_status;
    d.end_status();

    if (res.exit_status == 0) {
      try {
        rec.results = json::parse(read_text(results_path));
        rec.ok = rec.results.is_object() && rec.results.contains("total_time_s");
        if (!rec.ok) rec.error = "the results file " + rec.results_file + " lacks total_time_s";
      } catch (const std::exception& e) {
        rec.error = "cannot read the results file " + rec.results_file + ": " + e.what();
      }
    } else {
      rec.error.clear();
      const auto& src = err_lines.empty() ? last_lines : err_lines;
      for (size_t k = src.size() > 6 ? src.size() - 6 : 0; k < src.size(); ++k) rec.error += (rec.error.empty() ? "" : "\n") + src[k];
      if (rec.error.empty()) rec.error = "exited with status " + std::to_string(res.exit_status) + " and no message";
    }
    char summary[320];
    if (rec.ok) {
      std::snprintf(summary, sizeof summary, "    done: %.1f s (trainer's total %.1f s), %.0f samples/s, test accuracy %.2f%%",
                    res.seconds, rec.results.value("total_time_s", 0.0), rec.results.value("throughput_samples_per_s", 0.0),
                    100 * rec.results.value("final_test_accuracy", 0.0));
      std::string line = summary;
      if (rec.background_cores > kBusyCores) {
        std::snprintf(summary, sizeof summary, "; other processes used %.1f cores meanwhile: timing disturbed",
                      rec.background_cores);
        line += summary;
      }
      d.line(line);
      done_cost += cost;
      done_seconds += res.seconds;
    } else if (g_signal) {
      d.line("    interrupted (" + std::string(strsignal(g_signal)) + ")");
    } else {
      d.line("    FAILED (exit status " + std::to_string(res.exit_status) + "): " +
             rec.error.substr(0, rec.error.find('\n')) + "  [log: " + rec.log_file + "]");
      rec.error = rec.error.empty() ? "failed" : rec.error;
    }
    if (!(g_signal && !rec.ok)) c.runs.push_back(std::move(rec));
  }
  return !g_signal;
}

// ------------------------------------------------------------------ the summary
std::vector<report::ParamBlock> param_layout() {
  std::vector<report::ParamBlock> out;
  for (const auto& p : nn::Cnn::param_specs()) out.push_back({p.name.substr(0, p.name.find('.')), p.offset, p.count});
  return out;
}

std::vector<std::string> layer_names() {
  std::vector<std::string> out;
  for (int l = 0; l < nn::kNumLayers; ++l) out.push_back(nn::layer_name(l));
  return out;
}

// The gradient buckets as the trainer builds them (src/train/trainer.cpp: one
// segment per layer, plus the stop flag after the parameters), cut by GradSync
// itself: [first, last) elements in all-reduce order.
std::vector<std::pair<size_t, size_t>> gradient_buckets(size_t bucket_bytes) {
  return train::gradient_layout(bucket_bytes).buckets;
}

json scaling_model(const std::vector<report::Configuration>& configs, const json& bench, const json& metrics,
                   int cores, int threads) {
  // Calibrated with, and compared to, the runs of one backend.
  const std::string backend = report::model_backend(report::backends(metrics));
  const report::Configuration* serial = nullptr;
  for (const auto& c : configs)
    if (c.name == "serial") serial = &c;
  if (!serial || !serial->representative_results())
    return {{"status", "unavailable"}, {"reason", "the serial run, which calibrates it, failed"}};
  const json& sr = *serial->representative_results();
  // The bucket size the parallel runs used (else the serial run's setting).
  const json* bucket_src = &sr;
  for (const auto& c : configs)
    if (c.backend == backend && c.representative_results()) {
      bucket_src = c.representative_results();
      break;
    }
  const json alr = bucket_src->value("allreduce", json::object());
  const size_t bucket_bytes = alr.value("bucket_bytes", size_t{64} << 10);
  const std::string compression = bucket_src->value("config", json::object()).value("grad_compression", std::string("none"));
  report::ModelParams mp;
  std::vector<std::pair<size_t, size_t>> buckets;
  try {
    buckets = gradient_buckets(bucket_bytes);
    mp = report::calibrate(sr, layer_names(), param_layout(), buckets, compression == "bf16" ? 2 : 4);
  } catch (const std::exception& e) {
    return {{"status", "unavailable"}, {"reason", std::string("cannot calibrate it from the serial run: ") + e.what()}};
  }
  json cal = {{"from", serial->runs[serial->representative()].results_file},
              {"buckets", {{"bucket_bytes", bucket_bytes},
                           {"count", buckets.size()},
                           {"count_reported_by_trainer", alr.value("num_buckets", 0)},
                           {"compression", compression}}},
              {"allreduce_benchmark", bench}};
  if (alr.value("num_buckets", size_t{0}) != buckets.size())
    cal["buckets"]["warning"] = "the trainer reported a different number of buckets: the model's bucket layout may be off";

  // This machine: latency from the micro-benchmark, bandwidth as the training
  // run saw it (all-reduce busy time per step of the smallest N > 1, competing with compute).
  double alpha = bench.value("status", "") == "ok" ? bench.value("alpha_s", 0.0) : 0.0;
  double beta = bench.value("status", "") == "ok" ? bench.value("beta_bytes_per_s", 0.0) : 0.0;
  for (size_t i = 0; i < configs.size(); ++i) {
    const auto& c = configs[i];
    const json* r = c.representative_results();
    if (c.backend != backend || c.processes < 2 || !r) continue;
    const auto sums = report::phase_sums(*r);
    const double steps = static_cast<double>(r->value("steps_per_epoch", 0)) * sums.epochs;
    if (!(steps > 0) || !(sums.allreduce_busy > 0)) continue;
    const double busy = sums.allreduce_busy / steps;
    const double b = report::effective_beta(busy, mp.buckets, c.processes, alpha);
    cal["training_allreduce"] = {{"processes", c.processes},
                                 {"busy_per_step_s", busy},
                                 {"alpha_s", alpha},
                                 {"beta_effective_bytes_per_s", std::isfinite(b) ? json(b) : json(nullptr)}};
    if (std::isfinite(b)) beta = b;
    break;
  }
  int max_p = 8;
  std::vector<std::pair<int, double>> measured;
  for (const auto& m : metrics["configurations"]) {
    if (report::backend_of(m) != backend) continue;
    max_p = std::max(max_p, m.value("processes", 1));
    const json& sp = m["speedup"];
    measured.push_back({m.value("processes", 1), sp["median"].is_number() ? sp["median"].get<double>() : NAN});
  }
  report::MachineComm mc{alpha, beta, cores, threads, max_p};
  json j = report::model_json(mp, report::default_networks(), beta > 0 ? &mc : nullptr, measured);
  j["calibration"] = cal;
  j["measured_backend"] = backend;
  j["networks_assumptions"] =
      "Gloo over TCP; bandwidth 90% of the line rate; per-message latency 30 / 20 / 10 us for 10 / 25 / 100 Gbit/s "
      "(kernel TCP stack plus one switch hop); every rank computes as fast as one process of the serial run";
  return j;
}

// Writes the results copies, performance_metrics.json, the plots and
// report.md; prints the table. Returns the exit status.
int finish(const Suite& s, const json& experiment, const json& bench, const std::string& gnuplot,
           const std::string& gnuplot_problem, bool interrupted) {
  // With repeats, the canonical results file is the median run's.
  for (const auto& c : s.configs) {
    const int rep = c.representative();
    if (rep >= 0 && c.runs[rep].results_file != c.results_file) {
      const std::string text = read_text(s.dir + "/" + c.runs[rep].results_file);
      sys::write_file_atomic(s.dir + "/" + c.results_file, text.empty() ? c.runs[rep].results.dump(2) + "\n" : text);
    }
  }
  const json machine = train::machine_json();
  json versions = train::versions_json();
  for (const auto& c : s.configs)
    if (const json* r = c.representative_results(); r && r->contains("versions")) versions.update((*r)["versions"]);
  if (!gnuplot.empty()) {
    sys::ChildOptions o;
    o.argv = {gnuplot, "--version"};
    std::string v;
    o.on_line = [&](const std::string& l, bool) { v = v.empty() ? l : v; };
    try {
      sys::run_child(o);
      if (v.rfind("gnuplot ", 0) == 0) versions["gnuplot"] = v.substr(8);
    } catch (const std::exception&) {
    }
  }
  json m = report::performance_metrics(experiment, machine, versions, s.configs, json::object());
  m["scaling_model"] = scaling_model(s.configs, bench, m, s.cores, s.o.threads);
  if (interrupted) m["status"] = "interrupted";
  const std::string metrics_path = s.dir + "/performance_metrics.json";
  sys::write_file_atomic(metrics_path, m.dump(2) + "\n");

  std::vector<std::string> drawn, notes;
  bool plot_failed = false;
  if (!gnuplot_problem.empty()) {
    notes.push_back("no plots: " + gnuplot_problem + "; " + report::kGnuplotInstallHint +
                    ", then redraw with: run_experiments --replot " + s.dir);
    plot_failed = true;
  } else if (!interrupted) {
    std::map<std::string, json> results;
    for (const auto& c : s.configs)
      if (const json* r = c.representative_results()) results[c.name] = *r;
    const auto plots = report::make_plots(m, results);
    if (plots.empty()) notes.push_back("no plots: no run succeeded");
    std::cout << "drawing " << plots.size() << " plots with gnuplot ..." << std::flush;
    for (const auto& p : plots) {
      for (const auto& [name, text] : p.data) sys::write_file_atomic(s.dir + "/" + name, text);
      sys::write_file_atomic(s.dir + "/" + p.name + ".gp", p.script);
      const auto run = report::run_gnuplot(gnuplot, s.dir, p.name + ".gp");
      if (run.ok && fs::exists(s.dir + "/" + p.name + ".png")) {
        drawn.push_back(p.name);
      } else {
        plot_failed = true;
        notes.push_back("gnuplot could not draw " + p.name + ".png: " + run.error);
      }
    }
    std::cout << " done\n";
  }
  sys::write_file_atomic(s.dir + "/report.md", report::report_markdown(m, drawn, notes));

  std::cout << "\n" << report::results_table_text(m) << "\n";
  for (const auto& sentence : report::backend_comparison_sentences(m.value("backend_comparison", json::array())))
    std::cout << sentence << "\n";
  for (const auto& n : notes)
    if (gnuplot_problem.empty()) std::cerr << "run_experiments: " << n << "\n";  // else the error below says it
  if (m.contains("measurement") && m["measurement"]["background_load_cores"]["max"].is_number() &&
      m["measurement"]["background_load_cores"]["max"].get<double>() > kBusyCores)
    std::cerr << "run_experiments: warning: other processes used up to "
              << report::format_number(m["measurement"]["background_load_cores"]["max"].get<double>(), 1)
              << " cores during the runs: the timings are disturbed; rerun on a quiet machine, or with --repeats 3\n";
  const int failed = m.value("failed_runs", 0);
  if (failed) std::cerr << "run_experiments: " << failed << " run(s) FAILED; see performance_metrics.json and logs/\n";
  std::cout << "report: " << s.dir << "/report.md\n";
  if (interrupted) return 128 + g_signal;
  if (!gnuplot_problem.empty()) {
    std::cerr << "run_experiments: error: " << gnuplot_problem << "; the JSON files and report.md are written, the plots are not\n"
              << "  fix: " << report::kGnuplotInstallHint << ", then: run_experiments --replot " << s.dir << "\n";
    return 1;
  }
  return failed || plot_failed ? 1 : 0;
}

std::vector<report::Configuration> plan_configurations(const Options& o) {
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

// Each value once, in the order given.
std::vector<std::string> first_occurrences(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  for (const auto& v : values)
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  return out;
}

void install_signal_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaction(s, &sa, nullptr);
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

int run_suite(const Options& o, const std::string& command) {
  Suite s;
  s.o = o;
  s.cores = sys::online_cores();
  // 1. Everything that can be wrong is checked before the first run.
  check_backends(o.backends);
  s.exe_dir = sys::self_exe_dir();
  for (const char* prog : {"train_serial", "train_parallel"}) {
    const std::string path = s.exe_dir + "/" + prog;
    if (access(path.c_str(), X_OK) != 0)
      throw UserError(std::string(prog) + " not found next to run_experiments (" + path + ")",
                      "build every program (scripts/build.sh) and run run_experiments from the build directory");
  }
  train::TrainConfig tc;
  tc.dataset = o.dataset;
  tc.data_dir = o.data_dir;
  tc.limit = o.limit;
  s.data_dir = fs::absolute(o.data_dir.empty() ? data::default_data_dir(o.dataset) : o.data_dir).lexically_normal().string();
  tc.data_dir = s.data_dir;
  std::cout << "checking the data in " << s.data_dir << " ..." << std::flush;
  try {
    train::load_datasets(tc);  // throws UserError naming the missing or corrupt file and the fix
  } catch (...) {
    std::cout << " failed" << std::endl;
    throw;
  }
  std::cout << " ok\n";
  const std::string gnuplot = report::find_gnuplot();
  const std::string gnuplot_problem = report::check_gnuplot(gnuplot);
  if (!gnuplot_problem.empty())
    std::cerr << "run_experiments: warning: " << gnuplot_problem << ": the runs go on and the JSON files are written, "
              << "but there will be no plots (" << report::kGnuplotInstallHint << ")\n";
  s.dir = make_experiment_dir(o.output_dir);
  sys::check_writable(s.dir + "/performance_metrics.json");
  fs::create_directories(s.dir + "/logs");
  s.configs = plan_configurations(o);

  json experiment = {{"directory", s.dir},
                     {"started", now_string("%Y-%m-%d %H:%M:%S %Z")},
                     {"command", command},
                     {"config",
                      {{"epochs", o.epochs},
                       {"batch_size", o.batch},
                       {"process_counts", o.processes},
                       {"backends", o.backends},
                       {"threads", o.threads},
                       {"dataset", o.dataset},
                       {"data_dir", s.data_dir},
                       {"limit", o.limit},
                       {"seed", o.seed},
                       {"learning_rate", o.learning_rate},
                       {"lr_scaling", o.lr_scaling},
                       {"allreduce_algorithm", o.allreduce_algorithm},
                       {"repeats", o.repeats}}}};

  std::vector<PlannedRun> plan;
  for (int r = 1; r <= o.repeats; ++r)  // rounds: a slow spell of the machine hits every configuration alike
    for (size_t c = 0; c < s.configs.size(); ++c) plan.push_back({static_cast<int>(c), r});
  std::cout << "experiment: " << s.dir << "\n"
            << plan.size() << " runs: serial";
  for (int p : o.processes) std::cout << ", " << p << " process" << (p == 1 ? "" : "es");
  std::cout << (o.backends.size() > 1 ? " on each of the backends " : " on the backend ");
  for (size_t i = 0; i < o.backends.size(); ++i) std::cout << (i ? ", " : "") << o.backends[i];
  if (o.repeats > 1) std::cout << " (each " << o.repeats << " times)";
  std::cout << "; " << o.epochs << " epoch(s), batch " << o.batch << " per process, " << o.threads
            << " thread(s) per process, " << s.cores << " cores\n";

  {
    double load = 0;
    std::ifstream("/proc/loadavg") >> load;
    if (load > s.cores * 0.5)
      std::cerr << "run_experiments: warning: the machine is busy (load average " << report::format_number(load, 1)
                << " over the last minute on " << s.cores
                << " cores): other processes will slow the runs down unevenly; the report records how much\n";
  }
  std::cout << "measuring this machine's all-reduce (2 ranks, loopback) ..." << std::flush;
  const json bench = run_allreduce_benchmark(s.dir);
  if (bench.value("status", "") == "ok")
    std::printf(" alpha %.1f us, beta %.2f GB/s\n", 1e6 * bench.value("alpha_s", 0.0), bench.value("beta_bytes_per_s", 0.0) / 1e9);
  else
    std::cout << " failed (" << bench.value("error", "?") << "); the model will use the training runs only\n";
  std::cout << std::flush;

  const bool completed = run_all(s, plan);
  experiment["finished"] = now_string("%Y-%m-%d %H:%M:%S %Z");
  return finish(s, experiment, bench, gnuplot, gnuplot_problem, !completed);
}

// Redraws an experiment from its JSON files.
int replot(const std::string& dir) {
  const std::string path = dir + "/performance_metrics.json";
  if (!fs::exists(path)) throw UserError(path + " does not exist", "give --replot an experiment directory made by run_experiments");
  json m;
  try {
    m = json::parse(read_text(path));
  } catch (const std::exception& e) {
    throw UserError("cannot read " + path + ": " + e.what(), "give --replot an experiment directory made by run_experiments");
  }
  Suite s;
  s.dir = dir;
  s.cores = m.value("machine", json::object()).value("cores", sys::online_cores());
  const json cfg = m["experiment"].value("config", json::object());
  s.o.threads = cfg.value("threads", 1);
  s.o.repeats = cfg.value("repeats", 1);
  for (const auto& c : m.value("configurations", json::array())) {
    report::Configuration rc;
    rc.name = c.value("name", "");
    rc.label = c.value("label", rc.name);
    rc.program = c.value("program", "");
    rc.backend = report::backend_of(c);  // gloo for a directory written before there was a choice
    rc.processes = c.value("processes", 1);
    rc.results_file = rc.name + "_results.json";
    for (const auto& r : c.value("runs", json::array())) {
      report::RunRecord rr;
      rr.repeat = r.value("repeat", 1);
      rr.exit_status = r.value("exit_status", -1);
      rr.log_file = r.value("log_file", "");
      rr.wall_s = r.value("wall_s", 0.0);
      rr.error = r.value("error", "");
      if (r.contains("background_load_cores") && r["background_load_cores"].is_number())
        rr.background_cores = r["background_load_cores"].get<double>();
      if (r.value("status", "") == "ok" && r["results_file"].is_string()) {
        rr.results_file = r["results_file"];
        try {
          rr.results = json::parse(read_text(dir + "/" + rr.results_file));
          rr.ok = true;
        } catch (const std::exception& e) {
          rr.error = "cannot read " + rr.results_file + ": " + e.what();
        }
      }
      rc.runs.push_back(rr);
    }
    s.configs.push_back(rc);
  }
  const json bench = m.value("scaling_model", json::object())
                         .value("calibration", json::object())
                         .value("allreduce_benchmark", json{{"status", "missing"}});
  const std::string gnuplot = report::find_gnuplot();
  return finish(s, m["experiment"], bench, gnuplot, report::check_gnuplot(gnuplot), false);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == kBenchWorkerFlag)
    return train::run_main("run_experiments (all-reduce benchmark)", [&] { return allreduce_benchmark_worker(argv[2]); });

  Options o;
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
  app.add_option("--replot", o.replot, "Only redraw the plots and report of an existing experiment directory");
  try {
    auto args = train::normalise_args(argc, argv);
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  std::sort(o.processes.begin(), o.processes.end());
  o.processes.erase(std::unique(o.processes.begin(), o.processes.end()), o.processes.end());
  o.backends = first_occurrences(o.backends);
  std::string command = "run_experiments";
  for (int i = 1; i < argc; ++i) command += " " + shell_quote(argv[i]);
  install_signal_handlers();
  signal(SIGPIPE, SIG_IGN);
  return train::run_main("run_experiments", [&] { return o.replot.empty() ? run_suite(o, command) : replot(o.replot); });
}
