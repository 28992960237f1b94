// ddp_bench: what this machine can do and how close the program comes, in
// one table.
//
//   1. The FP32 FMA peak of one core, measured; the limit of this model on
//      one core = peak / 25.0 MFLOP per sample.
//   2. The gradient all-reduce alone (GradSync over Gloo, 2 forked ranks),
//      float and bf16: milliseconds per step.
//   3. Serial training in this process on real MNIST, batch 64, 1 and 2
//      threads: samples/s after warm-up, and the time of each part of a step
//      (forward / backward of every layer, loss, optimizer, data) with the
//      layers' GFLOP/s.
//   3b. The same in bf16 mixed precision (--precision bf16), interleaved with
//      the fp32 runs, where the CPU has native bf16: the bf16 dot-product
//      peak (vdpbf16ps, and AMX's tile product where there is AMX), the bf16
//      limit, and the bf16 throughput as a ratio to fp32 and a share of it.
//   4. train_serial and train_parallel (2, 4, 8 ranks) as child processes on
//      the same --limit: throughput (from their results files), speed-up
//      over serial, start-up time to the first step, peak RSS of every rank.
//
// Every figure is measured --repeats times; the table shows the median and
// the range. The machine may be shared: beside each figure is how many cores'
// worth of CPU other processes used meanwhile (from /proc/stat).
#include <time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "bench.h"
#include "common/error.h"
#include "data/dataset.h"
#include "data/sampler.h"
#include "dist/communicator.h"
#include "dist/grad_sync.h"
#include "nn/cnn.h"
#include "optim/sgd.h"
#include "sys/cpu_load.h"
#include "sys/machine.h"
#include "sys/process.h"
#include "train/step.h"
#include "results/run_result.h"

using namespace ddp;
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// ---- targets (issue 6) ----
constexpr double kTargetSerial = 3800;      // samples/s, 1 thread
constexpr double kTargetThreads2 = 1.7;     // x the 1-thread figure
constexpr double kTargetRanks2 = 1.9;       // x serial
constexpr double kTargetOversub = 0.9;      // x the 2-rank figure, at 4 and 8 ranks
constexpr double kTargetStartup = 0.5;      // s
constexpr double kTargetRss = 150;          // MB per rank
constexpr double kTargetBf16 = 1.6;         // x fp32, serial, 1 thread (issue 15)

struct Options {
  int repeats = 3;
  int warmup = 20;
  int steps = 200;
  int batch = 64;
  int64_t limit = 25600;
  std::vector<int> ranks = {2, 4, 8};
  std::string data_dir = "data/mnist";
  std::string bin_dir;  // default: the directory above this program's
  std::vector<std::string> parallel_args;
  std::string json;
  bool skip_parallel = false;
};

// A figure measured several times.
struct Figure {
  std::vector<double> v;
  double median() const {
    if (v.empty()) return NAN;
    auto s = v;
    std::sort(s.begin(), s.end());
    return s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
  }
  double min() const { return v.empty() ? NAN : *std::min_element(v.begin(), v.end()); }
  double max() const { return v.empty() ? NAN : *std::max_element(v.begin(), v.end()); }
  nlohmann::json json() const { return {{"median", median()}, {"min", min()}, {"max", max()}, {"all", v}}; }
};

// CPU used by other processes while `f` ran, in cores.
struct LoadProbe {
  sys::CpuSample start = sys::cpu_sample();
  double others() const {
    const double cores = sys::background_cores(start, sys::cpu_sample());
    return std::isfinite(cores) ? cores : 0.0;
  }
};

double seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

// FLOPs of each layer per sample, forward and backward, as Cnn::flops_per_sample counts them.
struct LayerFlops {
  double fwd = 0, bwd = 0;
};
LayerFlops layer_flops(int layer) {
  const double conv1 = 2.0 * 32 * 28 * 28 * 1 * 9, conv2 = 2.0 * 64 * 14 * 14 * 32 * 9;
  const double fc1 = 2.0 * 128 * 3136, fc2 = 2.0 * 10 * 128;
  switch (layer) {
    case nn::kConv1: return {conv1, conv1};  // no input gradient
    case nn::kConv2: return {conv2, 2 * conv2};
    case nn::kFc1: return {fc1, 2 * fc1};
    case nn::kFc2: return {fc2, 2 * fc2};
    default: return {};  // pooling, dropout, loss: memory-bound, not counted
  }
}

