// run_experiments --variant's plot: time to accuracy (test accuracy after
// each epoch against the time trained so far), one line per run, and the
// bytes per step each variant all-reduced.
#include <algorithm>
#include <cmath>

#include "report/gnuplot.h"
#include "report/metrics.h"
#include "report/plot_common.h"

namespace ddp::report::plot {

PlotFiles variants_plot(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "variants";
  p.title = "Time to accuracy and bytes per step of each variant";
  std::string s = gp_preamble(image("variants"), 1400, 650, p.title);
  s += "set multiplot layout 1,2 title " + gp_label("The variants side by side (run_experiments --variant), batch " +
                                            std::to_string(batch(metrics)) + " per process") +
       " font ',19'\n";
  // Left: test accuracy after each epoch against the time (training and evaluation) so far.
  s += "set title 'time to accuracy' font ',15'\nset xlabel 'time trained and evaluated (s)'\n"
       "set ylabel 'test accuracy (%)'\nset key bottom right\nset grid\n";
  std::string plot;
  for (const auto& c : cs) {
    if (c.failed) continue;
    std::string d = "# " + c.label + ": after each epoch\n# time_s (cumulative epoch time_s)  test_accuracy_%\n";
    double t = 0;
    for (const auto& e : c.results->epochs) {
      t += e.time_s;
      d += g(t) + "  " + g(100 * e.test_accuracy) + "\n";
    }
    const std::string file = "time_to_accuracy_" + c.name + ".dat";
    p.data.push_back({file, d});
    plot += std::string(plot.empty() ? "" : ", \\\n     ") + gp_quote(file) + " using 1:2 with linespoints pt 7 lw 3 " +
            "lc rgb '" + c.color + "' title " + gp_label(c.label);
  }
  s += "plot " + (plot.empty() ? std::string("NaN notitle") : plot) + "\n";
  // Right: bytes each rank handed to the communicator per optimizer step.
  std::string d = "# index  MB_per_step  colour  label\n";
  std::vector<const Cfg*> bars;
  for (const auto& c : cs)
    if (!c.failed && !c.backend.empty()) bars.push_back(&c);
  for (size_t i = 0; i < bars.size(); ++i) {
    const json& m = *bars[i]->metrics;
    const double b = m.contains("allreduce") ? num(m["allreduce"], "bytes_per_step") : NAN;
    d += std::to_string(i) + "  " + g(1e-6 * b) + "  " + rgb_int(bars[i]->color) + "  \"" + bars[i]->label + "\"\n";
  }
  p.data.push_back({"bytes_per_step.dat", d});
  s += "set title 'bytes all-reduced per optimizer step and rank (counted)' font ',15'\nunset key\n"
       "set style fill solid 0.85 border lc rgb '#ffffff'\nset boxwidth 0.6\nset xlabel ''\n"
       "set ylabel 'MB per step'\nset yrange [0:*]\nset xrange [-0.6:" + g(bars.size() - 0.4) + "]\n" +
       "set grid noxtics ytics\nset bmargin 4.5\n";
  std::vector<Cfg> bar_cfgs;
  // Under a bar of this half-width panel, "2 processes, powersgd" ran into
  // its neighbours: the variant's name, and N on a second line.
  for (const Cfg* c : bars) {
    bar_cfgs.push_back(*c);
    if (!c->variant.empty()) bar_cfgs.back().bar_label = c->variant + "\n" + std::to_string(c->processes) + "p";
  }
  s += bar_xtics(bar_cfgs);
  s += "plot 'bytes_per_step.dat' using 1:2:3 with boxes lc rgb variable, \\\n"
       "     'bytes_per_step.dat' using 1:2:(sprintf('%.3g MB', $2)) with labels offset 0,0.9 font ',13'\n";
  s += "unset multiplot\n";
  p.script = s;
  return p;
}

}  // namespace ddp::report::plot
