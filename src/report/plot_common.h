// What the plots of report/plots.h share (internal to report/): each
// configuration as a plotted series, the colours, number formatting, and the
// builders of each plot (plots_training.cpp, plots_speedup.cpp,
// plots_breakdown.cpp, plots_scaling.cpp).
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "report/metrics_json.h"
#include "report/plots.h"
#include "results/run_result.h"

namespace ddp::report::plot {

using nlohmann::json;
using results::RunResult;

inline constexpr const char* kPalette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                           "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
inline constexpr const char* kSerialColor = "#333333";
// Each backend's runs in shades of one colour, so that the plots tell the
// backends apart at a glance; the first shade is its measured-speedup line.
struct BackendStyle {
  const char* backend;
  const char* shades[5];
  const char* text;  // a darker shade, for labels
};
inline constexpr BackendStyle kBackendStyles[] = {
    {"gloo", {"#1f77b4", "#08519c", "#6baed6", "#3182bd", "#9ecae1"}, "#1f4f7f"},
    {"mpi", {"#d62728", "#a50f15", "#fb6a4a", "#de2d26", "#fc9272"}, "#8b1a1a"}};
const BackendStyle* style_of(const std::string& backend);  // null for another backend
// Tics of a logarithmic loss axis: 1-2-5 steps.
inline constexpr const char* kLossTics =
    "set ytics (0.001, 0.002, 0.003, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20) format '%g'\nset mytics 10\n"
    "set autoscale y noextend\nset offsets 0, 0, graph 0.04, graph 0.04\n";

// One configuration as the plots draw it.
struct Cfg {
  std::string name, label, color;
  std::string bar_label;  // under its bar: the label (with backends: N, the backend, the precision), and what went wrong
  std::string backend;    // "" for the serial run
  std::string precision = "fp32";
  std::string variant;    // run_experiments --variant; "" for the serial run
  int processes = 1;
  bool oversubscribed = false, failed = false;
  const json* metrics = nullptr;       // its entry of performance_metrics.json's "configurations"
  const RunResult* results = nullptr;  // null when it failed
};
std::vector<Cfg> configurations(const json& metrics, const std::map<std::string, RunResult>& results);
// A measured speedup series: the runs of one backend in one precision and
// one variant, with the serial run of that precision (their baseline).
struct Series {
  std::string backend, precision, variant;
};
// The backends with a successful parallel run, in order, each in every
// precision and variant that ran: one measured series each (one series without a backend
// when there is none: the serial run alone).
std::vector<Series> speedup_series(const std::vector<Cfg>& cs);
bool any_results(const std::vector<Cfg>& cs);

using metrics_json::flag;
using metrics_json::hi;
using metrics_json::lo;
using metrics_json::med;
using metrics_json::num;
int repeats(const json& metrics);
int cores(const json& metrics);
int threads(const json& metrics);
int batch(const json& metrics);

// Where a script writes its image: the scripts run in kPlotDir, the images go
// one level up, beside report.md.
std::string image(const std::string& name);
std::string g(double v);                       // "%.6g"; NaN as "NaN" (the scripts' missing value)
std::string rgb_int(const std::string& hex);   // 0xRRGGBB as the integer gnuplot's "lc rgb variable" reads
std::string faint(const std::string& hex);     // "#B0RRGGBB": the colour, mostly transparent
std::string range_note(const json& metrics, const std::string& what = "bars");  // "" without repeats
// "set xtics (...)" naming the bars 0..n-1 after the configurations.
std::string bar_xtics(const std::vector<Cfg>& cs, const std::vector<std::string>& second_lines = {});

// Per-epoch data of a configuration (epochs_<name>.dat), and the epoch axes.
std::string per_epoch_file(const Cfg& c);
std::string epochs_data(const Cfg& c);
// "set logscale y" with 1-2-5 tics when the per-epoch losses span a wide range, else a linear axis.
std::string epoch_loss_axis(const std::vector<Cfg>& cs, bool with_test, const std::string& label);
int epochs_of(const std::vector<Cfg>& cs);
std::string epoch_axis(int epochs);

// The plots, each with its script and data files.
PlotFiles loss_curves(const json& metrics, const std::vector<Cfg>& cs);
PlotFiles comparison_plot(const json& metrics, const std::vector<Cfg>& cs);
PlotFiles speedup_plot(const json& metrics, const std::vector<Cfg>& cs);
PlotFiles efficiency_plot(const json& metrics, const std::vector<Cfg>& cs);
PlotFiles breakdown_plot(const std::vector<Cfg>& cs);
PlotFiles scaling_plot(const json& metrics, const std::vector<Cfg>& cs);
PlotFiles variants_plot(const json& metrics, const std::vector<Cfg>& cs);  // with --variant only

}  // namespace ddp::report::plot
