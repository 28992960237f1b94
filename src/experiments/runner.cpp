#include "experiments/runner.h"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "experiments/cpu_load.h"
#include "sys/cpu_load.h"
#include "experiments/display.h"
#include "experiments/network_runs.h"
#include "experiments/signals.h"
#include "experiments/text.h"
#include "experiments/traces.h"
#include "sys/subprocess.h"
#include "results/run_result.h"

namespace ddp::experiments {

namespace fs = std::filesystem;

std::vector<std::string> trainer_argv(const Suite& s, const report::Configuration& c, const std::string& results) {
  const SuiteOptions& o = s.o;
  std::vector<std::string> a = {s.exe_dir + "/" + c.program,
                                "--epochs", std::to_string(o.train.epochs),
                                "--batch-size", std::to_string(o.train.batch_size),
                                "--learning-rate", exact(o.train.learning_rate),
                                "--dataset", o.train.dataset,
                                "--data-dir", s.data_dir,
                                "--seed", std::to_string(o.train.seed),
                                "--threads", std::to_string(o.train.threads),
                                "--save-results", results,
                                "--precision", c.precision,
                                "--no-progress"};  // one line per epoch, no live bar
  if (o.train.limit > 0) a.insert(a.end(), {"--limit", std::to_string(o.train.limit)});
  if (o.train.test_limit > 0) a.insert(a.end(), {"--test-limit", std::to_string(o.train.test_limit)});
  if (c.program == "train_parallel")
    a.insert(a.end(), {"--world-size", std::to_string(c.processes), "--lr-scaling", to_string(o.train.lr_scaling),
                       "--backend", c.backend});
  if (c.backend == "gloo") a.insert(a.end(), {"--allreduce-algorithm", to_string(o.train.allreduce_algorithm)});  // Gloo's choice only
  if (c.program == "train_parallel")
    for (const auto& v : s.variants)
      if (v.name == c.variant) a.insert(a.end(), v.args.begin(), v.args.end());  // last: the variant's own flags
  return a;
}

namespace {

// What the terminal calls a run: "serial", "2 processes, mpi".
std::string run_title(const report::Configuration& c) {
  return c.backend.empty() ? c.label : c.label + ", " + c.backend;
}

// One run as the terminal shows it: its header, its epochs and errors, the
// status line; it keeps the last lines in case the run fails.
struct RunView {
  Display& d;
  const Eta& eta;
  std::string head;  // "[run 2/3] 2 processes, mpi"
  int epochs = 1;
  std::vector<std::string> err_lines, last_lines;

  std::string status() const {
    const double e = eta.seconds_left();
    const int done = eta.epochs_done();
    return head + (done ? "  epoch " + std::to_string(done) + "/" + std::to_string(epochs) : "") + "  | elapsed " +
           report::format_duration(d.elapsed()) + "  ETA " +
           (std::isfinite(e) ? "~" + report::format_duration(e) : std::string("--:--"));
  }

  // A line of the trainer's output: errors and epochs are shown, the rest only logged.
  // Returns whether it finished an epoch.
  bool on_line(const std::string& line, bool is_err) {
    if (line.empty()) return false;
    last_lines.push_back(line);
    if (last_lines.size() > 8) last_lines.erase(last_lines.begin());
    if (is_err) {
      err_lines.push_back(line);
      if (err_lines.size() > 20) err_lines.erase(err_lines.begin());
      d.line("    " + line);
      return false;
    }
    if (line.rfind("epoch ", 0) == 0) {
      d.line("    " + line);
      return true;
    }
    if (line.rfind("train_parallel: OVERSUBSCRIBED", 0) == 0) d.line("    " + line);
    return false;
  }

