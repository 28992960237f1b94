// Where the time of an epoch goes: stacked bars per configuration.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/gnuplot.h"
#include "report/metrics.h"
#include "report/palette.h"
#include "report/plot_common.h"

namespace ddp::report::plot {

namespace {

struct Seg {
  const char *key, *title, *color;
};
// The segments of a bar, bottom to top: time_per_epoch_s's keys.
constexpr Seg kSegments[] = {{"forward", "forward", kForwardColor},
                             {"backward", "backward", kBackwardColor},
                             {"allreduce_exposed", "all-reduce (exposed)", kAllreduceColor},
                             {"optimizer", "optimizer", kOptimizerColor},
                             {"data", "data", kDataColor},
                             {"other", "other", kOtherColor},
                             {"evaluation", "evaluation (test set)", kEvaluationColor}};
constexpr int kSegs = 7;

// Each parallel configuration's all-reduce per step and the share hidden behind backward: "1.2 ms (80%)".
std::vector<std::string> allreduce_notes(const std::vector<Cfg>& cs) {
  std::vector<std::string> notes;
  for (const auto& c : cs) {
    std::string note;
    if (!c.failed && c.metrics->contains("allreduce") && c.processes > 1) {
      const json& a = (*c.metrics)["allreduce"];
      char buf[96];
      std::snprintf(buf, sizeof buf, "%.1f ms (%.0f%%)", 1e3 * num(a, "busy_per_step_s", 0),
                    100 * num(a, "hidden_fraction", 0));
      note = buf;
    }
    notes.push_back(note);
  }
  return notes;
}

// time_breakdown.dat: per bar, [low high] of each segment in seconds and in %,
// then the total; `tmax` gets the longest total.
std::string breakdown_data(const std::vector<Cfg>& cs, double& tmax) {
  std::string d = "# seconds per epoch (mean over epochs and ranks), stacked bottom to top:\n#";
  for (const auto& sg : kSegments) d += std::string(" ") + sg.key;
  d += "\n# columns: index, then [low high] in seconds for each segment, then [low high] in % of the epoch, then total_s\n";
  tmax = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].failed || !cs[i].metrics->contains("time_per_epoch_s")) continue;
    const json& t = (*cs[i].metrics)["time_per_epoch_s"];
    double total = 0;
    for (const auto& sg : kSegments) total += num(t, sg.key, 0);
    tmax = std::max(tmax, total);
    std::string row = std::to_string(i), pct;
    double acc = 0;
    for (const auto& sg : kSegments) {
      const double v = num(t, sg.key, 0);
      row += "  " + g(acc) + " " + g(acc + v);
      pct += "  " + g(total > 0 ? 100 * acc / total : 0) + " " + g(total > 0 ? 100 * (acc + v) / total : 0);
      acc += v;
    }
    d += row + pct + "  " + g(total) + "\n";
  }
  return d;
}

// The stacked bars of one panel: the segments' [low high] start at column `base`.
std::string panel(int base, bool labels) {
  std::string plot;
  for (int k = 0; k < kSegs; ++k) {
    const std::string l = "$" + std::to_string(base + 2 * k), h = "$" + std::to_string(base + 2 * k + 1);
    if (!plot.empty()) plot += ", \\\n     ";
    plot += "'time_breakdown.dat' using 1:((" + l + "+" + h + ")/2):(0.3):((" + h + "-" + l +
            ")/2) with boxxyerror lc rgb '" + kSegments[k].color + "' " +
            (labels ? std::string("title '") + kSegments[k].title + "'" : std::string("notitle"));
  }
  return plot;
}

}  // namespace

PlotFiles breakdown_plot(const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "time_breakdown";
  p.title = "Where the time of an epoch goes (mean over ranks)";
  double tmax = 0;
  const std::string d = breakdown_data(cs, tmax);
  const std::vector<std::string> notes = allreduce_notes(cs);
  p.data.push_back({"time_breakdown.dat", d});
  // Wider beyond four bars, so that their labels stay apart.
  const int width = 1400 + 250 * std::max(0, static_cast<int>(cs.size()) - 4);
  std::string s = gp_preamble(image("time_breakdown"), width, 750, p.title);
  // Two panels placed by hand, the key to their right (a key is only as wide as its panel).
  s += "set multiplot title 'Where the time goes: one epoch, mean over ranks' font ',19'\n";
  s += "set tmargin at screen 0.87\nset bmargin at screen 0.16\n";
  s += "set key at screen 0.795, screen 0.87 left top vertical Left reverse invert samplen 1.5 spacing 1.4 box\n";
  s += "set xrange [-0.6:" + g(cs.size() - 0.4) + "]\n" + bar_xtics(cs) + "set grid noxtics ytics\nset xlabel ''\n";
  std::string comm;
  for (size_t i = 0; i < cs.size(); ++i)
    if (!notes[i].empty()) comm += "\n" + cs[i].label + ": " + notes[i];
  if (!comm.empty())
    s += "set label 20 " + gp_dquote(gp_text("gradient all-reduce per step\n(in brackets: the share hidden\nbehind backward)" + comm)) +
         " at screen 0.8, screen 0.38 left font ',12' tc rgb '#333333'\n";
  s += "set style fill solid 0.9 border lc rgb '#ffffff'\n";
  s += "set lmargin at screen 0.075\nset rmargin at screen 0.385\n";
  s += "set title 'seconds per epoch' font ',15'\nset ylabel 'time per epoch (s)'\n";
  s += "set yrange [0:" + g(tmax > 0 ? tmax * 1.12 : 1) + "]\n";
  s += "plot " + panel(2, true) + ", \\\n     'time_breakdown.dat' using 1:" + std::to_string(2 + 4 * kSegs) +
       ":(sprintf('%.2f s', $" + std::to_string(2 + 4 * kSegs) + ")) with labels offset 0,0.8 font ',14' notitle\n";
  s += "set lmargin at screen 0.455\nset rmargin at screen 0.775\n";
  s += "set title 'share of the epoch' font ',15'\nset ylabel 'share of the epoch (%)'\nset yrange [0:100]\nunset key\n";
  std::string labels;
  for (int k = 0; k < kSegs; ++k) {
    const std::string l = "$" + std::to_string(2 + 2 * kSegs + 2 * k), h = "$" + std::to_string(2 + 2 * kSegs + 2 * k + 1);
    labels += ", \\\n     'time_breakdown.dat' using 1:((" + l + "+" + h + ")/2):((" + h + "-" + l +
              ") >= 4 ? sprintf('%.0f%%', " + h + "-" + l + ") : '') with labels font ',13' tc rgb '#1a1a1a' notitle";
  }
  s += "plot " + panel(2 + 2 * kSegs, false) + labels + "\nunset multiplot\n";
  p.script = s;
  return p;
}

}  // namespace ddp::report::plot