// ---- serial training in this process ----

struct SerialRun {
  double samples_per_s = 0;
  double step_s = 0, data_s = 0, optimizer_s = 0, sync_s = 0;  // per step
  nn::LayerTimes layers;                                          // summed over the measured steps
  int steps = 0;
  double others = 0;
  double samples_per_cpu_s = 0;  // per second of this process's CPU time
};

double process_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

SerialRun train_in_process(const data::Dataset& train, int threads, const Options& o,
                           nn::Precision precision = nn::Precision::fp32) {
  nn::set_compute_threads(threads);
  // The model, optimizer and gradient synchroniser as the trainer builds
  // them, over a world of one; each step is the trainer's (train::train_step).
  const train::GradientLayout layout = train::gradient_layout(64 * 1024);
  nn::Cnn net(0.5f, layout.count - layout.num_params, precision);
  net.init(42);
  optim::Sgd sgd(layout.num_params, 0.9f);
  dist::LocalCommunicator local;
  dist::GradSync sync(local, net.grads(), layout.count, 64 * 1024, layout.segments);
  const train::StepModel model{net, sgd, sync};
  const auto idx = data::shard_indices(train.size, 42, 0, 0, 1);
  const int b = o.batch;
  std::vector<int64_t> batch(static_cast<size_t>(b));
  SerialRun r;
  auto step = [&](int64_t s, bool timed) {
    for (int j = 0; j < b; ++j)
      batch[static_cast<size_t>(j)] = idx[static_cast<size_t>((s * b + j) % static_cast<int64_t>(idx.size()))];
    const train::StepResult res =
        train::train_step(model, train, {batch, train::dropout_seed(42, s, 0), 0.01, false});
    if (timed) {
      r.data_s += res.times.data;
      r.sync_s += res.times.allreduce_wait;
      r.optimizer_s += res.times.optimizer;
    }
  };
  int64_t s = 0;
  for (; s < o.warmup; ++s) step(s, false);
  net.times().clear();
  LoadProbe probe;
  const double cpu0 = process_cpu_seconds();
  const auto t0 = Clock::now();
  for (int k = 0; k < o.steps; ++k, ++s) step(s, true);
  const double wall = seconds(t0, Clock::now());
  r.samples_per_cpu_s = static_cast<double>(o.steps) * b / (process_cpu_seconds() - cpu0);
  r.others = probe.others();
  r.steps = o.steps;
  r.samples_per_s = static_cast<double>(o.steps) * b / wall;
  r.step_s = wall / o.steps;
  r.data_s /= o.steps;
  r.sync_s /= o.steps;
  r.optimizer_s /= o.steps;
  r.layers = net.times();
  return r;
}

// ---- the programs as children ----

struct ProgramRun {
  bool ok = false;
  double throughput = 0, startup_s = 0, allreduce_wait_s = 0, accuracy = 0;
  double max_rank_rss_mb = 0, tree_rss_mb = 0, launcher_rss_mb = 0;
  std::vector<double> rank_rss_mb;
  double others = 0;
  std::string error;
};

