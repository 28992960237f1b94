// The plots of the training itself: loss curves (per step and per epoch), and
// time, throughput, accuracy and loss of every configuration side by side.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "report/gnuplot.h"
#include "report/metrics.h"
#include "report/plot_common.h"

namespace ddp::report::plot {

PlotFiles loss_curves(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "loss_curves";
  p.title = "Training loss per step and per epoch, serial vs data-parallel";
  const int epochs = epochs_of(cs);
  std::string s = gp_preamble(image("loss_curves"), 1400, 650, p.title);
  s += "set multiplot layout 1,2 title " +
       gp_quote("Training loss: serial vs data-parallel (batch " + std::to_string(batch(metrics)) +
                " per process)") + " font ',19'\n";
  // The raw losses of thousands of steps are a grey fog: drawn only for short runs.
  // The smoothing window grows with the run: 0.1 epoch, 0.25 epoch from 5 epochs on.
  const double window_epochs = epochs >= 5 ? 0.25 : 0.1;
  size_t most_steps = 0;
  for (const auto& c : cs)
    if (!c.failed) most_steps = std::max(most_steps, c.results->step_losses.size());
  const bool raw = most_steps <= 2500;
  char sub[160];
  std::snprintf(sub, sizeof sub, "every step (%smoving average over %g epoch)", raw ? "thin: raw; thick: " : "",
                window_epochs);
  s += "set title " + gp_quote(sub) + " font ',15'\n";
  s += "set xlabel 'epoch'\nset ylabel 'training loss (log scale)'\nset logscale y\n" + std::string(kLossTics);
  s += "set xrange [0:" + g(epochs) + "]\n";
  if (epochs <= 20) s += "set xtics 1\n";
  s += "set key top right\n";
  std::string plot;
  double lo = INFINITY, hi = 0;  // of the smoothed curves: the y range (raw extremes may fall outside)
  for (const auto& c : cs) {
    if (c.failed) continue;
    const RunResult& r = *c.results;
    const double steps = std::max(1.0, static_cast<double>(r.steps_per_epoch));
    const std::vector<double> loss(r.step_losses.begin(), r.step_losses.end());
    const auto smooth = moving_average(loss, std::max(1, static_cast<int>(std::lround(steps * window_epochs))));
    for (double v : smooth)
      if (std::isfinite(v) && v > 0) lo = std::min(lo, v), hi = std::max(hi, v);
    std::string d = "# " + c.label + ": training loss of every step (mean over ranks)\n# epoch  loss  moving_average\n";
    for (size_t i = 0; i < loss.size(); ++i) d += g((i + 1) / steps) + "  " + g(loss[i]) + "  " + g(smooth[i]) + "\n";
    const std::string file = "loss_steps_" + c.name + ".dat";
    p.data.push_back({file, d});
    if (!plot.empty()) plot += ", \\\n     ";
    if (raw) plot += gp_quote(file) + " using 1:2 with lines lw 1 lc rgb '" + faint(c.color) + "' notitle, \\\n     ";
    plot += gp_quote(file) + " using 1:3 with lines lw 3 lc rgb '" + c.color + "' title " + gp_label(c.label);
  }
  if (hi > 0) s += "set yrange [" + g(lo / (raw ? 2.0 : 1.3)) + ":" + g(hi * 1.3) + "]\n";
  s += "plot " + plot + "\n\n";

  s += "set title 'every epoch (solid: training loss; dashed: test loss)' font ',15'\n";
  s += "set xlabel 'epoch'\nset autoscale x\n" + epoch_loss_axis(cs, true, "loss") + epoch_axis(epochs);
  plot.clear();
  for (const auto& c : cs) {
    if (c.failed) continue;
    const std::string file = per_epoch_file(c);
    if (!plot.empty()) plot += ", \\\n     ";
    plot += gp_quote(file) + " using 1:2 with linespoints pt 7 ps 1.3 lw 3 lc rgb '" + c.color + "' title " +
            gp_label(c.label) + ", \\\n     " + gp_quote(file) + " using 1:3 with linespoints pt 6 ps 1.3 lw 2 dt 2 lc rgb '" +
            c.color + "' notitle";
  }
  s += "plot " + plot + "\nunset multiplot\n";
  p.script = s;
  return p;
}

PlotFiles comparison_plot(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "training_comparison";
  p.title = "Time, throughput, test accuracy and loss of every configuration";
  std::string d = "# index  total_time_s(median min max)  throughput_samples_per_s(median min max)  colour  label\n";
  double tmax = 0, qmax = 0;
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].failed) continue;
    const json& m = *cs[i].metrics;
    tmax = std::max(tmax, std::isfinite(hi(m, "total_time_s")) ? hi(m, "total_time_s") : 0);
    qmax = std::max(qmax, std::isfinite(hi(m, "throughput_samples_per_s")) ? hi(m, "throughput_samples_per_s") : 0);
    d += std::to_string(i) + "  " + g(med(m, "total_time_s")) + "  " + g(lo(m, "total_time_s")) + "  " +
         g(hi(m, "total_time_s")) + "  " + g(med(m, "throughput_samples_per_s")) + "  " +
         g(lo(m, "throughput_samples_per_s")) + "  " + g(hi(m, "throughput_samples_per_s")) + "  " +
         rgb_int(cs[i].color) + "  \"" + cs[i].label + "\"\n";
  }
  p.data.push_back({"comparison.dat", d});
  const int epochs = epochs_of(cs);
  // Wider beyond five bars, so that their labels stay apart.
  const int width = 1400 + 240 * std::max(0, static_cast<int>(cs.size()) - 5);
  std::string s = gp_preamble(image("training_comparison"), width, 1000, p.title);
  s += "set multiplot layout 2,2 title " +
       gp_quote("Serial vs data-parallel training: " + std::to_string(epochs) + " epoch" + (epochs > 1 ? "s" : "") +
                ", batch " + std::to_string(batch(metrics)) + " per process") + " font ',19'\n";
  s += "set style fill solid 0.85 border lc rgb '#ffffff'\nset boxwidth 0.6\nunset key\n";
  s += "set xrange [-0.6:" + g(cs.size() - 0.4) + "]\n" + bar_xtics(cs) + "set grid noxtics ytics\nset xlabel ''\nset bmargin 4.5\n";
  s += "set title 'total time (training + evaluation)' font ',15'\nset ylabel 'time (s)'\n";
  s += "set yrange [0:" + g(tmax > 0 ? tmax * 1.18 : 1) + "]\n";
  s += "plot 'comparison.dat' using 1:2:8 with boxes lc rgb variable, \\\n"
       + std::string(repeats(metrics) > 1 ? "     'comparison.dat' using 1:3:(0):($4-$3) with vectors heads size screen 0.008,90 lw 2 lc rgb '#333333', \\\n" : "") +
       "     'comparison.dat' using 1:4:(sprintf('%.1f s', $2)) with labels offset 0,0.9 font ',14'\n";
  s += "set title 'training throughput (all processes)' font ',15'\nset ylabel 'samples / s'\n";
  s += "set yrange [0:" + g(qmax > 0 ? qmax * 1.18 : 1) + "]\n";
  s += "plot 'comparison.dat' using 1:5:8 with boxes lc rgb variable, \\\n"
       + std::string(repeats(metrics) > 1 ? "     'comparison.dat' using 1:6:(0):($7-$6) with vectors heads size screen 0.008,90 lw 2 lc rgb '#333333', \\\n" : "") +
       "     'comparison.dat' using 1:7:(sprintf('%.0f', $5)) with labels offset 0,0.9 font ',14'\n";
  s += "set xtics autofreq scale 0.75\nset grid xtics ytics\nset autoscale y\nset bmargin\nset xlabel 'epoch'\n" + epoch_axis(epochs);
  s += "set key bottom right\n";
  s += "set title 'test accuracy after each epoch' font ',15'\nset ylabel 'test accuracy (%)'\n";
  std::string acc, loss;
  for (const auto& c : cs) {
    if (c.failed) continue;
    const std::string f = gp_quote(per_epoch_file(c));
    if (!acc.empty()) acc += ", \\\n     ", loss += ", \\\n     ";
    acc += f + " using 1:4 with linespoints pt 7 ps 1.3 lw 3 lc rgb '" + c.color + "' title " + gp_label(c.label);
    loss += f + " using 1:2 with linespoints pt 7 ps 1.3 lw 3 lc rgb '" + c.color + "' title " + gp_label(c.label);
  }
  s += "plot " + acc + "\n";
  s += "set key top right\nset title 'training loss per epoch' font ',15'\n" + epoch_loss_axis(cs, false, "training loss");
  s += "plot " + loss + "\nunset multiplot\n";
  p.script = s;
  return p;
}

}  // namespace ddp::report::plot