  // The run's last error lines (else its last lines): why it failed.
  std::string failure(int exit_status) const {
    std::string error;
    const auto& src = err_lines.empty() ? last_lines : err_lines;
    for (size_t k = src.size() > 6 ? src.size() - 6 : 0; k < src.size(); ++k)
      error += (error.empty() ? "" : "\n") + src[k];
    return error.empty() ? "exited with status " + std::to_string(exit_status) + " and no message" : error;
  }
};

// The line under a finished run: what it measured, or why it failed.
void print_outcome(Display& d, report::RunRecord& rec) {
  if (rec.ok) {
    char summary[320];
    std::snprintf(summary, sizeof summary, "    done: %.1f s (trainer's total %.1f s), %.0f samples/s, test accuracy %.2f%%",
                  rec.wall_s, rec.results.total_time_s, rec.results.throughput, 100 * rec.results.final_test_accuracy);
    std::string line = summary;
    if (rec.background_cores > kBusyCores) {
      std::snprintf(summary, sizeof summary, "; other processes used %.1f cores meanwhile: timing disturbed",
                    rec.background_cores);
      line += summary;
    }
    d.line(line);
  } else if (pending_signal()) {
    d.line("    interrupted (" + std::string(strsignal(pending_signal())) + ")");
  } else {
    d.line("    FAILED (exit status " + std::to_string(rec.exit_status) + "): " +
           rec.error.substr(0, rec.error.find('\n')) + "  [log: " + rec.log_file + "]");
    rec.error = rec.error.empty() ? "failed" : rec.error;
  }
}

// Runs planned run `i` of `n` and returns its record.
report::RunRecord run_one(Suite& s, const PlannedRun& p, size_t i, size_t n, Display& d, Eta& eta) {
  const report::Configuration& c = s.configs[p.config];
  const bool many = s.o.repeats > 1;
  report::RunRecord rec;
  rec.repeat = p.repeat;
  const std::string suffix = many ? ".run" + std::to_string(p.repeat) : "";
  rec.results_file = many ? c.name + "_results" + suffix + ".json" : c.results_file;
  rec.log_file = "logs/" + c.name + suffix + ".log";
  const std::string results_path = s.dir + "/" + rec.results_file;
  std::error_code ec;
  fs::remove(results_path, ec);

  eta.start(i);
  RunView view{d, eta, "[run " + std::to_string(i + 1) + "/" + std::to_string(n) + "] " + run_title(c) +
                           (many ? ", repeat " + std::to_string(p.repeat) + "/" + std::to_string(s.o.repeats) : ""),
               s.o.train.epochs, {}, {}};
  d.line(d.tty() ? view.head : view.status());  // a header that stays above the run's lines
  d.status(view.status());                      // on a terminal, a live line under them

  sys::ChildOptions co;
  co.argv = trainer_argv(s, c, results_path);
  const std::string trace = trace_file_for(c, p.repeat);  // for timeline.png (traces.h)
  if (!trace.empty()) {
    fs::remove(s.dir + "/" + trace, ec);
    co.argv.insert(co.argv.end(), {"--trace", s.dir + "/" + trace});
  }
  co.log_path = s.dir + "/" + rec.log_file;
  {
    std::ofstream log(co.log_path);
    log << "$";
    for (const auto& a : co.argv) log << " " << shell_quote(a);
    log << "\n";
  }
  co.on_line = [&](const std::string& line, bool is_err) {
    if (!view.on_line(line, is_err)) return;
    eta.epoch_done();
    d.status(view.status());
  };
  co.on_tick = [&] { d.status(view.status()); };
  co.tick_s = 1;
  const sys::CpuSample before = sys::cpu_sample();
  // With --network, every rank of a parallel run is a node of an emulated cluster.
  const bool on_network = !s.o.network.empty() && c.program == "train_parallel";
  const sys::ChildResult res =
      on_network ? run_on_network(s, c.processes, co.argv, co.log_path, co.on_line) : sys::run_child(co);
  rec.background_cores = sys::background_cores(before, sys::cpu_sample());
  rec.wall_s = res.seconds;
  rec.exit_status = res.exit_status;
  if (!trace.empty() && fs::exists(s.dir + "/" + trace, ec)) rec.trace_file = trace;  // written after its last step
  d.end_status();

  if (res.exit_status == 0) {
    try {
      rec.results = results::read_results_file(results_path);  // every field as the schema says, or why not
      rec.ok = true;
    } catch (const std::exception& e) {
      rec.error = e.what();
    }
  } else {
    rec.error = view.failure(res.exit_status);
  }
  print_outcome(d, rec);
  if (rec.ok) eta.succeeded(res.seconds);
  return rec;
}

}  // namespace

bool run_all(Suite& s, const std::vector<PlannedRun>& plan) {
  Display d;
  std::vector<double> costs;
  for (const auto& p : plan) {
    const auto& c = s.configs[p.config];
    costs.push_back(relative_cost(c.processes, c.is_serial(), s.o.train.threads, s.cores));
  }
  Eta eta(costs, s.o.train.epochs);
  for (size_t i = 0; i < plan.size() && !pending_signal(); ++i) {
    report::RunRecord rec = run_one(s, plan[i], i, plan.size(), d, eta);
    if (!(pending_signal() && !rec.ok)) s.configs[plan[i].config].runs.push_back(std::move(rec));
  }
  return !pending_signal();
}

}  // namespace ddp::experiments
