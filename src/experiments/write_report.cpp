#include "experiments/write_report.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>

#include "experiments/calibration.h"
#include "experiments/validation.h"
#include "experiments/cpu_load.h"
#include "experiments/signals.h"
#include "experiments/text.h"
#include "experiments/traces.h"
#include "results/json_reader.h"
#include "sys/atomic_file.h"
#include "report/experiment.h"
#include "report/gnuplot.h"
#include "sys/machine.h"
#include "train/results.h"
#include "report/plots.h"
#include "sys/subprocess.h"

namespace ddp::experiments {

using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// With repeats, the canonical results file of a configuration is its median run's.
void write_canonical_copies(const Suite& s) {
  for (const auto& c : s.configs) {
    const int rep = c.representative();
    if (rep >= 0 && c.runs[rep].results_file != c.results_file) {
      const std::string text = read_text(s.dir + "/" + c.runs[rep].results_file);
      sys::write_file_atomic(s.dir + "/" + c.results_file,
                                text.empty() ? results::to_json(c.runs[rep].results).dump(2) + "\n" : text);
    }
  }
}

// This program's versions, the trainers' (from their results) and gnuplot's.
json versions_of(const Suite& s, const std::string& gnuplot) {
  json versions = train::versions_json();
  for (const auto& c : s.configs)
    if (const results::RunResult* r = c.representative_results()) versions.update(r->versions);
  if (gnuplot.empty()) return versions;
  sys::ChildOptions o;
  o.argv = {gnuplot, "--version"};
  std::string v;
  o.on_line = [&](const std::string& l, bool) { v = v.empty() ? l : v; };
  try {
    sys::run_child(o);
    if (v.rfind("gnuplot ", 0) == 0) versions["gnuplot"] = v.substr(8);
  } catch (const std::exception&) {
  }
  return versions;
}

struct Drawing {
  std::vector<std::string> drawn, notes;  // the plots drawn; why others are not
  bool failed = false;
};

// Writes every plot's script and data into plots/ and runs gnuplot there; the
// images land at the top of the experiment directory.
Drawing draw_plots(const Suite& s, const json& m, const std::string& gnuplot, const Timeline& timeline) {
  Drawing out;
  std::map<std::string, results::RunResult> runs;
  for (const auto& c : s.configs)
    if (const results::RunResult* r = c.representative_results()) runs[c.name] = *r;
  auto plots = report::make_plots(m, runs);
  if (plots.empty()) out.notes.push_back("no plots: no run succeeded");
  else if (timeline.plot) plots.push_back(*timeline.plot);
  if (!plots.empty() && !timeline.problem.empty()) {
    out.failed = true;
    out.notes.push_back(timeline.problem);
  }
  const std::string plot_dir = s.dir + "/" + report::kPlotDir;
  if (!plots.empty()) fs::create_directories(plot_dir);
  std::cout << "drawing " << plots.size() << " plots with gnuplot ..." << std::flush;
  for (const auto& p : plots) {
    for (const auto& [name, text] : p.data) sys::write_file_atomic(plot_dir + "/" + name, text);
    sys::write_file_atomic(plot_dir + "/" + p.name + ".gp", p.script);
    const auto run = report::run_gnuplot(gnuplot, plot_dir, p.name + ".gp");
    if (run.ok && fs::exists(s.dir + "/" + p.name + ".png")) {
      out.drawn.push_back(p.name);
    } else {
      out.failed = true;
      out.notes.push_back("gnuplot could not draw " + p.name + ".png: " + run.error);
    }
  }
  std::cout << " done\n";
  return out;
}

// The table, the backends and precisions compared, and what went wrong, on the terminal.
void print_summary(const Suite& s, const json& m, const std::vector<std::string>& notes, bool gnuplot_missing) {
  std::cout << "\n" << report::results_table_text(m) << "\n";
  for (const auto& sentence : report::backend_comparison_sentences(m.value("backend_comparison", json::array())))
    std::cout << sentence << "\n";
  for (const auto& sentence : report::precision_comparison_sentences(m.value("precision_comparison", json::array())))
    std::cout << sentence << "\n";
  for (const auto& line : report::variant_comparison_lines(m)) {  // Markdown's bold, on the terminal plain
    std::string plain = line;
    for (size_t at; (at = plain.find("**")) != std::string::npos;) plain.erase(at, 2);
    std::cout << plain << "\n";
  }
  for (const auto& n : notes)
    if (!gnuplot_missing) std::cerr << "run_experiments: " << n << "\n";  // else the caller's error says it
  const double busy = results::number_or(
      m.value("measurement", json::object()).value("background_load_cores", json::object()), "max", NAN);
  if (busy > kBusyCores)  // false for NaN: not measured
    std::cerr << "run_experiments: warning: other processes used up to " << report::format_number(busy, 1)
              << " cores during the runs: the timings are disturbed; rerun on a quiet machine, or with --repeats 3\n";
  const int failed = m.value("failed_runs", 0);
  if (failed) std::cerr << "run_experiments: " << failed << " run(s) FAILED; see performance_metrics.json and logs/\n";
  std::cout << "report: " << s.dir << "/report.md\n";
}

}  // namespace

int write_experiment(const Suite& s, const json& experiment, const json& bench, const std::string& gnuplot,
                     const std::string& gnuplot_problem, bool interrupted) {
  write_canonical_copies(s);
  json m = report::performance_metrics(experiment, train::machine_json(), versions_of(s, gnuplot), s.configs,
                                       json::object());
  m["scaling_model"] = scaling_model(s.configs, bench, m, s.cores, s.o.train.threads);
  add_model_validation(m, s.configs, bench, s.cores, s.o.train.threads);
  const Timeline timeline = experiment_timeline(s);
  if (!timeline.info.is_null()) m["timeline"] = timeline.info;
  if (interrupted) m["status"] = "interrupted";
  sys::write_file_atomic(s.dir + "/performance_metrics.json", m.dump(2) + "\n");

  Drawing drawing;
  if (!gnuplot_problem.empty()) {
    drawing.notes.push_back("no plots: " + gnuplot_problem + "; " + report::kGnuplotInstallHint +
                            ", then redraw with: run_experiments --replot " + s.dir);
    drawing.failed = true;
  } else if (!interrupted) {
    drawing = draw_plots(s, m, gnuplot, timeline);
  }
  // Said where the reader looks, not only in performance_metrics.json: the
  // run in progress is listed as "not run", like those that never started.
  if (interrupted)
    drawing.notes.push_back(std::string("the suite was interrupted (") + strsignal(pending_signal()) +
                            ") and is incomplete: the run in progress was stopped and is listed as not run with "
                            "those that never started, and no plots were drawn; run the same command again for "
                            "the whole suite");
  sys::write_file_atomic(s.dir + "/report.md", report::report_markdown(m, drawing.drawn, drawing.notes));

  print_summary(s, m, drawing.notes, !gnuplot_problem.empty());
  if (interrupted) return 128 + pending_signal();
  if (!gnuplot_problem.empty()) {
    std::cerr << "run_experiments: error: " << gnuplot_problem << "; the JSON files and report.md are written, the plots are not\n"
              << "  fix: " << report::kGnuplotInstallHint << ", then: run_experiments --replot " << s.dir << "\n";
    return 1;
  }
  return m.value("failed_runs", 0) || drawing.failed ? 1 : 0;
}

}  // namespace ddp::experiments
