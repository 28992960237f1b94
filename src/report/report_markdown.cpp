// report.md: the experiment for humans, from performance_metrics.json (see
// report/experiment.h). Each section is written from the metrics alone, so
// --replot writes the same report.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "report/experiment.h"
#include "report/plots.h"
#include "report/metrics_json.h"
#include "report/timeline.h"

namespace ddp::report {

using nlohmann::json;

namespace {

using namespace metrics_json;

std::string fmt(const char* f, double v) { return format_value(f, v); }

std::string joined_backends(const json& m) {
  std::string out;
  for (const auto& b : backends(m)) out += (out.empty() ? "" : ", ") + b;
  return out;
}

bool compares(const json& comparison, const char* a, const char* b) {
  for (const auto& e : comparison)
    if (e["backends"].contains(a) && e["backends"].contains(b)) return true;
  return false;
}

// The process counts of `backend`'s parallel configurations, by where their
// all-reduce ran (allreduce.overlap: "thread" or "none").
std::map<std::string, std::vector<int>> overlap_of(const json& m, const std::string& backend) {
  std::map<std::string, std::vector<int>> by;
  for (const auto& c : m.value("configurations", json::array()))
    if (backend_of(c) == backend && c.contains("allreduce"))
      by[c["allreduce"].value("overlap", "thread")].push_back(c.value("processes", 1));
  return by;
}

std::string process_counts(const std::vector<int>& ps) {
  std::string r;
  for (size_t i = 0; i < ps.size(); ++i) r += (i ? (i + 1 == ps.size() ? " and " : ", ") : "") + std::to_string(ps[i]);
  return r + (ps.size() == 1 && ps[0] == 1 ? " process" : " processes");
}

// Where one backend ran its all-reduce: "on each rank's communication thread,
// next to backward", "on the training thread, after backward", or both, by process count.
std::string where_allreduce_ran(const std::map<std::string, std::vector<int>>& by) {
  const std::string thread = "on each rank's communication thread, next to backward";
  const std::string none = "on the training thread, after backward (`--overlap none`)";
  const auto t = by.find("thread"), n = by.find("none");
  if (n == by.end()) return thread;
  if (t == by.end()) return none;
  return thread + " at " + process_counts(t->second) + ", " + none + " at " + process_counts(n->second);
}

// The sentence on where Gloo and MPI ran their all-reduce: true of the runs,
// whatever --overlap chose for each.
std::string allreduce_threads_sentence(const json& m) {
  const std::string gloo = where_allreduce_ran(overlap_of(m, "gloo")), mpi = where_allreduce_ran(overlap_of(m, "mpi"));
  if (gloo == mpi) return " Both run the all-reduce " + gloo + ".";
  return " Gloo runs the all-reduce " + gloo + "; MPI " + mpi + ".";
}

// The backends side by side, one sentence per process count.
std::string backends_section(const json& m) {
  if (!m.contains("backend_comparison") || m["backend_comparison"].empty()) return "";
  const json& cmp = m["backend_comparison"];
  std::string r = "**Backends compared.** The same training on each backend: only how the gradients are all-reduced "
                  "differs.";
  if (compares(cmp, "gloo", "mpi"))
    r += " On one machine Gloo sends them through loopback TCP sockets (every byte through the kernel's network "
         "stack); OpenMPI (MPI) copies them through shared memory." +
         allreduce_threads_sentence(m);
  r += " *all-reduce per step*: the time the all-reduce of one step's gradient kept its thread busy (mean over "
       "ranks); *exposed communication*: the share of the training time spent waiting for it.\n\n";
  for (const auto& sentence : backend_comparison_sentences(cmp)) r += "- " + sentence + "\n";
  return r + "\n";
}

// The title and what ran where: machine, software, settings, command.
std::string header_section(const json& m) {
  const json& ex = m.value("experiment", json::object());
  const json& cfg = ex.value("config", json::object());
  const json& mach = m.value("machine", json::object());
  const json& ver = m.value("versions", json::object());
  std::string r;
  r += "# Data-parallel training of the MNIST CNN: what parallelism buys\n\n";
  r += "Experiment `" + str(ex, "directory", "?") + "`, " + str(ex, "started", "?") + " to " + str(ex, "finished", "?") + ".\n\n";
  r += "- **Machine:** " + str(mach, "cpu_model", "?") + ", " + std::to_string(mach.value("cores", 0)) + " cores, " +
       fmt("%.1f", num(mach, "memory_gib")) + " GiB (host `" + str(mach, "hostname", "?") + "`)\n";
  std::string v;
  for (const auto& [k, val] : ver.items()) v += (v.empty() ? "" : ", ") + k + " " + (val.is_string() ? val.get<std::string>() : val.dump());
  r += "- **Software:** " + v + "\n";
  r += "- **Runs:** " + std::to_string(cfg.value("epochs", 0)) + " epoch(s), batch " +
       std::to_string(cfg.value("batch_size", 0)) + " per process, " + std::to_string(cfg.value("threads", 1)) +
       " compute thread(s) per process, learning rate " + fmt("%g", num(cfg, "learning_rate")) + " (scaling: " +
       str(cfg, "lr_scaling", "none") + "), " + str(cfg, "allreduce_algorithm", "ring") +
       (names_backends(m) ? " all-reduce in Gloo" : " all-reduce") + ", dataset " + str(cfg, "dataset", "mnist");
  if (cfg.value("limit", 0) > 0) r += " (first " + std::to_string(cfg.value("limit", 0)) + " training samples)";
  if (cfg.value("test_limit", 0) > 0)
    r += " (evaluated on the first " + std::to_string(cfg.value("test_limit", 0)) + " test samples)";
  r += ", seed " + std::to_string(cfg.value("seed", 0)) + ", " + std::to_string(cfg.value("repeats", 1)) +
       " repeat(s) of each configuration";
  if (names_backends(m)) r += ", backends " + joined_backends(m);
  if (m.contains("network") && m["network"].is_object())
    r += "; the parallel runs over an emulated " + str(m["network"], "spec", "?") +
         " network, each rank its own node (network namespace, core), the serial run as usual";
  r += "\n";
  r += "- **Precision:** " + precision_description(m) + "\n";
  r += "- **Command:** `" + str(ex, "command", "run_experiments") + "`\n\n";

  return r;
}

// The table, what its columns mean, and what to keep in mind reading it:
// oversubscription, failed runs, a noisy machine, the caller's notes.
std::string results_section(const json& m, const std::vector<std::string>& notes) {
  const json& cfg = m.value("experiment", json::object()).value("config", json::object());
  const json& mach = m.value("machine", json::object());
  std::string r;
  r += "## Results\n\n" + results_table_markdown(m) + "\n";
  r += "*time*: training plus evaluation of all epochs (`total_time_s`; with repeats: median, and the range); "
       "*speedup* = T_serial / T_N; *efficiency* = speedup / N; *throughput*: training samples per second, all "
       "processes; *test accuracy*: after the last epoch; *exposed comm*: the share of the training time spent "
       "waiting for the gradient all-reduce that backward did not hide.";
  if (names_precisions(m))
    r += " T_serial is the serial run of the same precision, but for the bf16 serial run's speedup, which is "
         "against the fp32 serial run: what bf16 buys on one process (its efficiency is 100%, as the baseline of the "
         "bf16 runs).";
  r += "\n\n";
  r += "Each process trains on batches of " + std::to_string(cfg.value("batch_size", 0)) +
       ", so N processes take a global batch N times larger and 1/N of the steps per epoch (weak scaling per step). "
       "With the same learning rate the larger global batch makes fewer, larger updates, which is why the loss of "
       "the parallel runs falls more slowly per epoch.\n\n";
  r += backends_section(m);
  r += precision_comparison_markdown(m);
  r += variant_comparison_markdown(m);
  const int cores = mach.value("cores", 0);
  bool over = false;
  for (const auto& c : m.value("configurations", json::array()))
    over = over || flag(c, "oversubscribed");
  if (over)
    r += "**Oversubscription.** This machine has " + std::to_string(cores) +
         " cores. A run with more processes x threads than cores does not get more compute: its processes take "
         "turns on the same cores, and the extra all-reduce traffic and context switches only cost time. Such runs "
         "show what the algorithm costs, not what more hardware would buy; the scaling model below predicts that.\n\n";
  const bool with_backend = names_backends(m);
  for (const auto& c : m.value("configurations", json::array())) {
    for (const auto& run : c.value("runs", json::array())) {
      if (run.value("status", "") != "failed") continue;
      r += "**FAILED:** " + run_label(c, with_backend) + ", repeat " + std::to_string(run.value("repeat", 0)) +
           ": exit status " + std::to_string(run.value("exit_status", -1)) + "; see `" + run.value("log_file", "") + "`";
      const std::string err = run.value("error", "");
      if (!err.empty()) r += ":\n\n```\n" + err + "\n```\n";
      r += "\n\n";
    }
  }
  if (m.contains("measurement")) {
    const json& bg = m["measurement"]["background_load_cores"];
    if (num(bg, "max", 0) > 0.25)
      r += "**Noisy measurement.** Other processes used up to " + fmt("%.1f", num(bg, "max")) + " cores (median " +
           fmt("%.1f", num(bg, "median")) + ") of this machine's " + std::to_string(cores) +
           " while the runs ran (`background_load_cores` of each run in performance_metrics.json). A parallel run "
           "that needs every core suffers more from that than the serial run, which leaves cores free: the speedups "
           "above are lower than on a quiet machine.\n\n";
  }
  for (const auto& n : notes) r += "**Note:** " + n + "\n\n";
  return r;
}

// What the rest of the all-reduce did, by where it ran (allreduce.overlap).
std::string exposed_remark(const json& m) {
  bool thread = false, none = false;
  for (const auto& c : m.value("configurations", json::array()))
    if (c.contains("allreduce") && c.value("processes", 1) > 1)
      (c["allreduce"].value("overlap", "thread") == "none" ? none : thread) = true;
  const std::string during = "the rest of the all-reduce ran during backward, on the communication thread";
  const std::string after = "all of it is exposed: it ran on the training thread, after backward";
  if (!none) return "; " + during + ".";
  if (!thread) return " (`--overlap none`): " + after + ".";
  return ". With a communication thread (`--overlap thread`), " + during + "; without (`--overlap none`), " + after + ".";
}

// Where the time goes: per configuration, seconds per epoch in each phase.
std::string breakdown_section(const json& m) {
  const bool with_backend = names_backends(m);
  std::string r;
  r += "## Where the time goes\n\n";
  r += "Seconds per epoch in each part of the training step (mean over ranks), plus the evaluation on the test set. "
       "*all-reduce (exposed)* is the time a rank waited for the gradient all-reduce after its backward pass" +
       exposed_remark(m) + "\n\n";
  r += "| run | forward | backward | all-reduce exposed | optimizer | data | other | evaluation | all-reduce busy / step | hidden | compute / sample |\n";
  r += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
  std::map<std::string, double> serial_cps;  // per precision
  for (const auto& c : m.value("configurations", json::array()))
    if (is_serial(c)) serial_cps[precision_of(c)] = num(c, "compute_per_sample_s");
  for (const auto& c : m.value("configurations", json::array())) {
    if (!c.contains("time_per_epoch_s")) continue;
    const double cps = num(c, "compute_per_sample_s");
    const auto base = serial_cps.find(precision_of(c));
    const double base_cps = base == serial_cps.end() ? NAN : base->second;
    const std::string compute = fmt("%.3f ms", 1e3 * cps) + (!is_serial(c) && std::isfinite(base_cps)
                                                                  ? fmt(" (%.2fx)", cps / base_cps)
                                                                  : std::string());
    const json& t = c["time_per_epoch_s"];
    r += "| " + run_label(c, with_backend) + " | " + fmt("%.2f s", num(t, "forward")) + " | " + fmt("%.2f s", num(t, "backward")) +
         " | " + fmt("%.2f s", num(t, "allreduce_exposed")) + " | " + fmt("%.3f s", num(t, "optimizer")) + " | " +
         fmt("%.3f s", num(t, "data")) + " | " + fmt("%.3f s", num(t, "other")) + " | " +
         fmt("%.2f s", num(t, "evaluation")) + " | ";
    if (c.contains("allreduce") && c.value("processes", 1) > 1)
      r += fmt("%.1f ms", 1e3 * num(c["allreduce"], "busy_per_step_s")) + " | " +
           fmt("%.0f%%", 100 * num(c["allreduce"], "hidden_fraction")) + " | " + compute + " |\n";
    else
      r += "- | - | " + compute + " |\n";
  }
  r += "\n*compute / sample*: data + forward + backward + optimizer time of one rank per sample it trained, and "
       "in brackets against the serial run (of the same precision): more than 1x means the ranks slowed each other down, by sharing cores "
       "(oversubscription) or memory bandwidth, or by the communication thread, which copies the gradients "
       "through " + std::string(m.contains("network") ? "the emulated network's TCP stack" : "loopback TCP") +
       " on the same cores.\n";
  r += "\n![Where the time goes](time_breakdown.png)\n\n";
  return r;
}

// The model's formula and the parameters the serial run gave it.
std::string model_params_text(const json& sm) {
  std::string r;
  const json& p = sm["params"];
  r += "What would more ranks buy, on a real network? The model (weak scaling per step: batch B per rank fixed):\n\n";
  r += "```\nS(p)         = ceil(ceil(M/p) / B)                      steps per epoch\n"
       "b(p)         = ceil(M/p) / S(p)                         samples per step and rank\n"
       "T_ring(n,p)  = 2(p-1)·alpha + 2(p-1)/p · n/beta          ring all-reduce of n bytes\n"
       "f_i          = max(f_(i-1), r_i·T_bwd) + T_ring(n_i,p)   buckets in turn; bucket i is final after a share r_i of backward\n"
       "exposed(p)   = max(0, f_last - T_bwd),  T_bwd = b(p)·t_bwd\n"
       "T_epoch(p)   = S(p)·(b(p)·t_step + exposed(p)) + ceil(E/p)·t_eval\n"
       "speedup(p)   = T_epoch(1) / T_epoch(p)\n```\n\n";
  r += "Calibrated from the serial run: M = " + fmt("%.0f", num(p, "train_samples")) + " training and E = " +
       fmt("%.0f", num(p, "test_samples")) + " test samples, B = " + std::to_string(p.value("batch_per_process", 0)) +
       ", t_step = " + fmt("%.3f ms", 1e3 * num(p, "t_step_s_per_sample")) + " and t_bwd = " +
       fmt("%.3f ms", 1e3 * num(p, "t_bwd_s_per_sample")) + " per training sample, t_eval = " +
       fmt("%.3f ms", 1e3 * num(p, "t_eval_s_per_test_sample")) + " per test sample; the gradient is " +
       fmt("%.2f MB", num(p, "gradient_bytes") / 1e6) + " in " + std::to_string(p.value("buckets", json::array()).size()) +
       " bucket(s) (";
  bool first = true;
  for (const auto& b : p.value("buckets", json::array())) {
    r += (first ? "" : ", ") + fmt("%.2f MB", num(b, "bytes") / 1e6) + " final after " +
         fmt("%.0f%%", 100 * num(b, "ready_fraction")) + " of backward";
    first = false;
  }
  r += ").\n\n";
  return r;
}

// What the all-reduce benchmark and the training runs measured of this machine's communication.
std::string model_calibration_text(const json& sm) {
  std::string r;
  const json& cal = sm.value("calibration", json::object());
  if (cal.contains("allreduce_benchmark") && cal["allreduce_benchmark"].is_object() &&
      cal["allreduce_benchmark"].value("status", "") == "ok") {
    const json& b = cal["allreduce_benchmark"];
    r += "This machine, measured: a " + std::to_string(b.value("ranks", 2)) +
         "-rank Gloo ring all-reduce over loopback TCP, timed before the training runs, fits alpha = " +
         fmt("%.1f µs", 1e6 * num(b, "alpha_s")) + " and beta = " + fmt("%.2f GB/s", num(b, "beta_bytes_per_s") / 1e9) +
         " (" + std::to_string(b.value("samples", json::array()).size()) + " message sizes).";
  }
  if (cal.contains("training_allreduce") && cal["training_allreduce"].is_object()) {
    const json& t = cal["training_allreduce"];
    r += " During training (" + std::to_string(t.value("processes", 2)) + " processes, competing with compute for the cores) the all-reduce of a step took " +
         fmt("%.2f ms", 1e3 * num(t, "busy_per_step_s")) + ", an effective beta of " +
         fmt("%.3f GB/s", num(t, "beta_effective_bytes_per_s") / 1e9) + ".";
  }
  r += "\n\n";
  return r;
}

// The model of this machine against the measured speedups.
std::string model_machine_text(const json& sm, bool with_backend) {
  std::string r;
  if (sm.contains("this_machine")) {
    const json& tm = sm["this_machine"];
    const std::string net = tm.value("network", "");
    r += (net.empty() ? std::string("The model of this machine (alpha = ")
                      : "The model of the emulated " + net + " network, one rank per node (measured on it: alpha = ") +
         fmt("%.1f µs", 1e6 * num(tm, "alpha_s")) + ", beta = " + fmt("%.3f GB/s", num(tm, "beta_bytes_per_s") / 1e9) +
         (net.empty() ? "" : "; the all-reduce's CPU taken from compute, the shaper's burst free") +
         ", compute slowed by processes x threads / cores when they exceed the cores) against the measurements" +
         (with_backend ? " of the " + backend_name(str(sm, "measured_backend", "gloo")) + " runs" : std::string()) +
         ":\n\n";
    r += "| processes | measured speedup | model speedup |\n| ---: | ---: | ---: |\n";
    for (const auto& q : tm.value("vs_measured", json::array()))
      r += "| " + std::to_string(q.value("p", 0)) + " | " + fmt("%.2f", num(q, "measured_speedup")) + " | " +
           fmt("%.2f", num(q, "model_speedup")) + " |\n";
    r += "\n";
  }
  return r;
}

// The predictions for clusters on each network.
std::string model_networks_text(const json& sm) {
  std::string r;
  r += "Predicted speedup on a cluster (one rank per core or node, each with the compute speed of one process here; "
       "Gloo over TCP, beta = 90% of the line rate):\n\n| p |";
  const json& nets = sm.value("networks", json::array());
  for (const auto& n : nets)
    r += " " + n.value("name", "?") + " (alpha " + fmt("%.0f µs", 1e6 * num(n, "alpha_s")) + ") |";
  r += "\n| ---: |";
  for (size_t i = 0; i < nets.size(); ++i) r += " ---: |";
  r += "\n";
  if (!nets.empty()) {
    const size_t rows = nets[0].value("predictions", json::array()).size();
    for (size_t i = 0; i < rows; ++i) {
      r += "| " + std::to_string(nets[0]["predictions"][i].value("p", 0)) + " |";
      for (const auto& n : nets) {
        const json& q = n["predictions"][i];
        r += " " + fmt("%.1f", num(q, "speedup")) + " (" + fmt("%.0f%%", 100 * num(q, "efficiency")) + ") |";
      }
      r += "\n";
    }
    r += "| best |";
    for (const auto& n : nets)
      r += " " + fmt("%.1f", num(n["best"], "speedup")) + " at p = " + std::to_string(n["best"].value("p", 0)) + " |";
    r += "\n\n";
  }
  r += "Two limits show: the latency term 2(p-1)·alpha per bucket grows with p while a step's compute does not, and "
       "beyond p = M/B every rank takes a single step per epoch, so adding ranks no longer removes steps.\n\n";
  return r;
}

// The model held against the measurement: one sentence per process count.
std::string model_validation_text(const json& m) {
  std::string r;
  const json& net = m.value("network", json::object());
  const std::string where = net.is_object() && net.contains("spec")
                                ? "over the emulated " + str(net, "spec") + " network (one rank per node)"
                                : "on this machine (loopback)";
  for (const auto& c : m.value("configurations", json::array())) {
    if (!c.contains("model_validation")) continue;
    const json& v = c["model_validation"];
    r += "- " + std::to_string(c.value("processes", 0)) + " processes " + where + ": the model predicted a speedup of " +
         fmt("%.2fx", num(v, "predicted_speedup")) + " against " + fmt("%.2fx", num(v, "measured_speedup")) +
         " measured (" + fmt("%.0f%%", 100 * num(v, "speedup_error")) + " off), an all-reduce of " +
         fmt("%.2f ms", num(v, "predicted_allreduce_ms")) + " per step against " +
         fmt("%.2f ms", num(v, "measured_allreduce_ms")) + " (" + fmt("%.0f%%", 100 * num(v, "allreduce_error")) +
         " off), and " + fmt("%.2f ms", num(v, "predicted_exposed_ms")) + " of it exposed against " +
         fmt("%.2f ms", num(v, "measured_exposed_ms")) + ".\n";
  }
  if (r.empty()) return r;
  return "**The model against the measurement** (alpha and beta from the all-reduce benchmark, not from the training "
         "runs; the measured all-reduce is the communication thread's busy time per step, which includes waiting for "
         "the later rank):\n\n" + r + "\n";
}

std::string model_section(const json& m, bool with_image) {
  const json& sm = m.value("scaling_model", json::object());
  std::string r = "## Scaling model\n\n";
  if (sm.value("status", "") != "ok")
    return r + "Not available: " + sm.value("reason", std::string("no serial run to calibrate it")) + ".\n\n";
  r += model_params_text(sm) + model_calibration_text(sm) + model_machine_text(sm, names_backends(m)) +
       model_validation_text(m) + model_networks_text(sm);
  if (with_image) r += "![Scaling model](scaling_model.png)\n\n";
  return r;
}

std::string files_section(const json& m, const std::vector<std::string>& plots) {
  std::string r;
  r += "## Files\n\n";
  const auto bs = backends(m);
  r += "- `performance_metrics.json`: everything above as numbers (per configuration, every run, the model)\n";
  r += "- `serial_results.json`, `parallel_<N>p_results.json`" +
       std::string(std::count(bs.begin(), bs.end(), "mpi") ? " (Gloo), `parallel_<N>p_mpi_results.json` (MPI)" : "") +
       ": each trainer's own results (per epoch, per rank, per step)" +
       std::string(names_precisions(m) ? "; the bf16 runs' names end in `_bf16`" : "") +
       std::string(names_variants(m) ? "; each variant's runs' names end in `_<variant>`" : "") + "\n";
  r += "- `logs/`: every run's output\n";
  if (m.contains("timeline"))
    r += "- `trace_<configuration>.json`: a few steps of each parallel configuration's first run, thread by thread "
         "(Chrome trace JSON: open it in ui.perfetto.dev or chrome://tracing)\n";
  if (!plots.empty())
    r += "- `" + std::string(kPlotDir) + "/`: the gnuplot scripts and their data; edit one and redraw it with `cd " +
         kPlotDir + " && gnuplot <name>.gp`\n";
  return r;
}

}  // namespace

std::string report_markdown(const json& m, const std::vector<std::string>& plots, const std::vector<std::string>& notes) {
  auto has = [&](const std::string& name) { return std::find(plots.begin(), plots.end(), name) != plots.end(); };
  std::string r = header_section(m) + results_section(m, notes);
  auto image = [&](const std::string& name, const std::string& heading, const std::string& text) {
    if (!has(name)) return;
    r += "## " + heading + "\n\n" + text + (text.empty() ? "" : "\n\n") + "![" + heading + "](" + name + ".png)\n\n";
  };
  image("loss_curves", "Loss curves",
        "Training loss of every step (raw and smoothed) and of every epoch, with the test loss, for the serial run and "
        "each process count.");
  image("speedup", "Speedup", "Measured speedup against the ideal (N); the dashed line marks the core count.");
  image("efficiency", "Efficiency", "");
  image("training_comparison", "Time, throughput, accuracy and loss", "");
  if (has("time_breakdown")) r += breakdown_section(m);
  if (has("timeline")) r += timeline_markdown(m);
  image("variants", "Variants: time to accuracy and bytes per step",
        "Test accuracy after each epoch against the time so far, and the bytes each rank all-reduced per optimizer "
        "step, for each --variant.");
  return r + model_section(m, has("scaling_model")) + files_section(m, plots);
}

}  // namespace ddp::report