ProgramRun run_program(const Options& o, int world, const fs::path& tmp, int repeat) {
  const fs::path results = tmp / ("w" + std::to_string(world) + "_r" + std::to_string(repeat) + ".json");
  std::vector<std::string> argv;
  if (world == 1) {
    argv = {(fs::path(o.bin_dir) / "train_serial").string()};
  } else {
    argv = {(fs::path(o.bin_dir) / "train_parallel").string(), "--world-size", std::to_string(world)};
    argv.insert(argv.end(), o.parallel_args.begin(), o.parallel_args.end());
  }
  for (const char* a : {"--epochs", "1", "--threads", "1", "--no-progress"}) argv.push_back(a);
  argv.insert(argv.end(), {"--batch-size", std::to_string(o.batch), "--limit", std::to_string(o.limit),
                           "--data-dir", o.data_dir, "--save-results", results.string()});
  LoadProbe probe;
  const auto c = bench::run_and_watch(argv);
  ProgramRun r;
  r.others = probe.others();
  if (c.exit_code != 0) {
    r.error = argv[0] + " exited with " + std::to_string(c.exit_code) + ":\n" + c.output;
    return r;
  }
  try {
    const results::RunResult j = results::read_results_file(results.string());  // errors name the file
    if (j.epochs.empty()) throw std::runtime_error(results.string() + ": the run recorded no epoch");
    r.throughput = j.throughput;
    r.startup_s = j.startup_s;
    r.accuracy = j.final_test_accuracy;
    r.allreduce_wait_s = j.epochs.front().phases.allreduce_wait;
  } catch (const std::exception& e) {
    r.error = e.what();
    return r;
  }
  r.tree_rss_mb = c.tree_max_rss_mb;
  if (world == 1) {
    r.rank_rss_mb = {c.self_hwm_mb > 0 ? c.self_hwm_mb : c.tree_max_rss_mb};
  } else {
    r.rank_rss_mb = c.children_hwm_mb;
    r.launcher_rss_mb = c.self_hwm_mb;
  }
  r.max_rank_rss_mb = r.rank_rss_mb.empty() ? NAN : *std::max_element(r.rank_rss_mb.begin(), r.rank_rss_mb.end());
  r.ok = true;
  return r;
}

// ---- printing ----

