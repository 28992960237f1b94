// The speedup and efficiency plots.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "report/gnuplot.h"
#include "report/metrics.h"
#include "report/plot_common.h"

namespace ddp::report::plot {

namespace {

// A series' name in its title and its data: "Gloo", "Gloo, bf16", "bf16",
// "powersgd", or "" when neither the backend, the precision nor the variant is named.
std::string series_name(const Series& x, bool with_backend, bool with_precision, bool with_variant) {
  std::string n = with_backend ? backend_name(x.backend) : "";
  if (with_precision) n += (n.empty() ? "" : ", ") + x.precision;
  if (with_variant) n += (n.empty() ? "" : ", ") + x.variant;
  return n;
}

// speedup.dat: one gnuplot data set (index k) per series.
std::string speedup_data(const std::vector<Cfg>& cs, const std::vector<Series>& series,
                         const std::function<std::string(const Series&)>& name) {
  std::string d = "# speedup = T_serial / T_N (total_time_s), T_serial of the same precision\n"
                  "# processes  median  min  max  label\n";
  for (size_t k = 0; k < series.size(); ++k) {
    if (k) d += "\n\n";  // the next gnuplot data set (index k)
    if (!name(series[k]).empty()) d += "# " + name(series[k]) + "\n";
    for (const auto& x : cs) {
      if (x.failed || !(x.backend.empty() || x.backend == series[k].backend) || x.precision != series[k].precision ||
          (!x.backend.empty() && x.variant != series[k].variant))
        continue;
      // The serial run is its series' baseline: 1 (a bf16 serial run's own
      // speedup is against the fp32 serial run, which is another series).
      const bool base = x.backend.empty();
      d += std::to_string(x.processes) + "  " + (base ? "1  1  1" : g(med(*x.metrics, "speedup")) + "  " +
                                                 g(lo(*x.metrics, "speedup")) + "  " + g(hi(*x.metrics, "speedup"))) +
           "  \"" + x.label + "\"\n";
    }
  }
  return d;
}

}  // namespace

PlotFiles speedup_plot(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "speedup";
  p.title = "Speedup T_serial / T_N against the ideal, with the core count marked";
  const int c = cores(metrics), t = threads(metrics);
  int maxp = 1;
  double maxs = 1;
  for (const auto& x : cs) {
    maxp = std::max(maxp, x.processes);
    if (!x.failed) maxs = std::max(maxs, std::isfinite(hi(*x.metrics, "speedup")) ? hi(*x.metrics, "speedup")
                                                                                  : med(*x.metrics, "speedup"));
  }
  const auto series = speedup_series(cs);
  const bool with_variant = names_variants(metrics);
  auto name = [&](const Series& x) {
    return series_name(x, names_backends(metrics), names_precisions(metrics), with_variant);
  };
  const std::string d = speedup_data(cs, series, name);
  p.data.push_back({"speedup.dat", d});
  const bool log = maxp > 16;
  const int fit = std::max(1, c / std::max(1, t));  // processes that fit the cores
  const double xmax = log ? std::pow(2, std::ceil(std::log2(std::max(maxp, fit + 1)))) : std::max(maxp, fit + 1) + 0.6;
  const double ymax = log ? xmax : std::max(static_cast<double>(std::max(maxp, fit + 1)), maxs) * 1.08 + 0.2;

  std::string s = gp_preamble(image("speedup"), 1000, 700, p.title);
  std::string subtitle = "weak scaling: batch " + std::to_string(batch(metrics)) + " per process";
  if (!range_note(metrics).empty()) subtitle += "; " + range_note(metrics, "points");
  s += "set title " + gp_dquote("Speedup over the serial run\n{/*0.75 " + gp_text(subtitle) + "}") + "\n";
  s += "set xlabel 'processes N'\nset ylabel 'speedup  T_{serial} / T_{N}'\n";
  if (log) {
    s += "set logscale xy 2\nset xrange [1:" + g(xmax) + "]\nset yrange [0.5:" + g(ymax) + "]\n";
  } else {
    s += "set xrange [0.4:" + g(xmax) + "]\nset yrange [0:" + g(ymax) + "]\nset xtics 1\n";
  }
  s += "set key top left\n";
  if (fit < maxp) {
    s += "set object 1 rectangle from first " + g(fit + 0.5) + ", graph 0 to graph 1, graph 1 fc rgb '#f1f1f1' fs solid 1.0 noborder behind\n";
    s += "set label 1 " + gp_dquote("oversubscribed:\nprocesses × threads > cores") + " at first " + g(fit + 0.6) +
         ", graph 0.05 left tc rgb '#777777' font ',13'\n";
  }
  s += "set arrow 1 from first " + g(fit) + ", graph 0 to first " + g(fit) + ", graph 1 nohead dt 2 lw 2 lc rgb '#777777' front\n";
  s += "set label 2 " + gp_quote(std::to_string(c) + " cores" + (t > 1 ? " / " + std::to_string(t) + " threads per process" : "")) +
       " at first " + g(fit) + ", graph 0.62 center rotate by 90 offset -0.9,0 tc rgb '#555555' font ',13' front\n";
  std::string plot = "x with lines dt 2 lw 2 lc rgb '#999999' title 'ideal (speedup = N)'";
  if (metrics.contains("scaling_model") && metrics["scaling_model"].contains("this_machine") &&
      metrics["scaling_model"]["this_machine"].contains("predictions")) {
    std::string m = "# the scaling model for this machine (processes share its cores)\n# processes  speedup  efficiency\n";
    for (const auto& q : metrics["scaling_model"]["this_machine"]["predictions"])
      if (num(q, "p") <= maxp) m += g(num(q, "p")) + "  " + g(num(q, "speedup")) + "  " + g(num(q, "efficiency")) + "\n";
    p.data.push_back({"speedup_model.dat", m});
    plot += ", \\\n     'speedup_model.dat' using 1:2 with lines dt 3 lw 3 lc rgb '#ff7f0e' title 'model of this machine'";
  }
  for (size_t k = 0; k < series.size(); ++k) {
    const BackendStyle* st = style_of(series[k].backend);
    const int shade = series[k].precision == "fp32" ? 0 : 1;  // bf16 in the backend's darker shade
    // Variants: a colour each (the backend's shades are for precisions).
    const bool own = st && !with_variant;
    const std::string color = own ? st->shades[shade] : kPalette[k % 10];
    const std::string text = own ? st->text : with_variant ? color : kSerialColor;
    const std::string data = "'speedup.dat' index " + std::to_string(k);
    plot += ", \\\n     " + data + " using 1:2:3:4 with yerrorbars pt 7 ps 2 lw 2 lc rgb '" + color + "' notitle";
    plot += ", \\\n     " + data + " using 1:2 with lines lw 3 lc rgb '" + color + "' title " +
            gp_label(name(series[k]).empty() ? "measured" : "measured, " + name(series[k]));
    // One backend's labels above its points, the next one's below.
    plot += ", \\\n     " + data + " using 1:2:(sprintf('%.2f×', $2)) with labels left offset 1.0," +
            g(k % 2 ? -0.9 : 0.9) + " font ',14' tc rgb '" + text + "' notitle";
  }
  s += "plot " + plot + "\n";
  p.script = s;
  return p;
}

PlotFiles efficiency_plot(const json& metrics, const std::vector<Cfg>& cs) {
  PlotFiles p;
  p.name = "efficiency";
  p.title = "Parallel efficiency (speedup / N) per configuration";
  std::string d = "# efficiency = speedup / N, in %\n# index  median  min  max  colour(0xRRGGBB)  label\n";
  double top = 100;
  for (size_t i = 0; i < cs.size(); ++i) {
    if (cs[i].failed) continue;
    const json& m = *cs[i].metrics;
    top = std::max(top, 100 * (std::isfinite(hi(m, "efficiency")) ? hi(m, "efficiency") : med(m, "efficiency")));
    d += std::to_string(i) + "  " + g(100 * med(m, "efficiency")) + "  " + g(100 * lo(m, "efficiency")) + "  " +
         g(100 * hi(m, "efficiency")) + "  " + rgb_int(cs[i].color) + "  \"" + cs[i].label + "\"\n";
  }
  p.data.push_back({"efficiency.dat", d});
  std::string s = gp_preamble(image("efficiency"), 1000, 700, p.title);
  std::string sub = "100% = N processes are N times as fast as one";
  if (!range_note(metrics).empty()) sub += "; " + range_note(metrics);
  s += "set title " + gp_dquote("Parallel efficiency\n{/*0.75 " + gp_text(sub) + "}") + "\n";
  s += "set ylabel 'efficiency = speedup / N  (%)'\nset xlabel ''\n";
  s += "set style fill solid 0.85 border lc rgb '#ffffff'\nset boxwidth 0.6\n";
  s += "set xrange [-0.6:" + g(cs.size() - 0.4) + "]\nset yrange [0:" + g(std::ceil(top * 1.15 / 10) * 10) + "]\n";
  s += bar_xtics(cs) + "set bmargin 4.5\n";
  s += "set grid noxtics ytics\n";
  s += "set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead dt 2 lw 2 lc rgb '#888888' front\n";
  s += "set label 1 'ideal' at graph 0.995, first 100 right offset 0,0.8 tc rgb '#666666' front\n";
  s += "unset key\n";
  s += "plot 'efficiency.dat' using 1:2:5 with boxes lc rgb variable, \\\n"
       + std::string(repeats(metrics) > 1 ? "     'efficiency.dat' using 1:3:(0):($4-$3) with vectors heads size screen 0.008,90 lw 2 lc rgb '#333333', \\\n" : "") +
       "     'efficiency.dat' using 1:($4 > $2 ? $4 : $2):(sprintf('%.0f%%', $2)) with labels offset 0,0.9 font ',15'\n";
  p.script = s;
  return p;
}

}  // namespace ddp::report::plot
