// The experiment's figures as gnuplot scripts plus their data files, made
// from performance_metrics.json and the results files. They are kept in the
// experiment directory's kPlotDir, so that a user can edit a script and
// redraw it (`cd plots && gnuplot speedup.gp`); each script writes its image
// one level up, beside report.md.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "results/run_result.h"

namespace ddp::report {

// The subdirectory of an experiment directory that holds the scripts and
// their data; the scripts name their data relative to it and their image as
// "../<name>.png".
constexpr const char* kPlotDir = "plots";

struct PlotFiles {
  std::string name;    // "speedup": the script is speedup.gp, the image ../speedup.png
  std::string title;   // what it shows, for report.md
  std::string script;  // contents of <name>.gp
  std::vector<std::pair<std::string, std::string>> data;  // data file name -> contents
};

// metrics: performance_metrics.json ("configurations", "machine", "scaling_model");
// results: configuration name -> its representative results file. Returns the
// plots in the order the report shows them: loss_curves, speedup, efficiency,
// training_comparison, time_breakdown, scaling_model (only with a calibrated
// model), variants (only with run_experiments --variant; not in plot_names).
// Returns nothing when no configuration has results.
std::vector<PlotFiles> make_plots(const nlohmann::json& metrics,
                                  const std::map<std::string, ddp::results::RunResult>& results);

// Every plot's name, in report order.
const std::vector<std::string>& plot_names();

// Centred moving average over `window` points (shrinking at the ends).
std::vector<double> moving_average(const std::vector<double>& v, int window);

}  // namespace ddp::report