std::string fmt(const char* f, double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

std::string with_commas(double x) {
  if (!std::isfinite(x)) return "-";
  const long v = std::lround(x);
  std::string s = std::to_string(std::labs(v));
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return (v < 0 ? "-" : "") + s;
}

// "median  [min .. max]"
std::string range(const Figure& f, const char* format) {
  if (f.v.empty()) return "-";
  return fmt(format, f.median()) + "  [" + fmt(format, f.min()) + " .. " + fmt(format, f.max()) + "]";
}
std::string range_commas(const Figure& f) {
  if (f.v.empty()) return "-";
  return with_commas(f.median()) + "  [" + with_commas(f.min()) + " .. " + with_commas(f.max()) + "]";
}

void row(const std::string& what, const std::string& value, const std::string& extra, const std::string& target,
         const char* verdict, double others) {
  std::printf("%-42s %-32s %-30s %-18s %-5s %s\n", what.c_str(), value.c_str(), extra.c_str(), target.c_str(),
              verdict, std::isfinite(others) ? fmt("%.2f", others).c_str() : "");
}

const char* verdict(bool ok) { return ok ? "ok" : "MISS"; }

double mean(const std::vector<double>& v) {
  return v.empty() ? NAN : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
}

// The split of a step by layer (in process; mean over every measured step of
// every repeat), on 1 thread (runs1) and 2 (runs2). `what` goes into the title.
void print_step_split(const char* what, const std::vector<SerialRun>& runs1, const std::vector<SerialRun>& runs2,
                      const Options& o, nlohmann::json& split_json, nlohmann::json& step_us) {
  auto split = [&](const std::vector<SerialRun>& runs, int layer, bool fwd) {
    double s = 0;
    int n = 0;
    for (const auto& r : runs) {
      s += fwd ? r.layers.forward_s[layer] : r.layers.backward_s[layer];
      n += r.steps;
    }
    return s / n;
  };
  auto per_step = [&](const std::vector<SerialRun>& runs, double SerialRun::*field) {
    double s = 0;
    for (const auto& r : runs) s += r.*field;
    return s / static_cast<double>(runs.size());
  };
  const double flops = nn::Cnn::flops_per_sample();
  std::printf("\nstep of batch %d%s, in process (mean over %d x %d steps): microseconds and GFLOP/s\n", o.batch,
              what, o.repeats, o.steps);
  std::printf("%-10s %10s %8s %10s %8s %7s  | 2 threads: %9s %8s %9s %8s\n", "part", "fwd us", "GF/s", "bwd us",
              "GF/s", "% step", "fwd us", "GF/s", "bwd us", "GF/s");
  const double step1 = per_step(runs1, &SerialRun::step_s);
  double total1 = 0, total2 = 0;
  split_json = nlohmann::json::object();
  for (int l = 0; l < nn::kNumLayers; ++l) {
    const auto fl = layer_flops(l);
    const double f1 = split(runs1, l, true), b1 = split(runs1, l, false);
    const double f2 = split(runs2, l, true), b2 = split(runs2, l, false);
    total1 += f1 + b1;
    total2 += f2 + b2;
    auto gf = [&](double flop, double s) { return flop > 0 ? fmt("%8.1f", flop * o.batch / s / 1e9) : std::string("       -"); };
    std::printf("%-10s %10.1f %s %10.1f %s %6.1f%%  |            %9.1f %s %9.1f %s\n", nn::layer_name(l), f1 * 1e6,
                gf(fl.fwd, f1).c_str(), b1 * 1e6, gf(fl.bwd, b1).c_str(), 100 * (f1 + b1) / step1, f2 * 1e6,
                gf(fl.fwd, f2).c_str(), b2 * 1e6, gf(fl.bwd, b2).c_str());
    split_json[nn::layer_name(l)] = {{"forward_us", f1 * 1e6}, {"backward_us", b1 * 1e6},
                                     {"forward_us_2_threads", f2 * 1e6}, {"backward_us_2_threads", b2 * 1e6}};
  }
  const double d1 = per_step(runs1, &SerialRun::data_s), d2 = per_step(runs2, &SerialRun::data_s);
  const double p1 = per_step(runs1, &SerialRun::optimizer_s), p2 = per_step(runs2, &SerialRun::optimizer_s);
  const double s1 = per_step(runs1, &SerialRun::sync_s), s2 = per_step(runs2, &SerialRun::sync_s);
  const double w1 = per_step(runs1, &SerialRun::step_s), w2 = per_step(runs2, &SerialRun::step_s);
  auto line = [&](const char* what, double a, double b) {
    std::printf("%-10s %10.1f %8s %10s %8s %6.1f%%  |            %9.1f\n", what, a * 1e6, "", "", "", 100 * a / w1,
                b * 1e6);
  };
  line("data", d1, d2);
  line("optimizer", p1, p2);
  line("grad sync", s1, s2);
  line("other", w1 - total1 - d1 - p1 - s1, w2 - total2 - d2 - p2 - s2);
  std::printf("%-10s %10.1f %8.1f %10s %8s %6.1f%%  |            %9.1f %8.1f\n", "step", w1 * 1e6,
              flops * o.batch / w1 / 1e9, "", "", 100.0, w2 * 1e6, flops * o.batch / w2 / 1e9);
  step_us = {{"1_thread", w1 * 1e6}, {"2_threads", w2 * 1e6}};
}

// ---- bf16 (issue 15) ----

// The bf16 limits of one core: peak / FLOP per sample, for vdpbf16ps and for
// AMX (NaN where absent), and the one of the unit oneDNN's conv2 kernel
// (87% of the FLOPs) runs on here.
struct Bf16Limits {
  double dot = NAN, amx = NAN, used = NAN;
};

Bf16Limits bf16_peak_rows(const Options& o, nlohmann::json& out) {
  Figure dot, amx;
  LoadProbe probe;
  for (int r = 0; r < o.repeats; ++r) {
    if (const auto p = bench::measure_bf16_dot_peak(0.5); p.gflops > 0) dot.v.push_back(p.gflops_per_cpu_s);
    if (const auto p = bench::measure_amx_bf16_peak(0.5); p.gflops > 0) amx.v.push_back(p.gflops_per_cpu_s);
  }
  const double flops = nn::Cnn::flops_per_sample(), others = probe.others();
  Bf16Limits l;
  if (!dot.v.empty()) l.dot = dot.max() * 1e9 / flops;
  if (!amx.v.empty()) l.amx = amx.max() * 1e9 / flops;
  std::string conv2;
  for (const auto& [what, impl] : nn::Cnn(0.5f, 0, nn::Precision::bf16).implementations(o.batch))
    if (what == "conv2.forward") conv2 = impl;
  const bool on_amx = conv2.find("amx") != std::string::npos;
  l.used = on_amx ? l.amx : l.dot;
  const std::string per = " / " + fmt("%.1f", flops / 1e6) + " MFLOP";
  if (!dot.v.empty()) {
    row("bf16 dot-product peak, 1 core (vdpbf16ps)", range(dot, "%.1f") + " GFLOP/s", "per CPU-second", "", "", others);
    row("  bf16 limit = that" + per, with_commas(l.dot) + " samples/s", on_amx ? "" : "oneDNN's conv2 runs here", "",
        "", NAN);
  }
  if (!amx.v.empty()) {
    row("bf16 AMX tile peak, 1 core (tdpbf16ps)", range(amx, "%.1f") + " GFLOP/s", "per CPU-second", "", "", others);
    row("  bf16 limit = that" + per, with_commas(l.amx) + " samples/s", on_amx ? "oneDNN's conv2 runs here" : "", "",
        "", NAN);
  }
  out["bf16_peak_gflops_per_cpu_s"] = {{"vdpbf16ps", dot.json()}, {"amx", amx.json()}};
  out["bf16_limit_samples_per_s"] = {{"vdpbf16ps", l.dot}, {"amx", l.amx}, {"conv2_unit", on_amx ? "amx" : "vdpbf16ps"}};
  out["bf16_conv2_forward_impl"] = conv2;
  return l;
}

// The in-process bf16 figures against the fp32 ones of the same repeats
// (b: bf16, f: fp32; 1 and 2 threads, and 1 thread per CPU-second).
void bf16_serial_rows(const Figure& b1, const Figure& b2, const Figure& b1cpu, const Figure& f1, const Figure& f2,
                      const Figure& f1cpu, double bf16_limit, const std::vector<double>& others1,
                      const std::vector<double>& others2, nlohmann::json& out) {
  const double x1 = b1.median() / f1.median(), x2 = b2.median() / f2.median(), xcpu = b1cpu.median() / f1cpu.median();
  row("serial bf16, 1 thread (in process)", range_commas(b1) + " /s",
      fmt("%.2fx fp32", x1) + fmt(", %.1f%% of bf16 limit", 100 * b1.median() / bf16_limit), ">= 1.6x fp32",
      verdict(x1 >= kTargetBf16), mean(others1));
  row("  the same, per CPU-second it got", range_commas(b1cpu) + " /s",
      fmt("%.2fx fp32", xcpu) + fmt(", %.1f%% of bf16 limit", 100 * b1cpu.median() / bf16_limit), "", "", NAN);
  row("serial bf16, 2 threads (in process)", range_commas(b2) + " /s",
      fmt("%.2fx fp32", x2) + fmt(", %.0f%% of 2x bf16 limit", 50 * b2.median() / bf16_limit), "", "",
      mean(others2));
  out["serial_bf16_1_thread"] = b1.json();
  out["serial_bf16_2_threads"] = b2.json();
  out["serial_bf16_1_thread_per_cpu_s"] = b1cpu.json();
  out["bf16_over_fp32"] = {{"1_thread", x1}, {"2_threads", x2}, {"1_thread_per_cpu_s", xcpu}};
}

int run(int argc, char** argv) {
  Options o;
  CLI::App app{"Benchmarks this machine's FP32 peak and the training programs against it.", "ddp_bench"};
  app.add_option("-r,--repeats", o.repeats, "Measure every figure this many times")
      ->check(CLI::Range(1, 100))->capture_default_str();
  app.add_option("--warmup", o.warmup, "In-process warm-up steps")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--steps", o.steps, "In-process measured steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  app.add_option("-b,--batch-size", o.batch, "Batch size (per process)")->check(CLI::Range(1, 65536))->capture_default_str();
  app.add_option("--limit", o.limit, "Training samples of each train_serial / train_parallel run (one epoch)")
      ->check(CLI::Range(int64_t{64}, int64_t{60000}))->capture_default_str();
  app.add_option("--ranks", o.ranks, "Process counts for train_parallel")
      ->delimiter(',')->check(CLI::Range(2, 64))->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "MNIST directory")->capture_default_str();
  app.add_option("--bin-dir", o.bin_dir, "Where train_serial and train_parallel are (default: beside bench/)");
  app.add_option("--parallel-args", o.parallel_args,
                 "Extra arguments for train_parallel, e.g. --parallel-args=--grad-compression --parallel-args=bf16")
      ->allow_extra_args(false);
  app.add_option("--json", o.json, "Also write every figure to this JSON file");
  app.add_flag("--skip-parallel", o.skip_parallel, "Only the in-process figures");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  if (o.bin_dir.empty()) o.bin_dir = fs::path(sys::self_exe_dir()).parent_path().string();
  o.data_dir = fs::absolute(o.data_dir).string();

  const double load_start = sys::load_average();
  std::printf("ddp_bench: %s, %d cores; load average (1 min) %.2f at start; %d repeat(s): median  [min .. max]\n",
              sys::cpu_model().c_str(), sys::online_cores(), load_start, o.repeats);
  std::printf("%-42s %-32s %-30s %-18s %-5s %s\n", "figure", "value", "", "target", "", "others' cores");
  nlohmann::json out;
  std::string failures;

  // 1. Peak.
  Figure peak, peak_cpu;
  std::string isa;
  LoadProbe peak_probe;
  for (int r = 0; r < o.repeats; ++r) {
    const auto p = bench::measure_fma_peak(0.5);
    peak.v.push_back(p.gflops);
    peak_cpu.v.push_back(p.gflops_per_cpu_s);
    isa = p.isa;
  }
  // The peak is what the hardware can do: per second of CPU time the loop
  // got (on a shared core the wall-clock rate is lower by the share others
  // took; the loop lives in registers, so their presence costs it nothing
  // else), the best of the repeats.
  const double peak_gflops = peak_cpu.max();
  const double flops = nn::Cnn::flops_per_sample();
  const double limit = peak_gflops * 1e9 / flops;
  row("FP32 FMA peak, 1 core (" + isa + ")", range(peak_cpu, "%.1f") + " GFLOP/s", "per CPU-second", "", "",
      peak_probe.others());
  row("  the same, per wall-clock second", range(peak, "%.1f") + " GFLOP/s", "", "", "", NAN);
  row("limit = peak / " + fmt("%.1f", flops / 1e6) + " MFLOP", with_commas(limit) + " samples/s", "per core", "", "",
      NAN);
  out["peak_gflops_per_cpu_s"] = peak_cpu.json();
  out["peak_gflops"] = peak.json();
  out["isa"] = isa;
  out["limit_samples_per_s"] = limit;
  const bool bf16 = nn::cpu_bf16().support == nn::Bf16Support::native;
  const Bf16Limits bf16_limits = bf16 ? bf16_peak_rows(o, out) : Bf16Limits{};
  if (!bf16)
    row("bf16: no native bf16 (oneDNN ISA " + nn::cpu_bf16().isa + ")", "-", "bf16 figures skipped", "", "", NAN);

  // 2. The gradient all-reduce alone, 2 ranks, float and bf16 (forked
  //    now, before this process has threads of its own).
  Figure ar_float, ar_bf16;
  double best_float = INFINITY, best_bf16 = INFINITY;
  if (!o.skip_parallel) {
    LoadProbe probe;
    for (int r = 0; r < o.repeats; ++r) {
      for (bool bf16 : {false, true}) {
        const auto t = bench::grad_allreduce_seconds(2, "bcube", bf16, 100);
        if (t.empty()) {
          failures += std::string("the ") + (bf16 ? "bf16" : "float") + " all-reduce benchmark failed\n";
          continue;
        }
        const Figure f{t};
        (bf16 ? ar_bf16 : ar_float).v.push_back(f.median() * 1e3);
        (bf16 ? best_bf16 : best_float) = std::min(bf16 ? best_bf16 : best_float, f.min() * 1e3);
      }
    }
    const double bytes = static_cast<double>(nn::Cnn::num_params()) * 4;
    const double others = probe.others();
    row("gradient all-reduce, 2 ranks, float", range(ar_float, "%.2f") + " ms/step",
        fmt("%.2f MB; best step ", bytes / 1e6) + fmt("%.2f ms", best_float), "", "", others);
    row("gradient all-reduce, 2 ranks, bf16", range(ar_bf16, "%.2f") + " ms/step",
        fmt("%.2f MB; best step ", bytes / 2e6) + fmt("%.2f ms", best_bf16), "", "", others);
    out["grad_allreduce_ms_2_ranks"] = {{"float", ar_float.json()}, {"bf16", ar_bf16.json()},
                                        {"best_step_float", best_float}, {"best_step_bf16", best_bf16}};
  }

  // 3. In process.
  const auto train = data::load_dataset("mnist", o.data_dir, data::Split::train);
  Figure t1, t2, t1cpu;
  std::vector<double> o1, o2;
  std::vector<SerialRun> runs1, runs2;
  Figure b1, b2, b1cpu;  // bf16, interleaved with fp32 so that both see the same machine
  std::vector<double> ob1, ob2;
  std::vector<SerialRun> bf16_runs1, bf16_runs2;
  for (int r = 0; r < o.repeats; ++r) {
    runs1.push_back(train_in_process(train, 1, o));
    t1.v.push_back(runs1.back().samples_per_s);
    t1cpu.v.push_back(runs1.back().samples_per_cpu_s);
    o1.push_back(runs1.back().others);
    if (bf16) {
      bf16_runs1.push_back(train_in_process(train, 1, o, nn::Precision::bf16));
      b1.v.push_back(bf16_runs1.back().samples_per_s);
      b1cpu.v.push_back(bf16_runs1.back().samples_per_cpu_s);
      ob1.push_back(bf16_runs1.back().others);
    }
    runs2.push_back(train_in_process(train, 2, o));
    t2.v.push_back(runs2.back().samples_per_s);
    o2.push_back(runs2.back().others);
    if (bf16) {
      bf16_runs2.push_back(train_in_process(train, 2, o, nn::Precision::bf16));
      b2.v.push_back(bf16_runs2.back().samples_per_s);
      ob2.push_back(bf16_runs2.back().others);
    }
  }
  const double ratio2 = t2.median() / t1.median();
  row("serial, 1 thread (in process)", range_commas(t1) + " /s", fmt("%.1f%% of limit", 100 * t1.median() / limit),
      ">= 3,800 /s", verdict(t1.median() >= kTargetSerial), mean(o1));
  // On a shared machine: the same per second of CPU this process got (what
  // an idle core would give, but for the caches the other processes evict).
  row("  the same, per CPU-second it got", range_commas(t1cpu) + " /s",
      fmt("%.1f%% of limit", 100 * t1cpu.median() / limit), "", "", NAN);
  row("serial, 2 threads (in process)", range_commas(t2) + " /s",
      fmt("%.2fx 1 thread", ratio2) + fmt(", %.0f%% of 2x limit", 50 * t2.median() / limit), ">= 1.7x",
      verdict(ratio2 >= kTargetThreads2), mean(o2));
  out["serial_1_thread"] = t1.json();
  out["serial_2_threads"] = t2.json();
  out["serial_1_thread_per_cpu_s"] = t1cpu.json();
  if (bf16) bf16_serial_rows(b1, b2, b1cpu, t1, t2, t1cpu, bf16_limits.used, ob1, ob2, out);

  // 4. The programs.
  Figure serial_prog, serial_startup, serial_rss;
  std::map<int, Figure> tput, startup, rss, wait;
  std::map<int, std::vector<double>> others;
  std::vector<double> serial_others;
  double launcher_rss = 0;
  if (!o.skip_parallel) {
    const fs::path tmp = fs::temp_directory_path() / ("ddp-bench-" + std::to_string(getpid()));
    fs::create_directories(tmp);
    for (int r = 0; r < o.repeats; ++r) {
      // Interleaved, so that a change in the machine's load touches every figure alike.
      if (const auto p = run_program(o, 1, tmp, r); p.ok) {
        serial_prog.v.push_back(p.throughput);
        serial_startup.v.push_back(p.startup_s);
        serial_rss.v.push_back(p.max_rank_rss_mb);
        serial_others.push_back(p.others);
      } else {
        failures += p.error + "\n";
      }
      for (int world : o.ranks) {
        const auto p = run_program(o, world, tmp, r);
        if (!p.ok) failures += p.error + "\n";
        if (!p.ok) continue;
        tput[world].v.push_back(p.throughput);
        startup[world].v.push_back(p.startup_s);
        rss[world].v.push_back(p.max_rank_rss_mb);
        wait[world].v.push_back(p.allreduce_wait_s);
        others[world].push_back(p.others);
        launcher_rss = std::max(launcher_rss, p.launcher_rss_mb);
      }
    }
    std::error_code ec;
    fs::remove_all(tmp, ec);
    const double serial = serial_prog.median();
    row("train_serial (--limit " + std::to_string(o.limit) + ", 1 epoch)", range_commas(serial_prog) + " /s",
        fmt("%.1f%% of limit", 100 * serial / limit), "", "", mean(serial_others));
    const double two = tput.count(2) ? tput[2].median() : NAN;
    for (int world : o.ranks) {
      if (!tput.count(world)) continue;
      const double x = tput[world].median();
      const bool over = world > sys::online_cores();
      std::string extra = fmt("%.2fx serial", x / serial);
      std::string target = ">= 1.9x serial";
      bool ok = x / serial >= kTargetRanks2;
      if (world != 2 && std::isfinite(two)) {
        extra += fmt(", %.0f%% of 2 ranks", 100 * x / two);
        target = ">= 90% of 2 ranks";
        ok = x >= kTargetOversub * two;
      }
      row("train_parallel, " + std::to_string(world) + " ranks" + (over ? " (oversubscribed)" : ""),
          range_commas(tput[world]) + " /s", extra, target, verdict(ok), mean(others[world]));
    }
    row("start-up to first step, serial", range(serial_startup, "%.3f") + " s", "", "< 0.5 s",
        verdict(serial_startup.median() < kTargetStartup), NAN);
    for (int world : o.ranks)
      if (startup.count(world))
        row("start-up to first step, " + std::to_string(world) + " ranks", range(startup[world], "%.3f") + " s",
            "(rank 0)", "< 0.5 s", verdict(startup[world].median() < kTargetStartup), NAN);
    row("peak RSS, serial", range(serial_rss, "%.1f") + " MB", "", "< 150 MB",
        verdict(serial_rss.max() < kTargetRss), NAN);
    for (int world : o.ranks)
      if (rss.count(world))
        row("peak RSS per rank, " + std::to_string(world) + " ranks", range(rss[world], "%.1f") + " MB",
            "(largest rank)", "< 150 MB", verdict(rss[world].max() < kTargetRss), NAN);
    row("peak RSS, train_parallel launcher", fmt("%.1f MB", launcher_rss), "(not a rank)", "", "", NAN);
    for (int world : o.ranks)
      if (wait.count(world))
        row("exposed all-reduce wait, " + std::to_string(world) + " ranks", range(wait[world], "%.3f") + " s",
            fmt("%.1f%% of the epoch", 100 * wait[world].median() * tput[world].median() / o.limit), "", "",
            NAN);
    out["train_serial"] = serial_prog.json();
    out["train_serial_startup_s"] = serial_startup.json();
    out["train_serial_rss_mb"] = serial_rss.json();
    for (int world : o.ranks) {
      if (!tput.count(world)) continue;
      const std::string k = std::to_string(world);
      out["train_parallel"][k] = {{"throughput", tput[world].json()},
                                  {"startup_s", startup[world].json()},
                                  {"max_rank_rss_mb", rss[world].json()},
                                  {"allreduce_wait_s", wait[world].json()}};
    }
  }

  // 5. The split of a step.
  print_step_split("", runs1, runs2, o, out["step_split"], out["step_us"]);
  if (bf16) print_step_split(", bf16", bf16_runs1, bf16_runs2, o, out["step_split_bf16"], out["step_us_bf16"]);

  const double load_end = sys::load_average();
  std::printf("\nload average (1 min): %.2f at start, %.2f at end (%d cores); 'others' cores' = CPU used by other\n"
              "processes during that figure, from /proc/stat. Targets from issues 6 and 15.\n",
              load_start, load_end, sys::online_cores());
  out["load_average"] = {{"start", load_start}, {"end", load_end}};
  out["cpu_model"] = sys::cpu_model();
  if (!failures.empty()) std::fprintf(stderr, "\nsome runs failed:\n%s", failures.c_str());
  if (!o.json.empty()) std::ofstream(o.json) << out.dump(2) << "\n";
  return failures.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UserError& e) {
    std::fprintf(stderr, "ddp_bench: error: %s\n", e.what());
    if (!e.hint().empty()) std::fprintf(stderr, "  fix: %s\n", e.hint().c_str());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "ddp_bench: error: %s\n", e.what());
    return 1;
  }
}
