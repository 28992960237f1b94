// The experiment's figures as gnuplot scripts plus their data files, made
// from performance_metrics.json and the results files. They are written
// into the experiment directory and kept, so that a user can edit a script
// and redraw it (`gnuplot speedup.gp`).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace ddp::report {

struct PlotFiles {
  std::string name;    // "speedup": the script is speedup.gp, the image speedup.png
  std::string title;   // what it shows, for report.md
  std::string script;  // contents of <name>.gp
  std::vector<std::pair<std::string, std::string>> data;  // data file name -> contents
};

// metrics: performance_metrics.json ("configurations", "machine", "scaling_model");
// results: configuration name -> its representative results file. Returns the
// plots in the order the report shows them: loss_curves, speedup, efficiency,
// training_comparison, time_breakdown, scaling_model (the last only with a
// calibrated model). Returns nothing when no configuration has results.
std::vector<PlotFiles> make_plots(const nlohmann::json& metrics, const std::map<std::string, nlohmann::json>& results);

// Every plot's name, in report order.
const std::vector<std::string>& plot_names();

// Centred moving average over `window` points (shrinking at the ends).
std::vector<double> moving_average(const std::vector<double>& v, int window);

}  // namespace ddp::report
